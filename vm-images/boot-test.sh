#!/usr/bin/env bash
# Boots a disk image (or an ISO from CD) in QEMU and checks that it reaches
# the boot-check appliance's /sbin/init, which prints the marker line
# UNISO-BOOT-OK on the serial port (see make-boot-appliance.sh).
#   boot-test.sh DISK FORMAT [TIMEOUT_S]
# FORMAT is a qemu -drive format (raw, vmdk, qcow2, vpc), or cdrom: DISK is
# an ISO booted from the CD drive (El Torito, isolinux); TIMEOUT_S defaults to 180.
# The machine: qemu-system-x86_64 -machine pc (i440FX, PIIX IDE), TCG (no KVM),
# 512 MiB, the disk as the first IDE disk, -snapshot (the file is opened
# read-only and never written, so it can live on a read-only FUSE mount), no
# network, -nographic with no VGA card, so the serial port on QEMU's stdout
# (captured to a log) shows SeaBIOS and GRUB (SeaBIOS's serial console) as
# well as the kernel (console=ttyS0) and the appliance.
# Passes (exit 0, "boot-test: FORMAT: marker seen after N s") when the marker
# appears within the timeout; otherwise (also early, at a dead end: SeaBIOS's
# "No bootable device", a GRUB prompt, a kernel panic) prints the last 30
# lines of the serial output and exits 1. QEMU is always killed on exit.
# Environment: QEMU (default qemu-system-x86_64), BOOT_TEST_LOG (keep the
# serial log in this file).
set -euo pipefail
[ $# -ge 2 ] && [ $# -le 3 ] || { echo "usage: boot-test.sh DISK FORMAT [TIMEOUT_S]" >&2; exit 2; }
DISK=$1 FORMAT=$2 TIMEOUT=${3:-180}
MARKER=UNISO-BOOT-OK
QEMU=${QEMU:-qemu-system-x86_64}
command -v "$QEMU" >/dev/null || { echo "boot-test: $QEMU not found (apt-get install qemu-system-x86)" >&2; exit 1; }
[ -f "$DISK" ] || { echo "boot-test: $FORMAT: no such disk image: $DISK" >&2; exit 1; }
case $TIMEOUT in ''|*[!0-9]*) echo "boot-test: TIMEOUT_S must be a whole number of seconds" >&2; exit 2 ;; esac

LOG=${BOOT_TEST_LOG:-$(mktemp /tmp/boot-test.XXXXXX.log)}
: > "$LOG"
QPID=
cleanup() {
  if [ -n "$QPID" ] && kill -0 "$QPID" 2>/dev/null; then
    kill -KILL "$QPID" 2>/dev/null || true
    wait "$QPID" 2>/dev/null || true
  fi
  [ -n "${BOOT_TEST_LOG:-}" ] || rm -f "$LOG"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

# The path goes in a -drive option: commas must be doubled.
if [ "$FORMAT" = cdrom ]; then
  DRIVE="file=${DISK//,/,,},format=raw,if=ide,index=1,media=cdrom,readonly=on" BOOT=d
else
  DRIVE="file=${DISK//,/,,},format=$FORMAT,if=ide,index=0,media=disk,snapshot=on" BOOT=c
fi
START=$(date +%s.%N)
"$QEMU" -machine pc,accel=tcg -m 512 -smp 1 -snapshot \
  -drive "$DRIVE" -boot "$BOOT" \
  -nic none -nographic -vga none -no-reboot \
  < /dev/null > "$LOG" 2>&1 &
QPID=$!

elapsed() { echo "$(date +%s.%N) $START" | awk '{ printf "%.1f", $1 - $2 }'; }
# Dead ends that never reach the marker: fail fast (after 2 s more output).
DEAD_END='No bootable device|Kernel panic - not syncing|grub rescue>|grub> '
result=timeout dead=
while :; do
  if grep -aq "$MARKER" "$LOG"; then result=pass; break; fi
  if ! kill -0 "$QPID" 2>/dev/null; then result=exited; break; fi
  if [ -z "$dead" ] && grep -aqE "$DEAD_END" "$LOG"; then dead=$(grep -aoE "$DEAD_END" "$LOG" | head -1); sleep 2; continue; fi
  if [ -n "$dead" ]; then result=dead; break; fi
  if [ "$(echo "$(date +%s.%N) $START $TIMEOUT" | awk '{ print ($1 - $2 >= $3) }')" = 1 ]; then break; fi
  sleep 0.5
done
T=$(elapsed)
# One last look: QEMU may have printed the marker and powered off between two polls.
[ "$result" = pass ] || ! grep -aq "$MARKER" "$LOG" || result=pass

if [ "$result" = pass ]; then
  echo "boot-test: $FORMAT: marker seen after $T s"
  exit 0
fi
case $result in
  timeout) why="no $MARKER within ${TIMEOUT} s" ;;
  exited) why="QEMU exited after $T s without $MARKER" ;;
  dead) why="stopped after $T s at \"${dead% }\"" ;;
esac
echo "boot-test: $FORMAT: FAILED: $why ($DISK)"
echo "---- last 30 lines of serial output ----"
tr -d '\r' < "$LOG" | sed 's/\x1b\[[0-9;?]*[a-zA-Z]//g; s/\x1bc//g' | tail -n 30 | awk 1
echo "----------------------------------------"
exit 1
