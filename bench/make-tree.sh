#!/usr/bin/env bash
# Creates (once) the benchmark appliance: a real Debian bookworm root tree
# made by debootstrap (minbase + extra packages, >= 500 MB), packed as a
# TurnKey-layout ISO with test/fixture/make-iso.sh (an xz squashfs, as
# TurnKey's release ISOs are). Both are cached under bench/cache/<key>/, where
# the key is a hash of the suite and the package list; the ISO is rebuilt from
# the cached tree when make-iso.sh or the compressor changes (iso-key). Prints
# the cache directory, which holds tree/, the ISO and tree-bytes (du -sb).
#   make-tree.sh            (needs root and network access to the Debian mirror)
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
SUITE=bookworm
MIRROR=${BENCH_MIRROR:-http://deb.debian.org/debian}
ISO_NAME=turnkey-benchcore-18.0-bookworm-amd64.iso
MIN_BYTES=$((500 * 1000 * 1000))
# What a TurnKey core appliance roughly carries, plus a compiler so the tree
# is comfortably over 500 MB.
PACKAGES=(
  perl python3 python3-pip locales man-db vim git openssh-server curl wget
  systemd systemd-sysv dbus ca-certificates less iproute2 iputils-ping procps
  sudo rsync bash-completion cron logrotate gcc make libc6-dev
)

[ "$(id -u)" = 0 ] || { echo "make-tree.sh: must run as root (debootstrap)" >&2; exit 1; }
ISO_COMP=xz
KEY=$(echo "$SUITE minbase ${PACKAGES[*]}" | sha256sum | cut -c1-16)
ISO_KEY=$( { cat "$ROOT/test/fixture/make-iso.sh"; echo "$ISO_COMP"; } | sha256sum | cut -c1-16)
OUT="$HERE/cache/$KEY"
if [ -f "$OUT/done" ] && [ "$(cat "$OUT/iso-key" 2>/dev/null)" = "$ISO_KEY" ]; then echo "$OUT"; exit 0; fi
rm -f "$OUT/done"

mkdir -p "$OUT"
TREE="$OUT/tree"
if [ ! -f "$OUT/tree.done" ]; then
  rm -rf "$TREE"
  include=$(IFS=,; echo "${PACKAGES[*]}")
  echo "make-tree: debootstrap --variant=minbase $SUITE (+${#PACKAGES[@]} packages); this takes several minutes" >&2
  debootstrap --variant=minbase --include="$include" "$SUITE" "$TREE" "$MIRROR" >"$OUT/debootstrap.log" 2>&1 || {
    tail -20 "$OUT/debootstrap.log" >&2
    # debootstrap can leave proc/sys mounted inside the target on failure
    for m in proc sys dev/pts dev; do mountpoint -q "$TREE/$m" 2>/dev/null && umount -l "$TREE/$m" || true; done
    exit 1
  }
  # Drop the downloaded .debs: an appliance image would not carry them.
  rm -f "$TREE"/var/cache/apt/archives/*.deb
  touch "$OUT/tree.done"
fi
for m in proc sys dev/pts; do
  if mountpoint -q "$TREE/$m" 2>/dev/null; then echo "make-tree: $TREE/$m is still mounted" >&2; exit 1; fi
done
BYTES=$(du -sb "$TREE" | cut -f1)
echo "$BYTES" > "$OUT/tree-bytes"
if [ "$BYTES" -lt "$MIN_BYTES" ]; then
  echo "make-tree: tree is only $BYTES bytes (< $MIN_BYTES); add packages to PACKAGES in $0" >&2
  exit 1
fi
echo "make-tree: tree $BYTES bytes; packing $ISO_NAME ($ISO_COMP squashfs)" >&2
"$ROOT/test/fixture/make-iso.sh" "$TREE" "$OUT/$ISO_NAME.tmp" "$ISO_COMP"
mv "$OUT/$ISO_NAME.tmp" "$OUT/$ISO_NAME"
echo "$ISO_KEY" > "$OUT/iso-key"
touch "$OUT/done"
echo "$OUT"
