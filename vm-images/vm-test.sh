#!/usr/bin/env bash
# `make vm-test-FORMAT`: boots uniso's disk views in QEMU, straight from the
# FUSE mount. Builds (or reuses) the boot-check appliance ISO
# (make-boot-appliance.sh), its universal ISO vm-images/out/bootcheck-universal.iso
# (rebuilt when the appliance ISO or the built uniso, dist/ and the native
# addon, changed), mounts it on vm-images/out/mnt (always unmounted on exit),
# and runs boot-test.sh on each requested view:
#   raw    MNT/raw/*.img              (format raw)
#   vmdk   MNT/vm/*-disk1.vmdk        (format vmdk: the streamOptimized disk of the OVF bundle)
#   qcow2  MNT/openstack/*.qcow2      (format qcow2)
#   vhd    MNT/vhd/*.vhd              (format vpc)
#   live   the appliance ISO itself, then the universal ISO, booted live from CD
#          (isolinux, our initramfs loop-mounts casper/10root.squashfs): the
#          serial console must show the root file system as that squashfs
#   vm-test.sh FORMAT...    (run from anywhere; `make build` first)
# Environment: BOOT_TIMEOUT (seconds per boot, default 180). Runs hold a lock,
# so parallel make jobs take turns on the one mount point.
set -euo pipefail
[ $# -ge 1 ] || { echo "usage: vm-test.sh raw|vmdk|qcow2|vhd|live..." >&2; exit 2; }
cd "$(dirname "$0")/.."
OUT=vm-images/out
MNT=$OUT/mnt
UNI=$OUT/bootcheck-universal.iso
U="node bin/uniso"
TIMEOUT=${BOOT_TIMEOUT:-180}
say() { echo "vm-test: $*" >&2; }

for f in "$@"; do
  case $f in raw|vmdk|qcow2|vhd|live) ;; *) echo "vm-test: unknown format $f (raw, vmdk, qcow2, vhd, live)" >&2; exit 2 ;; esac
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

# 3. boot each view.
failed=()
for f in "$@"; do
  if [ "$f" = live ]; then
    boot_live "the appliance ISO (conventional)" "$ISO" || failed+=(live)
    boot_live "the universal ISO" "$UNI" || failed+=(live)
    continue
  fi
  case $f in
    raw) dir=raw pattern='*.img' qfmt=raw ;;
    vmdk) dir=vm pattern='*-disk1.vmdk' qfmt=vmdk ;;
    qcow2) dir=openstack pattern='*.qcow2' qfmt=qcow2 ;;
    vhd) dir=vhd pattern='*.vhd' qfmt=vpc ;;
  esac
  shopt -s nullglob
  views=("$MNT/$dir"/$pattern)
  shopt -u nullglob
  if [ ${#views[@]} = 0 ]; then
    echo "vm-test: $f: FAILED: no $f view in the mount: nothing matches $MNT/$dir/$pattern"
    echo "vm-test: the mount has: $(cd "$MNT" && ls -d -- * 2>/dev/null | tr '\n' ' ')"
    failed+=("$f")
    continue
  fi
  for v in "${views[@]}"; do
    say "$f: booting $v ($(stat -c %s "$v") bytes, format $qfmt)"
    if vm-images/boot-test.sh "$v" "$qfmt" "$TIMEOUT"; then :; else failed+=("$f"); fi
  done
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "vm-test: FAILED: ${failed[*]}"
  exit 1
fi
echo "vm-test: passed: $*"
