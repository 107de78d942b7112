#!/usr/bin/env bash
# Generates the built-in sample appliance of `make demo`: the boot-check
# appliance of make-boot-appliance.sh under the sample's name (a Debian 12
# kernel, our initramfs, busybox-static, from Debian packages cached in
# vm-images/cache/debs), with hostname "sample", a /etc/motd and a
# /usr/share/doc/sample/ file, packed like a TurnKey release ISO
# (casper/10root.squashfs + isolinux). Its disk views boot: /sbin/init prints
# the motd and UNISO-BOOT-OK on the serial console, then powers off.
# The ISO is cached in vm-images/cache/iso (keyed by its inputs), so reruns are
# fast and offline; the first run downloads the two .debs if they are missing.
#   make-sample-appliance.sh OUTDIR   -> prints OUTDIR/turnkey-sample-1.0-bookworm-amd64.iso
set -euo pipefail
[ $# = 1 ] || { echo "usage: make-sample-appliance.sh OUTDIR" >&2; exit 2; }
exec "$(dirname "$0")/make-boot-appliance.sh" "$1" sample
