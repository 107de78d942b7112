#!/usr/bin/env bash
# `make demo`: the main job on the built-in sample appliance. Builds its
# universal ISO, mounts it, copies formats out of the mount and checks them
# with the tools their users have, extracts one without FUSE, unmounts.
set -euo pipefail
cd "$(dirname "$0")/.."
U="node bin/uniso"
D=demo
MNT=$D/mnt
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
cleanup() { mountpoint -q "$MNT" 2>/dev/null && $U umount "$MNT" || true; }
trap cleanup EXIT

mkdir -p "$D" "$MNT"
say "sample appliance (busybox-static, TurnKey-layout ISO)"
ISO=$(vm-images/make-sample-appliance.sh "$D" | tail -1)
ls -l "$ISO"

say "uniso build $ISO -o $D/turnkey-sample-1.0-bookworm-amd64-universal.iso"
UNI=$D/turnkey-sample-1.0-bookworm-amd64-universal.iso
$U build "$ISO" -o "$UNI"
ls -l "$ISO" "$UNI"
$U info "$UNI"

say "uniso mount $UNI $MNT"
$U mount "$UNI" "$MNT"
find "$MNT" -maxdepth 2 -not -path "$MNT/rootfs/*" | sort
cat "$MNT/README.txt"

say "copy the Proxmox template out of the mount and check it"
cp "$MNT"/proxmox/*.tar.gz "$D/"
(cd "$MNT/proxmox" && sha256sum -c ./*.sha256)
gzip -t "$D"/debian-12-turnkey-sample_1.0-1_amd64.tar.gz && echo "gzip -t: OK"
tar -tvzf "$D"/debian-12-turnkey-sample_1.0-1_amd64.tar.gz | sed -n 1,8p

say "the browsable root file system"
ls -l "$MNT/rootfs/bin" | sed -n 1,5p

say "uniso umount $MNT"
$U umount "$MNT"

say "uniso extract (no FUSE needed)"
$U extract "$UNI" docker/turnkey-sample-1.0-bookworm-amd64-docker.tar -o "$D/docker.tar"
tar -xOf "$D/docker.tar" manifest.json; echo
$U verify "$UNI"
say "done: outputs in $D/"
