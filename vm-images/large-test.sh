#!/usr/bin/env bash
# `make test-large`: a universal ISO over 4 GiB, end to end. Takes the
# boot-check appliance (make-boot-appliance.sh), adds to its tree a file of
# LARGE_MB MiB (default 4500, plus 12345 bytes) of incompressible data
# (AES-CTR keystream) and a /sbin/init that first prints what the guest's
# kernel reads (the size of the CD's casper/10root.squashfs through isofs and
# the MD5 of its bytes across its first extent's end; the big file's size and
# the MD5 of its bytes across 4 GiB and at its end, through the loop-mounted
# squashfs), packs it as a live ISO (its casper/10root.squashfs is over
# 4 GiB: an ISO 9660 multi-extent file), and
#   1. builds its universal ISO (--level 1, formats LARGE_FORMATS, default
#      raw,docker,lxc; "all" for every format): the input is read through
#      uniso's ISO reader across the extents, and the universal ISO's squashfs
#      is over 4 GiB again;
#   2. uniso verify;
#   3. xorriso: the squashfs has more than one extent, and its size; xorriso
#      extracts it, the host kernel loop-mounts it (squashfs), cmp of the big
#      file against the source (the host kernel may lack isofs: the guest's
#      checks it, step 6);
#   4. the FUSE mount: cmp of the big file through rootfs/, through the docker
#      view's layer tar (tar -xO), through the lxc squashfs view (loop mount),
#      through the lxc tar.gz (gzip -dc, tar -xO) and through the raw
#      disk view's ext4 (debugfs dump; e2fsck -fn);
#   5. boots the universal ISO live from CD in QEMU (boot-test.sh, BIOS): the
#      marker must come from the loop-mounted squashfs, and the guest's sizes
#      and MD5s must be the host's.
# Prints each step's time. Needs about 3 x LARGE_MB of free space in
# LARGE_TMP (default /tmp); everything is removed on exit (KEEP=1 keeps it).
#   vm-images/large-test.sh      (run from anywhere; `make build` first)
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)
U="node $REPO/bin/uniso"
MB=${LARGE_MB:-4500}
FORMATS=${LARGE_FORMATS:-raw,docker,lxc}
TIMEOUT=${BOOT_TIMEOUT:-300}
say() { echo "test-large: $*" >&2; }
die() { say "FAILED: $*"; exit 1; }
[ -d dist ] || die "dist/ is missing: run make build"
for tool in xorriso unsquashfs openssl debugfs e2fsck qemu-system-x86_64 md5sum; do
  command -v "$tool" >/dev/null || die "$tool not found"
done

WORK=$(mktemp -d "${LARGE_TMP:-/tmp}/uniso-large.XXXXXX")
MOUNTS=()
cleanup() {
  local m
  for m in "${MOUNTS[@]}"; do
    case $m in
      fuse:*) $U umount "${m#fuse:}" 2>/dev/null || true ;;
      losetup:*) losetup -d "${m#losetup:}" 2>/dev/null || true ;;
      *) umount "${m#*:}" 2>/dev/null || true ;;
    esac
  done
  if [ "${KEEP:-0}" = 1 ]; then say "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP
T0=$SECONDS
step() { say "[$((SECONDS - T0)) s] $*"; }

# --- the appliance with the big file ---
ISO=$(vm-images/make-boot-appliance.sh "$REPO/vm-images/out" | tail -1)
step "unpacking $ISO"
xorriso -osirrox on -indev "$ISO" -extract /casper "$WORK/casper" 2>/dev/null
unsquashfs -q -no-progress -d "$WORK/tree" "$WORK/casper/10root.squashfs" >/dev/null
mkdir -p "$WORK/extra/casper"
mv "$WORK/casper/vmlinuz" "$WORK/casper/initrd.gz" "$WORK/extra/casper/"
rm -rf "$WORK/casper"
BIG=$WORK/tree/srv/big.bin
SIZE=$((MB * 1048576 + 12345))
mkdir -p "$WORK/tree/srv"
step "writing $BIG ($SIZE bytes of AES-CTR keystream)"
# (openssl ends on SIGPIPE when head has its bytes)
{ openssl enc -aes-128-ctr -nosalt -pass pass:uniso-large -in /dev/zero 2>/dev/null || true; } | head -c "$SIZE" > "$BIG"
[ "$(stat -c %s "$BIG")" = "$SIZE" ] || die "could not write $SIZE bytes to $BIG"
# the ranges the guest checks: across 4 GiB, and the end of the file
R1_SKIP=4095 R2_SKIP=$((MB - 1)) # in MiB; 2 MiB each (the second one is short: to the end)
md5at() { dd if="$BIG" bs=1M skip="$1" count=2 2>/dev/null | md5sum | cut -d' ' -f1; }
R1=$(md5at $R1_SKIP) R2=$(md5at $R2_SKIP)
SQ_SKIP=4095 # in MiB: the squashfs's 2 MiB around its first extent's end (4 GiB - 2 KiB)
mv "$WORK/tree/sbin/init" "$WORK/tree/sbin/init.bootcheck"
cat > "$WORK/tree/sbin/init" <<EOF
#!/bin/sh
# the large test's init: the big file as the guest reads it, then the boot check's init
PATH=/bin:/sbin
[ -c /dev/console ] || mount -t devtmpfs devtmpfs /dev 2>/dev/null
md5at() { busybox dd if=\$1 bs=1M skip=\$2 count=2 2>/dev/null | busybox md5sum | busybox cut -d' ' -f1; }
# the CD (isofs), which the initramfs moved to /mnt
sq=/mnt/casper/10root.squashfs
echo "largecheck: isofs: squashfs size \$(busybox stat -c %s \$sq) md5 \$(md5at \$sq $SQ_SKIP)" > /dev/console
echo "largecheck: squashfs: size \$(busybox stat -c %s /srv/big.bin) md5 \$(md5at /srv/big.bin $R1_SKIP) \$(md5at /srv/big.bin $R2_SKIP)" > /dev/console
exec /sbin/init.bootcheck
EOF
chmod 0755 "$WORK/tree/sbin/init"
step "packing the input ISO (lz4 squashfs)"
# as test/fixture/make-iso.sh packs the appliance, but ISO level 3: a file of 4 GiB or more needs it
STAGE=$WORK/extra
mkdir -p "$STAGE/isolinux"
mksquashfs "$WORK/tree" "$STAGE/casper/10root.squashfs" -comp lz4 -noappend -quiet -no-progress >/dev/null
cp /usr/lib/ISOLINUX/isolinux.bin /usr/lib/syslinux/modules/bios/ldlinux.c32 "$STAGE/isolinux/"
printf '%s\n' 'SERIAL 0 115200' 'DEFAULT live' 'PROMPT 0' 'LABEL live' '  KERNEL /casper/vmlinuz' \
  '  APPEND initrd=/casper/initrd.gz boot=casper console=ttyS0' > "$STAGE/isolinux/isolinux.cfg"
xorriso -as mkisofs -quiet -o "$WORK/input.iso" -V TURNKEY -R -J -iso-level 3 \
  -isohybrid-mbr /usr/lib/ISOLINUX/isohdpfx.bin -c isolinux/boot.cat -b isolinux/isolinux.bin \
  -no-emul-boot -boot-load-size 4 -boot-info-table "$STAGE" 2>/dev/null
rm -rf "$STAGE"
say "input ISO: $(stat -c %s "$WORK/input.iso") bytes"

# --- 1. build ---
UNI=$WORK/large-universal.iso
step "uniso build --level 1 --formats $FORMATS"
B0=$SECONDS
if [ "$FORMATS" = all ]; then FARGS=(); else FARGS=(--formats "$FORMATS"); fi
$U build "$WORK/input.iso" -o "$UNI" -q --level 1 --disk-size 8G --name turnkey-large-1.0-bookworm-amd64 "${FARGS[@]}"
BUILD_S=$((SECONDS - B0))
rm -f "$WORK/input.iso"
USIZE=$(stat -c %s "$UNI")
step "built $UNI: $USIZE bytes in $BUILD_S s"
[ "$USIZE" -gt $((4 * 1024 * 1024 * 1024)) ] || die "the universal ISO is not over 4 GiB"

# --- 2. verify ---
V0=$SECONDS
$U verify "$UNI" -q || die "uniso verify"
step "uniso verify: passed in $((SECONDS - V0)) s"

# --- 3. xorriso, the host kernel's squashfs ---
SQ=/casper/10root.squashfs
lba=$(xorriso -indev "$UNI" -find "$SQ" -exec report_lba -- 2>/dev/null | grep -c "^File data lba:.*'$SQ'" || true)
xsize=$(xorriso -indev "$UNI" -lsl "$SQ" 2>/dev/null | awk -v p="'$SQ'" '$NF == p { print $5 }')
say "xorriso: $SQ: $lba extents, $xsize bytes"
[ "$lba" -ge 2 ] || die "xorriso reports $lba extent(s) for $SQ (a file over 4 GiB needs several)"
[ "$xsize" -gt $((4 * 1024 * 1024 * 1024)) ] || die "xorriso: $SQ is $xsize bytes"
C0=$SECONDS
xorriso -osirrox on -indev "$UNI" -extract "$SQ" "$WORK/root.squashfs" 2>/dev/null
[ "$(stat -c %s "$WORK/root.squashfs")" = "$xsize" ] || die "xorriso extracted $(stat -c %s "$WORK/root.squashfs") bytes of $SQ"
SQ_MD5=$(dd if="$WORK/root.squashfs" bs=1M skip=$SQ_SKIP count=2 2>/dev/null | md5sum | cut -d' ' -f1)
mkdir -p "$WORK/sq"
mount -t squashfs -o loop,ro "$WORK/root.squashfs" "$WORK/sq"; MOUNTS+=("loop:$WORK/sq")
cmp "$WORK/sq/srv/big.bin" "$BIG" || die "kernel: the big file in the ISO's squashfs differs"
umount "$WORK/sq"; MOUNTS=()
rm -f "$WORK/root.squashfs"
step "xorriso extracted $SQ; the kernel's squashfs: big file identical ($((SECONDS - C0)) s)"

# --- 4. the FUSE mount ---
MNT=$WORK/mnt
mkdir -p "$MNT"
$U mount "$UNI" "$MNT"; MOUNTS+=("fuse:$MNT")
C0=$SECONDS
cmp "$MNT/rootfs/srv/big.bin" "$BIG" || die "rootfs/srv/big.bin differs"
step "rootfs/: big file identical ($((SECONDS - C0)) s)"
if [ -d "$MNT/docker" ]; then
  D=$(ls "$MNT"/docker/*-docker.tar)
  layer=$(tar -tvf "$D" | sort -k3,3n | tail -1 | awk '{ print $NF }')
  listed=$(tar -xOf "$D" "$layer" | tar -tvf - srv/big.bin | awk '{ print $3 }')
  [ "$listed" = "$SIZE" ] || die "docker layer: tar lists srv/big.bin as $listed bytes, not $SIZE"
  C0=$SECONDS
  tar -xOf "$D" "$layer" | tar -xOf - srv/big.bin | cmp - "$BIG" || die "docker layer: srv/big.bin differs"
  step "docker view: tar lists $SIZE bytes; tar -xO identical ($((SECONDS - C0)) s)"
fi
if [ -d "$MNT/lxc" ]; then
  L=$(ls "$MNT"/lxc/*-rootfs.squashfs)
  lsize=$(unsquashfs -lls "$L" srv/big.bin 2>/dev/null | awk '$NF ~ /srv\/big.bin$/ { print $3 }')
  [ "$lsize" = "$SIZE" ] || die "lxc squashfs: unsquashfs lists srv/big.bin as $lsize bytes"
  mount -t squashfs -o loop,ro "$L" "$WORK/sq"; MOUNTS+=("loop:$WORK/sq")
  C0=$SECONDS
  cmp "$WORK/sq/srv/big.bin" "$BIG" || die "lxc squashfs view: srv/big.bin differs"
  step "lxc squashfs view: unsquashfs lists $SIZE bytes; loop-mounted, identical ($((SECONDS - C0)) s)"
  umount "$WORK/sq"; unset 'MOUNTS[-1]'
  # the unified tar.gz: spliced deflate over 4 GiB (gzip -dc checks the trailer: CRC-32, size mod 2^32)
  G=$(ls "$MNT"/lxc/*-incus.tar.gz)
  C0=$SECONDS
  gzip -dc "$G" | tar -xOf - rootfs/srv/big.bin | cmp - "$BIG" || die "lxc tar.gz view: gzip -dc, or rootfs/srv/big.bin differs"
  step "lxc tar.gz view ($(stat -c %s "$G") bytes): gzip -dc (trailer checked) | tar -xO identical ($((SECONDS - C0)) s)"
fi
if [ -d "$MNT/raw" ]; then
  R=$(ls "$MNT"/raw/*.img)
  read -r start sectors < <(sfdisk -d "$R" | awk -F'[=,]' '/name="root"/ { gsub(/ /, ""); print $2, $4 }')
  dev=$(losetup -r -f --show -o $((start * 512)) --sizelimit $((sectors * 512)) "$R")
  MOUNTS+=("losetup:$dev")
  e2fsck -fn "$dev" >/dev/null 2>&1 || { losetup -d "$dev"; die "e2fsck -fn of the raw view's root file system"; }
  esize=$(debugfs -R 'stat /srv/big.bin' "$dev" 2>/dev/null | sed -n 's/.*Size: \([0-9]*\)$/\1/p' | head -1)
  C0=$SECONDS
  debugfs -R "dump /srv/big.bin $WORK/dumped" "$dev" >/dev/null 2>&1
  losetup -d "$dev"; unset 'MOUNTS[-1]'
  cmp "$WORK/dumped" "$BIG" || die "raw view: debugfs dump of srv/big.bin differs"
  rm -f "$WORK/dumped"
  [ "$esize" = "$SIZE" ] || die "raw view: debugfs says srv/big.bin is $esize bytes"
  step "raw view: e2fsck -fn clean, debugfs size $esize, dump identical ($((SECONDS - C0)) s)"
fi
$U umount "$MNT"; MOUNTS=()

# --- 5. boot it live ---
LOG=$WORK/boot.log
step "booting $UNI live from CD (BIOS, TCG)"
BOOT_TEST_LOG=$LOG vm-images/boot-test.sh "$UNI" cdrom "$TIMEOUT" || die "live boot of the universal ISO"
tr -d '\r' < "$LOG" | grep -aqE '^bootcheck: kernel .*, root: /dev/loop[0-9]+ / squashfs ro' \
  || die "the marker came, but not from a loop-mounted squashfs"
want="largecheck: isofs: squashfs size $xsize md5 $SQ_MD5
largecheck: squashfs: size $SIZE md5 $R1 $R2"
got=$(tr -d '\r' < "$LOG" | grep -a '^largecheck:' | head -2)
[ "$got" = "$want" ] || die "the guest read the big files wrong: \"$got\", expected \"$want\""
step "live boot: root was the CD's squashfs; the guest read:"
echo "$got" | sed 's/^/    /' >&2
say "passed: universal ISO $USIZE bytes, build $BUILD_S s, total $((SECONDS - T0)) s"
