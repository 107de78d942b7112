#!/usr/bin/env bash
# `make demo`: the main job on the built-in sample appliance. Builds its
# universal ISO, mounts it, copies formats out of the mount and checks them
# with the tools their users have, extracts one without FUSE, unmounts, then
# boots the qcow2 disk it copied out under QEMU (TCG), with BIOS (SeaBIOS)
# and then with UEFI (OVMF), via boot-test.sh: each boot passes when the
# appliance's /sbin/init prints UNISO-BOOT-OK on the serial console. The
# sample appliance (make-sample-appliance.sh) and its packages are cached in
# vm-images/cache, so a rerun is offline. Outputs, and the serial logs of the
# boots (boot-bios.log, boot-uefi.log), stay in demo/.
# Environment: BOOT_TIMEOUT (seconds per boot, default 180).
set -euo pipefail
cd "$(dirname "$0")/.."
U="node bin/uniso"
D=demo
MNT=$D/mnt
DISK_SIZE=2G # the disk views' virtual size (uniso's default is 20G: a smaller one checksums faster)
TIMEOUT=${BOOT_TIMEOUT:-180}
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
cleanup() { if mountpoint -q "$MNT" 2>/dev/null; then $U umount "$MNT" || true; fi; }
trap cleanup EXIT
trap 'exit 130' INT TERM HUP
T0=$(date +%s)

mkdir -p "$D" "$MNT"
say "sample appliance (Debian 12 kernel, our initramfs, busybox-static; TurnKey-layout ISO)"
ISO=$(vm-images/make-sample-appliance.sh "$D" | tail -1)
ls -l "$ISO"

UNI=$D/turnkey-sample-1.0-bookworm-amd64-universal.iso
say "uniso build $ISO -o $UNI --disk-size $DISK_SIZE"
$U build "$ISO" -o "$UNI" --disk-size "$DISK_SIZE"
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

say "copy the OpenStack qcow2 disk out of the mount and check it"
QCOW=$D/turnkey-sample-1.0-bookworm-amd64-openstack.qcow2
cp "$MNT"/openstack/turnkey-sample-1.0-bookworm-amd64-openstack.qcow2 "$QCOW"
(cd "$MNT/openstack" && sha256sum -c ./*.sha256)
qemu-img check "$QCOW"
qemu-img info "$QCOW" | grep -E '^(file format|virtual size|disk size):'

say "the browsable root file system"
ls -l "$MNT/rootfs/bin" | sed -n 1,5p
ls -l "$MNT/rootfs/boot"

say "uniso umount $MNT"
$U umount "$MNT"

say "uniso extract (no FUSE needed)"
$U extract "$UNI" docker/turnkey-sample-1.0-bookworm-amd64-docker.tar -o "$D/docker.tar"
tar -xOf "$D/docker.tar" manifest.json; echo
$U verify "$UNI"

failed=()
for fw in bios uefi; do
  say "boot the copied qcow2 disk under QEMU with $fw ($([ $fw = bios ] && echo SeaBIOS || echo OVMF), TCG): boot-test.sh $QCOW qcow2 $TIMEOUT $fw"
  log=$D/boot-$fw.log
  if BOOT_TEST_LOG=$log vm-images/boot-test.sh "$QCOW" qcow2 "$TIMEOUT" "$fw"; then
    echo "serial console:"
    # the milestones: firmware, GRUB's menu entry, the kernel, the appliance's /sbin/init
    tr -d '\r' < "$log" | sed 's/\x1b\[[0-9;?]*[a-zA-Z]//g' \
      | grep -aoE "Booting from Hard Disk|BdsDxe: starting Boot[0-9A-F]+ \"[^\"]*\"|Booting \`[^']*'|Linux version [^ ]+|bootcheck: kernel .*|Welcome to the uniso sample appliance\.|UNISO-BOOT-OK" \
      | awk '!seen[$0]++' | sed 's/^/  /'
  else
    failed+=("$fw")
  fi
done
[ ${#failed[@]} = 0 ] || { echo "demo: FAILED: the qcow2 disk did not boot with: ${failed[*]} (serial logs: $D/boot-*.log)"; exit 1; }
say "done in $(( $(date +%s) - T0 )) s: outputs in $D/"
