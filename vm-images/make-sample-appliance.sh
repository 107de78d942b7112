#!/usr/bin/env bash
# Generates the built-in sample appliance: a tiny Debian-flavoured root file
# system around busybox-static (from Debian's busybox-static package), packed
# like a TurnKey release ISO (casper/10root.squashfs + isolinux).
#   make-sample-appliance.sh OUTDIR   -> OUTDIR/turnkey-sample-1.0-bookworm-amd64.iso
set -euo pipefail
[ $# = 1 ] || { echo "usage: make-sample-appliance.sh OUTDIR" >&2; exit 2; }
OUT=$1
HERE=$(cd "$(dirname "$0")" && pwd)
BUSYBOX=${BUSYBOX:-/bin/busybox}
[ -x "$BUSYBOX" ] || { echo "make-sample-appliance.sh: $BUSYBOX not found (apt-get install busybox-static)" >&2; exit 1; }
mkdir -p "$OUT"
ROOT=$(mktemp -d "$OUT/rootfs.XXXXXX")
trap 'rm -rf "$ROOT"' EXIT
chmod 0755 "$ROOT"

mkdir -p "$ROOT"/{bin,sbin,etc,dev,proc,sys,tmp,root,var/log,usr/bin,usr/sbin,usr/share/doc/sample}
cp "$BUSYBOX" "$ROOT/bin/busybox"
for app in sh ls cat echo mount umount ps dmesg poweroff; do ln -s busybox "$ROOT/bin/$app"; done
ln -s ../bin/busybox "$ROOT/sbin/init"
cat > "$ROOT/etc/os-release" <<'OS'
PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"
NAME="Debian GNU/Linux"
VERSION_ID="12"
VERSION_CODENAME=bookworm
ID=debian
OS
echo 12.7 > "$ROOT/etc/debian_version"
echo sample > "$ROOT/etc/hostname"
printf 'root:x:0:0:root:/root:/bin/sh\n' > "$ROOT/etc/passwd"
printf 'root:x:0:\n' > "$ROOT/etc/group"
printf 'Welcome to the uniso sample appliance.\n' > "$ROOT/etc/motd"
cp /usr/share/common-licenses/GPL-2 "$ROOT/usr/share/doc/sample/GPL-2" 2>/dev/null || seq 1 20000 > "$ROOT/usr/share/doc/sample/numbers"
chmod 1777 "$ROOT/tmp"
chmod 0700 "$ROOT/root"
mknod -m 0666 "$ROOT/dev/null" c 1 3 2>/dev/null || true
mknod -m 0600 "$ROOT/dev/console" c 5 1 2>/dev/null || true
find "$ROOT" -depth -print0 | xargs -0 touch -h -d '2024-03-01 12:00:00 UTC'
"$HERE/../test/fixture/make-iso.sh" "$ROOT" "$OUT/turnkey-sample-1.0-bookworm-amd64.iso" xz
echo "$OUT/turnkey-sample-1.0-bookworm-amd64.iso"
