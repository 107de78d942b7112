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
  xorriso attr grub-common grub-pc-bin grub-efi-amd64-bin
  # fixtures, the demo and the oracles the tests compare against
  isolinux syslinux-common squashfs-tools squashfs-tools-ng busybox-static e2fsprogs
  libarchive-tools libcap2-bin acl libxml2-utils python3-yaml jq qemu-utils qemu-system-x86 fdisk xz-utils
  # UEFI: the ESP's checker (fsck.fat), the GPT's (sgdisk), OVMF to boot the disk views; vagrant accepts the boxes
  dosfstools mtools gdisk ovmf vagrant
  # uniso mount --nfs (NFS-Ganesha with its VFS backend, rpcbind) and the NFS/HTTP client oracles of the tests
  nfs-ganesha nfs-ganesha-vfs rpcbind libnfs-utils wget curl
  # make bench: the bench tree (debootstrap), its timing (GNU time) and the squashfuse baseline
  debootstrap time squashfuse
  # reading a universal ISO from a URL: the tests' web server and their TLS CA (nginx, openssl; test/lib/nginx.ts
  # runs its own, not the package's service) and the httpdirfs baseline of make bench
  nginx openssl httpdirfs
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
# Debian's nginx package starts its own service on port 80 where services may start: stop and disable it
if [[ " ${missing[*]} " == *" nginx "* ]]; then
  if command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
    $SUDO systemctl disable --now nginx.service >/dev/null 2>&1 || true
  else
    $SUDO service nginx stop >/dev/null 2>&1 || true
    $SUDO update-rc.d nginx disable >/dev/null 2>&1 || true
  fi
fi
