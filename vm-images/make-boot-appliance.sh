#!/usr/bin/env bash
# Generates the boot-check fixture appliance: a tiny root tree that really
# boots, packed like a TurnKey release ISO (casper/10root.squashfs + isolinux,
# by test/fixture/make-iso.sh) that boots live from CD (casper/vmlinuz and
# casper/initrd.gz: the same kernel and initramfs, which loop-mounts the
# squashfs as the root with boot=casper). The tree holds, from Debian 12 packages:
#   /boot/vmlinuz-VER          the current bookworm kernel (linux-image-amd64's dependency)
#   /boot/initrd.img-VER       an initramfs built here: busybox + the modules to mount
#                              an ext4 root on an IDE (ata_piix) disk or a squashfs on a
#                              CD; its /init (boot-appliance/initramfs-init) mounts
#                              root=UUID=... (or, live, the CD's squashfs) read-only
#                              and switch_roots to /sbin/init
#   /sbin/init                 boot-appliance/sbin-init: prints UNISO-BOOT-OK on ttyS0, powers off
#   /bin/busybox (+ applets)   from busybox-static
#   /etc/os-release, /etc/debian_version, /vmlinuz and /initrd.img symlinks
# The .deb files and the ISO are cached in vm-images/cache/ (the ISO keyed by the
# inputs: package file names, these scripts), so reruns are fast and offline.
# Content is deterministic: fixed mtimes, sorted cpio, gzip -n, SOURCE_DATE_EPOCH.
#   make-boot-appliance.sh OUTDIR [bootcheck|sample]
# bootcheck (default) -> prints OUTDIR/turnkey-bootcheck-1.0-bookworm-amd64.iso
# sample              -> prints OUTDIR/turnkey-sample-1.0-bookworm-amd64.iso: the
#   built-in sample appliance of `make demo` (make-sample-appliance.sh), the same
#   tree as hostname "sample" with a /etc/motd and /usr/share/doc/sample/
# Environment: REFRESH_DEBS=1 re-resolves and downloads the current kernel;
#   BOOT_MODULES (default "ata_piix sd_mod ext4 sr_mod isofs squashfs loop") are the initramfs's modules
#   (their dependencies and soft dependencies are added); UNISO_VM_CACHE moves the cache.
set -euo pipefail
[ $# -ge 1 ] && [ $# -le 2 ] || { echo "usage: make-boot-appliance.sh OUTDIR [bootcheck|sample]" >&2; exit 2; }
OUTDIR=$1 VARIANT=${2:-bootcheck}
case $VARIANT in
  bootcheck|sample) ;;
  *) echo "make-boot-appliance: unknown appliance $VARIANT (bootcheck, sample)" >&2; exit 2 ;;
esac
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
CACHE=${UNISO_VM_CACHE:-$HERE/cache}
MODULES=${BOOT_MODULES:-ata_piix sd_mod ext4 sr_mod isofs squashfs loop}
NAME=turnkey-$VARIANT-1.0-bookworm-amd64.iso
# the sample's documentation file: the GPL-2 text when the host has it (a text file worth compressing)
SAMPLE_DOC=/usr/share/common-licenses/GPL-2
EPOCH=1709294400 # 2024-03-01 12:00:00 UTC, as the sample appliance
umask 022
export LC_ALL=C SOURCE_DATE_EPOCH=$EPOCH

say() { echo "make-boot-appliance: $*" >&2; }
die() { say "$*"; exit 1; }
for tool in dpkg-deb xz gzip mksquashfs xorriso node sha256sum; do
  command -v "$tool" >/dev/null || die "$tool not found (apt-get install dpkg xz-utils gzip squashfs-tools xorriso; node 20)"
done
[ -f /usr/lib/ISOLINUX/isolinux.bin ] || die "isolinux not found (apt-get install isolinux syslinux-common)"
mkdir -p "$CACHE/debs" "$CACHE/iso" "$OUTDIR"

# --- 1. the packages: cached .debs, resolved and downloaded only when missing ---
newest_deb() { # PATTERN: the newest cached .deb matching it (by version), or nothing
  ( cd "$CACHE/debs" && ls -1 $1 2>/dev/null | grep -v -e '-unsigned_' -e '-dbg_' | sort -V | tail -1 ) || true
}
download() { # PACKAGE...
  say "downloading $* into $CACHE/debs"
  ( cd "$CACHE/debs" && apt-get download -q -o APT::Sandbox::User=root "$@" >&2 ) \
    || die "apt-get download $* failed (network to deb.debian.org? run apt-get update first)"
}
KDEB=$(newest_deb 'linux-image-6.1.*-amd64_*.deb')
if [ -z "$KDEB" ] || [ "${REFRESH_DEBS:-0}" = 1 ]; then
  KPKG=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '$1 == "Depends:" && $2 ~ /^linux-image-6\.1\..*-amd64$/ { print $2; exit }')
  [ -n "$KPKG" ] || die "cannot resolve linux-image-amd64's kernel package (run apt-get update; Debian 12 sources needed)"
  ls "$CACHE/debs/${KPKG}"_*.deb >/dev/null 2>&1 || download "$KPKG"
  KDEB=$(newest_deb "${KPKG}_*.deb")
fi
BDEB=$(newest_deb 'busybox-static_*.deb')
if [ -z "$BDEB" ] || [ "${REFRESH_DEBS:-0}" = 1 ]; then
  download busybox-static
  BDEB=$(newest_deb 'busybox-static_*.deb')
fi
[ -n "$KDEB" ] && [ -n "$BDEB" ] || die "packages missing from $CACHE/debs"

# --- 2. the cache key: every input of the ISO ---
KEY=$( {
  echo "$KDEB $BDEB modules: $MODULES variant: $VARIANT"
  [ "$VARIANT" != sample ] || [ ! -f "$SAMPLE_DOC" ] || cat "$SAMPLE_DOC"
  cat "$0" "$HERE/mkcpio.mjs" "$HERE/boot-appliance/initramfs-init" "$HERE/boot-appliance/sbin-init" \
      "$REPO/test/fixture/make-iso.sh"
} | sha256sum | cut -c1-16)
CACHED=$CACHE/iso/$VARIANT-$KEY.iso

if [ ! -f "$CACHED" ]; then
  say "building the $VARIANT appliance (kernel package $KDEB, $BDEB)"
  WORK=$(mktemp -d "$CACHE/work.XXXXXX")
  trap 'rm -rf "$WORK"' EXIT
  K=$WORK/kernel INITRD=$WORK/initrd ROOT=$WORK/root BB=$WORK/busybox
  dpkg-deb -x "$CACHE/debs/$BDEB" "$BB"
  BUSYBOX=$BB/bin/busybox
  [ -x "$BUSYBOX" ] || die "$BDEB has no /bin/busybox"
  dpkg-deb -x "$CACHE/debs/$KDEB" "$K"
  VMLINUZ=$(ls -1 "$K"/boot/vmlinuz-* 2>/dev/null)
  [ "$(echo "$VMLINUZ" | wc -l)" = 1 ] && [ -n "$VMLINUZ" ] || die "$KDEB: expected exactly one /boot/vmlinuz-*"
  VER=${VMLINUZ##*/vmlinuz-}
  MODDIR=$K/lib/modules/$VER
  [ -d "$MODDIR" ] || die "$KDEB has no /lib/modules/$VER"
  # The package ships no modules.dep (the postinst runs depmod): make it with busybox depmod.
  [ -f "$MODDIR/modules.dep" ] || "$BUSYBOX" depmod -b "$K" "$VER"

  # --- 3. resolve the modules: modules.dep for hard dependencies (dependencies
  # first), each module's softdep=pre: (e.g. ext4 -> crypto-crc32c) through
  # modules.alias, preferring the *_generic implementation (the TCG CPU has no SSE4.2).
  declare -A PATHOF=() ALIASES=() DEPS=() SEEN=()
  modname() { local b=${1##*/}; b=${b%%.ko*}; echo "${b//-/_}"; }
  while IFS= read -r line; do
    p=${line%%:*}; n=$(modname "$p")
    PATHOF[$n]=$p
    DEPS[$n]=${line#*:}
  done < "$MODDIR/modules.dep"
  while read -r _ al mod; do ALIASES[$al]+=" $mod"; done < <(grep '^alias ' "$MODDIR/modules.alias" || true)
  modcat() { # PATH: the module's bytes, decompressed
    case $1 in
      *.xz) xz -dc "$1" ;; *.zst) zstd -dc "$1" ;; *.gz) gzip -dc "$1" ;; *) cat "$1" ;;
    esac
  }
  softpre() { # NAME: its softdep pre: modules (from the module's .modinfo)
    modcat "$MODDIR/${PATHOF[$1]}" | tr '\0' '\n' | sed -n 's/^softdep=//p' \
      | awk '{ pre = 0; for (i = 1; i <= NF; i++) { if ($i == "pre:") pre = 1; else if ($i == "post:") pre = 0; else if (pre) print $i } }'
  }
  resolve() { # NAME-OR-ALIAS: a module name, or nothing
    local n=${1//-/_} c best=
    if [ -n "${PATHOF[$n]:-}" ]; then echo "$n"; return; fi
    for c in ${ALIASES[$1]:-}; do
      c=${c//-/_}
      [ -n "${PATHOF[$c]:-}" ] || continue
      [ -z "$best" ] && best=$c
      case $c in *generic*) best=$c; break ;; esac
    done
    echo "$best"
  }
  ORDER=()
  visit() { # NAME: append NAME's dependencies, then NAME, to ORDER
    local n=$1 d s r
    [ -z "${SEEN[$n]:-}" ] || return 0
    SEEN[$n]=1
    for d in ${DEPS[$n]:-}; do visit "$(modname "$d")"; done
    for s in $(softpre "$n"); do
      r=$(resolve "$s")
      if [ -n "$r" ]; then visit "$r"; else say "note: soft dependency $s of $n not found, skipped"; fi
    done
    ORDER+=("$n")
  }
  for m in $MODULES; do
    r=$(resolve "$m")
    [ -n "$r" ] || die "module $m not found in $KDEB"
    visit "$r"
  done
  say "kernel $VER, initramfs modules (load order): ${ORDER[*]}"

  # --- 4. the initramfs ---
  mkdir -p "$INITRD"/{bin,dev,proc,sys,newroot,lib/modules/"$VER"}
  cp "$BUSYBOX" "$INITRD/bin/busybox"
  for app in sh mount umount cat echo sleep insmod findfs switch_root poweroff uname ls grep wc hexdump mkdir; do
    ln -s busybox "$INITRD/bin/$app"
  done
  cp "$HERE/boot-appliance/initramfs-init" "$INITRD/init"
  chmod 0755 "$INITRD/init"
  : > "$INITRD/lib/modules/load-order"
  for n in "${ORDER[@]}"; do
    p=${PATHOF[$n]} dst=${PATHOF[$n]%.xz}; dst=${dst%.zst}; dst=${dst%.gz}
    mkdir -p "$INITRD/lib/modules/$VER/$(dirname "$dst")"
    modcat "$MODDIR/$p" > "$INITRD/lib/modules/$VER/$dst"   # busybox insmod wants plain .ko
    echo "$dst" >> "$INITRD/lib/modules/load-order"
  done
  node "$HERE/mkcpio.mjs" --mtime "$EPOCH" --node dev/console:c:5:1:0600 --node dev/null:c:1:3:0666 \
    "$INITRD" "$WORK/initrd.cpio"

  # --- 5. the root tree ---
  mkdir -p "$ROOT"/{bin,sbin,boot,etc,dev,proc,sys,run,tmp,root,mnt}
  cp "$BUSYBOX" "$ROOT/bin/busybox"
  for app in sh cat echo ls mount umount grep uname sync sleep dmesg ps poweroff reboot; do
    ln -s busybox "$ROOT/bin/$app"
  done
  cp "$HERE/boot-appliance/sbin-init" "$ROOT/sbin/init"
  chmod 0755 "$ROOT/sbin/init"
  cp "$VMLINUZ" "$ROOT/boot/vmlinuz-$VER"
  gzip -n -9 < "$WORK/initrd.cpio" > "$ROOT/boot/initrd.img-$VER"
  chmod 0644 "$ROOT/boot/vmlinuz-$VER" "$ROOT/boot/initrd.img-$VER"
  ln -s "boot/vmlinuz-$VER" "$ROOT/vmlinuz"
  ln -s "boot/initrd.img-$VER" "$ROOT/initrd.img"
  cat > "$ROOT/etc/os-release" <<'OS'
PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"
NAME="Debian GNU/Linux"
VERSION_ID="12"
VERSION="12 (bookworm)"
VERSION_CODENAME=bookworm
ID=debian
HOME_URL="https://www.debian.org/"
SUPPORT_URL="https://www.debian.org/support"
BUG_REPORT_URL="https://bugs.debian.org/"
OS
  echo 12.11 > "$ROOT/etc/debian_version"
  echo "$VARIANT" > "$ROOT/etc/hostname"
  if [ "$VARIANT" = sample ]; then
    printf 'Welcome to the uniso sample appliance.\n' > "$ROOT/etc/motd"
    mkdir -p "$ROOT/usr/share/doc/sample"
    if [ -f "$SAMPLE_DOC" ]; then cp "$SAMPLE_DOC" "$ROOT/usr/share/doc/sample/GPL-2"
    else seq 1 20000 > "$ROOT/usr/share/doc/sample/numbers"; fi
  fi
  echo '# UNCONFIGURED FSTAB FOR BASE SYSTEM' > "$ROOT/etc/fstab"
  printf 'root:x:0:0:root:/root:/bin/sh\n' > "$ROOT/etc/passwd"
  printf 'root:x:0:\n' > "$ROOT/etc/group"
  chmod 1777 "$ROOT/tmp"
  chmod 0700 "$ROOT/root"
  find "$ROOT" -depth -print0 | xargs -0 touch -h -d "@$EPOCH"

  # the live boot files beside the squashfs, as casper has them
  mkdir -p "$WORK/iso-extra/casper"
  cp "$ROOT/boot/vmlinuz-$VER" "$WORK/iso-extra/casper/vmlinuz"
  cp "$ROOT/boot/initrd.img-$VER" "$WORK/iso-extra/casper/initrd.gz"
  find "$WORK/iso-extra" -print0 | xargs -0 touch -h -d "@$EPOCH"
  "$REPO/test/fixture/make-iso.sh" "$ROOT" "$WORK/appliance.iso" xz "$WORK/iso-extra"
  {
    echo "kernel package: $KDEB"
    echo "kernel: $VER"
    echo "busybox package: $BDEB"
    echo "initramfs modules (load order): ${ORDER[*]}"
    echo "initramfs: $(stat -c %s "$ROOT/boot/initrd.img-$VER") bytes, kernel: $(stat -c %s "$ROOT/boot/vmlinuz-$VER") bytes"
  } > "$CACHE/iso/$VARIANT-$KEY.txt"
  mv "$WORK/appliance.iso" "$CACHED"
  # Keep one appliance of each variant: drop the ISOs of earlier inputs.
  for old in "$CACHE"/iso/"$VARIANT"-*.iso; do
    [ "$old" = "$CACHED" ] || rm -f "$old" "${old%.iso}.txt"
  done
  say "cached $CACHED"
fi

# Copy into OUTDIR only when it differs, so its mtime tells consumers (make) whether it changed.
if ! cmp -s "$CACHED" "$OUTDIR/$NAME"; then
  cp "$CACHED" "$OUTDIR/$NAME.tmp"
  mv "$OUTDIR/$NAME.tmp" "$OUTDIR/$NAME"
fi
echo "$OUTDIR/$NAME"
