#!/usr/bin/env bash
# Installs the Debian packages uniso needs to build, run and test, when any
# is missing (idempotent; used by `make` and by CI). Needs root for apt-get.
set -euo pipefail
PACKAGES=(
  # FUSE: fuse-native links libfuse2; fusermount3 unmounts
  libfuse2 fuse3
  # the native addon (decompressors for squashfs input; libdeflate inflates pool blocks)
  build-essential python3 liblzma-dev libzstd-dev liblz4-dev liblzo2-dev libxxhash-dev libdeflate-dev
  # image tools uniso runs (grub-mkimage and the BIOS modules for the disk images)
  xorriso attr grub-common grub-pc-bin
  # fixtures, the demo and the oracles the tests compare against
  isolinux syslinux-common squashfs-tools squashfs-tools-ng busybox-static e2fsprogs
  libarchive-tools libcap2-bin acl libxml2-utils python3-yaml jq qemu-utils qemu-system-x86 fdisk xz-utils
  # uniso mount --nfs (NFS-Ganesha with its VFS backend, rpcbind) and the NFS/HTTP client oracles of the tests
  nfs-ganesha nfs-ganesha-vfs rpcbind libnfs-utils wget curl
  # make bench: the bench tree (debootstrap), its timing (GNU time), the squashfuse baseline, and
  # the remote mount section's HTTP server and httpdirfs baseline
  debootstrap time squashfuse nginx httpdirfs
)
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "installing Debian packages: ${missing[*]}" >&2
if [ "$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
# the bench starts nginx itself, on its own port: stop the service Debian's package started
if printf '%s\n' "${missing[@]}" | grep -qx nginx; then
  $SUDO service nginx stop >/dev/null 2>&1 || $SUDO systemctl stop nginx >/dev/null 2>&1 || true
fi
