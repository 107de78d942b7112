#!/usr/bin/env bash
# `make vm-test-FORMAT`: boots uniso's disk views in QEMU, straight from the
# FUSE mount. Builds (or reuses) the boot-check appliance ISO
# (make-boot-appliance.sh), its universal ISO vm-images/out/bootcheck-universal.iso
# (rebuilt when the appliance ISO or the built uniso, dist/ and the native
# addon, changed), mounts it on vm-images/out/mnt (always unmounted on exit),
# and runs boot-test.sh on each requested view, with BIOS (SeaBIOS):
#   raw    MNT/raw/*.img              (format raw)
#   vmdk   MNT/vm/*-disk1.vmdk        (format vmdk: the streamOptimized disk of the OVF bundle)
#   qcow2  MNT/openstack/*.qcow2      (format qcow2)
#   vhd    MNT/vhd/*.vhd              (format vpc)
#   vhdx   MNT/vhdx/*.vhdx            (format vhdx)
#   vdi    MNT/vdi/*.vdi              (format vdi)
#   azure  MNT/azure/*.vhd            (format vpc: Azure's fixed VHD)
# or with UEFI (OVMF, boot-test.sh's uefi):
#   uefi-VIEW  one of the views above, e.g. uefi-raw, uefi-qcow2, uefi-vhdx
#   uefi       uefi-raw, uefi-qcow2 and uefi-vhdx
# or from CD:
#   live   the appliance ISO itself, then the universal ISO, booted live from CD
#          (isolinux, our initramfs loop-mounts casper/10root.squashfs): the
#          serial console must show the root file system as that squashfs
#   vm-test.sh FORMAT...    (run from anywhere; `make build` first)
# A view missing from the mount fails (FAILED: no ... view in the mount).
# A new disk view: one line in VIEWS below (and its name in the Makefile's
# VM_TEST_BIOS / VM_TEST_UEFI).
# Environment: BOOT_TIMEOUT (seconds per boot, default 180), BOOT_JOBS (boots
# at once, default: the number of cores; each boot's output is printed when it
# ends). Runs hold a lock, so parallel make jobs take turns on the one mount point.
set -euo pipefail
# The disk views: FORMAT -> "DIR PATTERN QEMU-FORMAT" (MNT/DIR/PATTERN, qemu -drive format=)
declare -A VIEWS=(
  [raw]="raw *.img raw"
  [vmdk]="vm *-disk1.vmdk vmdk"
  [qcow2]="openstack *.qcow2 qcow2"
  [vhd]="vhd *.vhd vpc"
  [vhdx]="vhdx *.vhdx vhdx"
  [vdi]="vdi *.vdi vdi"
  [azure]="azure *.vhd vpc"
)
VIEW_NAMES="raw vmdk qcow2 vhd vhdx vdi azure"  # VIEWS's keys, in this order in messages
UEFI_ALL="uefi-raw uefi-qcow2 uefi-vhdx"        # what `uefi` means
KNOWN="${VIEW_NAMES// /, }, live, uefi-VIEW, uefi"
[ $# -ge 1 ] || { echo "usage: vm-test.sh FORMAT... (FORMAT: $KNOWN)" >&2; exit 2; }
cd "$(dirname "$0")/.."
OUT=vm-images/out
MNT=$OUT/mnt
UNI=$OUT/bootcheck-universal.iso
U="node bin/uniso"
TIMEOUT=${BOOT_TIMEOUT:-180}
say() { echo "vm-test: $*" >&2; }

FORMATS=()
for f in "$@"; do
  if [ "$f" = uefi ]; then FORMATS+=($UEFI_ALL); continue; fi
  case $f in live) ;; *) [ -n "${VIEWS[${f#uefi-}]:-}" ] || { echo "vm-test: unknown format $f ($KNOWN)" >&2; exit 2; } ;; esac
  FORMATS+=("$f")
done
[ -d dist ] || { say "dist/ is missing: run make build"; exit 1; }

mkdir -p "$OUT"
exec 9> "$OUT/.vm-test.lock"
flock 9

# 1. the appliance (cached) and its universal ISO (rebuilt only when stale).
ISO=$(vm-images/make-boot-appliance.sh "$OUT" | tail -1)
# `make build` rewrites every dist/ file (tsc), so dist/'s mtimes always look
# new: "newer" is judged by content, a hash of the appliance ISO and of the
# built uniso (dist/*.js, the native addon, package-lock.json) kept in $UNI.inputs.
inputs=$( {
  sha256sum "$ISO" | cut -d' ' -f1
  find dist native/build/Release -type f \( -name '*.js' -o -name '*.node' \) -print0 2>/dev/null | sort -z | xargs -0 -r sha256sum
  sha256sum package-lock.json
} | sha256sum | cut -d' ' -f1)
stale=
if [ ! -f "$UNI" ]; then stale="no $UNI yet"
elif [ "$ISO" -nt "$UNI" ]; then stale="$ISO is newer"
elif [ "$(cat "$UNI.inputs" 2>/dev/null)" != "$inputs" ]; then stale="the appliance or dist/ changed"
fi
if [ -n "$stale" ]; then
  say "uniso build $ISO -o $UNI ($stale)"
  rm -f "$UNI" "$UNI.inputs"
  $U build "$ISO" -o "$OUT/.bootcheck-universal.tmp.iso"
  mv "$OUT/.bootcheck-universal.tmp.iso" "$UNI"
  echo "$inputs" > "$UNI.inputs"
else
  say "reusing $UNI (built from the same appliance and dist/)"
fi

# 2. the mount: clear a stale one, mount, always unmount.
mkdir -p "$MNT"
mounted() { mountpoint -q "$MNT" || ! ls "$MNT" >/dev/null 2>&1; } # (a dead daemon's mount fails ls)
if mounted; then say "clearing an earlier mount on $MNT"; $U umount "$MNT" || true; fi
cleanup() { if mounted; then $U umount "$MNT" || true; fi; }
trap cleanup EXIT
trap 'exit 130' INT TERM HUP
$U mount "$UNI" "$MNT"

# live: an ISO from CD; the marker must come from the squashfs on the CD, loop-mounted
boot_live() { # NAME ISO
  local log
  log=$(mktemp /tmp/vm-test-live.XXXXXX.log)
  say "live: booting $1 from CD: $2 ($(stat -c %s "$2") bytes)"
  if BOOT_TEST_LOG=$log vm-images/boot-test.sh "$2" cdrom "$TIMEOUT"; then
    if tr -d '\r' < "$log" | grep -aqE '^bootcheck: kernel .*, root: /dev/loop[0-9]+ / squashfs ro'; then
      say "live: $1: the root file system was the CD's squashfs ($(tr -d '\r' < "$log" | grep -aoE 'live: loop-mounting [^ ]+' | head -1))"
      rm -f "$log"
      return 0
    fi
    echo "vm-test: live: $1: FAILED: the marker came, but not from a loop-mounted squashfs:"
    tr -d '\r' < "$log" | grep -a -e '^bootcheck:' -e 'initramfs:' | tail -5
  fi
  rm -f "$log"
  return 1
}

# 3. boot each view: BOOT_JOBS at a time (one QEMU per core), each boot's
# output kept until it ends and then printed whole, in the order they end.
JOBS=${BOOT_JOBS:-$(nproc)}
case $JOBS in ''|*[!0-9]*|0) echo "vm-test: BOOT_JOBS must be a whole number >= 1" >&2; exit 2 ;; esac
RUNS=$(mktemp -d /tmp/vm-test.XXXXXX)
trap 'cleanup; rm -rf "$RUNS"' EXIT
boot_one() { # FORMAT: boots every view it names; its status is the boots'
  local f=$1 view fw dir pattern qfmt views v rc=0
  if [ "$f" = live ]; then
    boot_live "the appliance ISO (conventional)" "$ISO" || rc=1
    boot_live "the universal ISO" "$UNI" || rc=1
    return $rc
  fi
  view=${f#uefi-} fw=bios
  [ "$view" = "$f" ] || fw=uefi
  read -r dir pattern qfmt <<< "${VIEWS[$view]}"
  shopt -s nullglob
  views=("$MNT/$dir"/$pattern)
  shopt -u nullglob
  if [ ${#views[@]} = 0 ]; then
    echo "vm-test: $f: FAILED: no $view view in the mount: nothing matches $MNT/$dir/$pattern"
    echo "vm-test: the mount has: $(cd "$MNT" && ls -d -- * 2>/dev/null | tr '\n' ' ')"
    return 1
  fi
  for v in "${views[@]}"; do
    echo "vm-test: $f: booting $v ($(stat -c %s "$v") bytes, format $qfmt, $fw)"
    vm-images/boot-test.sh "$v" "$qfmt" "$TIMEOUT" "$fw" || rc=1
  done
  return $rc
}
# Prints the boots that ended (their whole output) and records failures.
reap() {
  local r f
  for r in "$RUNS"/*.rc; do
    [ -e "$r" ] || continue
    f=$(basename "$r" .rc)
    cat "$RUNS/$f.out"
    [ "$(cat "$r")" = 0 ] || failed+=("$f")
    rm -f "$r" "$RUNS/$f.out"
  done
}
failed=()
running=0
for f in "${FORMATS[@]}"; do
  if [ "$running" -ge "$JOBS" ]; then wait -n || true; running=$((running - 1)); reap; fi
  ( rc=0; boot_one "$f" > "$RUNS/$f.out" 2>&1 || rc=$?; echo $rc > "$RUNS/$f.rc.tmp"; mv "$RUNS/$f.rc.tmp" "$RUNS/$f.rc" ) &
  running=$((running + 1))
done
wait
reap
if [ ${#failed[@]} -gt 0 ]; then
  echo "vm-test: FAILED: ${failed[*]}"
  exit 1
fi
echo "vm-test: passed: ${FORMATS[*]}"
