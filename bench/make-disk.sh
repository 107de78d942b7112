#!/usr/bin/env bash
# Creates (once) the conventional raw disk image the disk-view benchmarks
# convert with qemu-img: a sparse file of SIZE bytes (uniso's --disk-size, the
# size of its raw view), one MBR partition from sector 2048 to the end (sfdisk,
# type 83, bootable, like uniso's), and an ext4 file system made from the
# cached tree by `mke2fs -t ext4 -d TREE -E offset=1048576`. No boot loader:
# it does not need to boot, it is the input of `qemu-img convert`.
# Cached in CACHE/conv-disk-SIZE-KEY.raw, KEY a hash of this script (so
# changing the recipe rebuilds it); CACHE/conv-disk-SIZE-KEY.raw.done holds
# the seconds making it took. Prints the image's path on stdout.
#   make-disk.sh CACHE SIZE      (CACHE = the directory make-tree.sh printed)
set -euo pipefail
[ $# = 2 ] || { echo "usage: make-disk.sh CACHE SIZE" >&2; exit 2; }
CACHE=$(realpath "$1") SIZE=$2
[[ "$SIZE" =~ ^[0-9]+$ ]] && [ $((SIZE % 1048576)) = 0 ] && [ "$SIZE" -ge $((64 << 20)) ] ||
  { echo "make-disk.sh: SIZE must be a multiple of 1 MiB and >= 64 MiB, not '$SIZE'" >&2; exit 2; }
TREE="$CACHE/tree"
[ -d "$TREE" ] || { echo "make-disk.sh: no tree in $CACHE" >&2; exit 1; }
KEY=$(sha256sum "$0" | cut -c1-12)
OUT="$CACHE/conv-disk-$SIZE-$KEY.raw"
if [ -f "$OUT.done" ] && [ -f "$OUT" ]; then echo "$OUT"; exit 0; fi

rm -f "$CACHE"/conv-disk-*.raw "$CACHE"/conv-disk-*.raw.done   # older recipes or sizes
t0=$EPOCHREALTIME
TMP="$OUT.tmp"
rm -f "$TMP"
truncate -s "$SIZE" "$TMP"
echo 'start=2048, type=83, bootable' | sfdisk -q --label dos "$TMP" >/dev/null
PART_BYTES=$((SIZE - 1048576))
mke2fs -q -F -t ext4 -d "$TREE" -E offset=1048576 "$TMP" "$((PART_BYTES / 1024))k"
sync "$TMP"
mv "$TMP" "$OUT"
# .done holds how long making it took
awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f\n", b - a }' > "$OUT.done"
echo "make-disk: made $OUT in $(cat "$OUT.done") s" >&2
echo "$OUT"
