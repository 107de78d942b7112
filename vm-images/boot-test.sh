#!/usr/bin/env bash
# Boots a disk image (or an ISO from CD) in QEMU and checks that it reaches
# the boot-check appliance's /sbin/init, which prints the marker line
# UNISO-BOOT-OK on the serial port (see make-boot-appliance.sh).
#   boot-test.sh DISK FORMAT [TIMEOUT_S [FIRMWARE]]
# FORMAT is a qemu -drive format (raw, vmdk, qcow2, vpc, vhdx, vdi), or cdrom:
# DISK is an ISO booted from the CD drive (El Torito, isolinux: BIOS only);
# TIMEOUT_S defaults to 180. FIRMWARE is bios (default: SeaBIOS, the disk's
# MBR boot code) or uefi (OVMF: the disk's EFI system partition,
# EFI/BOOT/BOOTX64.EFI); the environment's BOOT_FIRMWARE sets the default.
# The machine: qemu-system-x86_64 -machine pc (i440FX, PIIX IDE), TCG (no KVM),
# 512 MiB, the disk as the first IDE disk, -snapshot (the file is opened
# read-only and never written, so it can live on a read-only FUSE mount), no
# network, -nographic with no VGA card, so the serial port on QEMU's stdout
# (captured to a log) shows the firmware and GRUB as well as the kernel
# (console=ttyS0) and the appliance. With uefi the same machine boots OVMF
# (Debian's ovmf: OVMF_CODE_4M.fd as read-only pflash, and a copy of
# OVMF_VARS_4M.fd in a temporary file, removed on exit, as its variable
# store); OVMF drives the PIIX IDE disk itself, so BIOS and UEFI boots use
# the same machine, disk controller and initramfs.
# Passes (exit 0, "boot-test: FORMAT: marker seen after N s", with
# ", uefi" after FORMAT for uefi) when the marker appears within the timeout;
# otherwise (also early, at a dead end: SeaBIOS's "No bootable device", OVMF
# falling back to its UEFI shell, a GRUB prompt, a kernel panic) prints the last 30 lines of the serial output and exits 1.
# QEMU is always killed on exit.
# Environment: QEMU (default qemu-system-x86_64), BOOT_TEST_LOG (keep the
# serial log in this file), OVMF_CODE and OVMF_VARS (the firmware files).
set -euo pipefail
[ $# -ge 2 ] && [ $# -le 4 ] || { echo "usage: boot-test.sh DISK FORMAT [TIMEOUT_S [bios|uefi]]" >&2; exit 2; }
DISK=$1 FORMAT=$2 TIMEOUT=${3:-180} FIRMWARE=${4:-${BOOT_FIRMWARE:-bios}}
MARKER=UNISO-BOOT-OK
QEMU=${QEMU:-qemu-system-x86_64}
command -v "$QEMU" >/dev/null || { echo "boot-test: $QEMU not found (apt-get install qemu-system-x86)" >&2; exit 1; }
case $TIMEOUT in ''|*[!0-9]*) echo "boot-test: TIMEOUT_S must be a whole number of seconds" >&2; exit 2 ;; esac
OVMF_CODE=${OVMF_CODE:-/usr/share/OVMF/OVMF_CODE_4M.fd}
OVMF_VARS=${OVMF_VARS:-/usr/share/OVMF/OVMF_VARS_4M.fd}
case $FIRMWARE in
  bios) NAME=$FORMAT ;;
  uefi)
    NAME="$FORMAT, uefi"
    [ "$FORMAT" != cdrom ] || { echo "boot-test: cdrom: the ISO boots with isolinux, BIOS only (no uefi)" >&2; exit 2; }
    [ -f "$OVMF_CODE" ] && [ -f "$OVMF_VARS" ] || { echo "boot-test: OVMF not found ($OVMF_CODE, $OVMF_VARS): apt-get install ovmf" >&2; exit 1; }
    ;;
  *) echo "boot-test: FIRMWARE must be bios or uefi, not \"$FIRMWARE\"" >&2; exit 2 ;;
esac
[ -f "$DISK" ] || { echo "boot-test: $FORMAT: no such disk image: $DISK" >&2; exit 1; }

LOG=${BOOT_TEST_LOG:-$(mktemp /tmp/boot-test.XXXXXX.log)}
: > "$LOG"
QPID= VARS=
cleanup() {
  if [ -n "$QPID" ] && kill -0 "$QPID" 2>/dev/null; then
    kill -KILL "$QPID" 2>/dev/null || true
    wait "$QPID" 2>/dev/null || true
  fi
  [ -n "${BOOT_TEST_LOG:-}" ] || rm -f "$LOG"
  [ -z "$VARS" ] || rm -f "$VARS"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

# The path goes in a -drive option: commas must be doubled.
if [ "$FORMAT" = cdrom ]; then
  DRIVE="file=${DISK//,/,,},format=raw,if=ide,index=1,media=cdrom,readonly=on" BOOT=d
else
  DRIVE="file=${DISK//,/,,},format=$FORMAT,if=ide,index=0,media=disk,snapshot=on" BOOT=c
fi
FW=()
if [ "$FIRMWARE" = uefi ]; then
  # OVMF writes its boot entries into the variable store: a private copy per boot.
  VARS=$(mktemp /tmp/boot-test.XXXXXX.vars.fd)
  cp "$OVMF_VARS" "$VARS"
  FW=(-drive "if=pflash,format=raw,unit=0,readonly=on,file=${OVMF_CODE//,/,,}"
      -drive "if=pflash,format=raw,unit=1,file=${VARS//,/,,}")
  BOOT= # OVMF's boot order: its own, from the devices it finds
fi
START=$(date +%s.%N)
"$QEMU" -machine pc,accel=tcg -m 512 -smp 1 -snapshot \
  "${FW[@]}" -drive "$DRIVE" ${BOOT:+-boot "$BOOT"} \
  -nic none -nographic -vga none -no-reboot \
  < /dev/null > "$LOG" 2>&1 &
QPID=$!

elapsed() { echo "$(date +%s.%N) $START" | awk '{ printf "%.1f", $1 - $2 }'; }
# Dead ends that never reach the marker: fail fast (after 2 s more output).
# SeaBIOS: "No bootable device"; OVMF, when no boot option loaded, starts its
# built-in UEFI shell ("UEFI Interactive Shell", then "Shell> "). (OVMF's "BdsDxe: failed to load Boot0001 ..."
# is no dead end: it is printed on every good boot too, for the machine's
# empty CD drive, before it loads the disk.) GRUB's prompts (GRUB found no
# grub.cfg or its config failed), a kernel panic.
DEAD_END='No bootable device|UEFI Interactive Shell|Shell> |Kernel panic - not syncing|grub rescue>|grub> '
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
  echo "boot-test: $NAME: marker seen after $T s"
  exit 0
fi
case $result in
  timeout) why="no $MARKER within ${TIMEOUT} s" ;;
  exited) why="QEMU exited after $T s without $MARKER" ;;
  dead) why="stopped after $T s at \"${dead% }\"" ;;
esac
echo "boot-test: $NAME: FAILED: $why ($DISK)"
echo "---- last 30 lines of serial output ----"
tr -d '\r' < "$LOG" | sed 's/\x1b\[[0-9;?]*[a-zA-Z]//g; s/\x1bc//g' | tail -n 30 | awk 1
echo "----------------------------------------"
exit 1
