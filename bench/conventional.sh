#!/usr/bin/env bash
# The conventional pipeline the benchmark compares `uniso build` against:
# from the same TurnKey-layout ISO, produce every container format as a
# separate file with the usual tools, one after the other:
#   unsquashfs   copy casper/10root.squashfs out of the ISO (xorriso; this
#                kernel has no iso9660 driver for a loop mount), unsquashfs it
#   openvz, opennode, proxmox, xen
#                tar czf of the tree (members "./..."), once per format
#                (opennode also gets its small .ovf descriptor)
#   lxc          tar czf of metadata.yaml + the tree under rootfs/
#   docker       tar cf of the layer, sha256 of it, then the `docker load`
#                archive (OCI blobs + index.json + manifest.json + oci-layout)
#   squashfs     mksquashfs -comp gzip of the tree (the live root filesystem)
#   sync         flush everything written to disk
# tar runs with --numeric-owner --xattrs --xattrs-include='*', gzip at its
# default level 6 (uniso's pool: libdeflate level 10).
# Writes "part<TAB>seconds" lines to TIMES and "file<TAB>bytes" lines to SIZES.
#   conventional.sh ISO OUTDIR TIMES SIZES
set -euo pipefail
[ $# = 4 ] || { echo "usage: conventional.sh ISO OUTDIR TIMES SIZES" >&2; exit 2; }
ISO=$(realpath "$1") OUT=$(realpath -m "$2") TIMES=$(realpath -m "$3") SIZES=$(realpath -m "$4")
NAME=$(basename "$ISO" .iso)                           # turnkey-benchcore-18.0-bookworm-amd64
# debian-12-turnkey-benchcore_18.0-1_amd64 (TurnKey's container template name)
TEMPLATE=$(sed -E 's/^turnkey-(.+)-([0-9.]+)-bookworm-(amd64)$/debian-12-turnkey-\1_\2-1_\3/' <<<"$NAME")
TAROPTS=(--numeric-owner --xattrs --xattrs-include='*')

TREE="$OUT/tree"

rm -rf "$OUT"
mkdir -p "$OUT"/{openvz,opennode,proxmox,xen,lxc,docker,squashfs}
: > "$TIMES"
: > "$SIZES"

T0=
start() { T0=$EPOCHREALTIME; }
stop() { awk -v a="$T0" -v b="$EPOCHREALTIME" -v p="$1" 'BEGIN { printf "%s\t%.3f\n", p, b - a }' >> "$TIMES"; }
size() { printf '%s\t%s\n' "$1" "$(stat -c %s "$2")" >> "$SIZES"; }

start
xorriso -osirrox on -indev "$ISO" -extract /casper/10root.squashfs "$OUT/10root.squashfs" 2>/dev/null
unsquashfs -no-progress -d "$TREE" "$OUT/10root.squashfs" >/dev/null
rm -f "$OUT/10root.squashfs"
stop unsquashfs

for fmt in openvz opennode proxmox xen; do
  if [ "$fmt" = xen ]; then f="$OUT/xen/$NAME-xen.tar.gz"; else f="$OUT/$fmt/$TEMPLATE.tar.gz"; fi
  start
  tar -czf "$f" "${TAROPTS[@]}" -C "$TREE" .
  if [ "$fmt" = opennode ]; then
    gzsize=$(stat -c %s "$f")
    cat > "$OUT/opennode/$TEMPLATE.ovf" <<XML
<?xml version="1.0" encoding="UTF-8"?>
<Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1" xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1">
  <References><File ovf:id="file1" ovf:href="$TEMPLATE.tar.gz" ovf:size="$gzsize"/></References>
  <DiskSection><Info>template</Info><Disk ovf:diskId="disk1" ovf:fileRef="file1" ovf:format="tar.gz"/></DiskSection>
  <VirtualSystem ovf:id="$NAME"><Info>OpenVZ container</Info>
    <OperatingSystemSection ovf:id="96"><Info>os</Info><Description>$TEMPLATE</Description></OperatingSystemSection>
  </VirtualSystem>
</Envelope>
XML
    size opennode.ovf "$OUT/opennode/$TEMPLATE.ovf"
  fi
  stop "$fmt"
  size "$fmt" "$f"
done

start
mkdir -p "$OUT/lxc/meta"
cat > "$OUT/lxc/meta/metadata.yaml" <<YAML
architecture: "x86_64"
creation_date: $(date +%s)
properties:
  architecture: "x86_64"
  description: "$NAME"
  name: "$NAME"
  os: "debian"
  release: "bookworm"
templates: {}
YAML
# "./x" -> "rootfs/x" for member and hard-link names, not for symlink targets
tar -czf "$OUT/lxc/$NAME-incus.tar.gz" "${TAROPTS[@]}" -C "$OUT/lxc/meta" metadata.yaml \
  -C "$TREE" --transform='s,^\.,rootfs,S' .
stop lxc
size lxc "$OUT/lxc/$NAME-incus.tar.gz"

start
D="$OUT/docker/image"
mkdir -p "$D/blobs/sha256"
top=()
while IFS= read -r -d '' e; do top+=("${e#"$TREE"/}"); done < <(find "$TREE" -mindepth 1 -maxdepth 1 -print0 | sort -z)
tar -cf "$D/layer.tar" "${TAROPTS[@]}" -C "$TREE" "${top[@]}"
layer=$(sha256sum "$D/layer.tar" | cut -d' ' -f1)
mv "$D/layer.tar" "$D/blobs/sha256/$layer"
printf '{"architecture":"amd64","os":"linux","config":{"Cmd":["/sbin/init"]},"rootfs":{"type":"layers","diff_ids":["sha256:%s"]}}' \
  "$layer" > "$D/config.json"
config=$(sha256sum "$D/config.json" | cut -d' ' -f1)
csize=$(stat -c %s "$D/config.json")
lsize=$(stat -c %s "$D/blobs/sha256/$layer")
mv "$D/config.json" "$D/blobs/sha256/$config"
printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%s},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"sha256:%s","size":%s}]}' \
  "$config" "$csize" "$layer" "$lsize" > "$D/manifest.tmp"
manifest=$(sha256sum "$D/manifest.tmp" | cut -d' ' -f1)
msize=$(stat -c %s "$D/manifest.tmp")
mv "$D/manifest.tmp" "$D/blobs/sha256/$manifest"
printf '{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%s}]}' \
  "$manifest" "$msize" > "$D/index.json"
printf '[{"Config":"blobs/sha256/%s","RepoTags":["bench:latest"],"Layers":["blobs/sha256/%s"]}]' "$config" "$layer" > "$D/manifest.json"
printf '{"imageLayoutVersion":"1.0.0"}' > "$D/oci-layout"
tar -cf "$OUT/docker/$NAME-docker.tar" -C "$D" blobs index.json manifest.json oci-layout
rm -rf "$D"
stop docker
size docker "$OUT/docker/$NAME-docker.tar"

start
mksquashfs "$TREE" "$OUT/squashfs/10root.squashfs" -comp gzip -noappend -quiet -no-progress >/dev/null
stop squashfs
size squashfs "$OUT/squashfs/10root.squashfs"

start
sync
stop sync
