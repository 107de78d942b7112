// LXD / Incus images of the container tree: the unified image (one tar.gz
// holding metadata.yaml and rootfs/; `incus image import FILE --alias x`)
// and the split image (a metadata tarball beside the tree as a squashfs;
// `incus image import META ROOTFS --alias x`). When the container family
// has no variant, the split image's squashfs is the ISO's live squashfs,
// served from the ISO's own bytes.

import { Format, FormatContext } from './context';
import { lxcArch } from './naming';
import { PieceList } from './pieces';
import { endOfArchive, tarMemberBytes, writeTarEntries } from './tar';

function yamlString(s: string): string {
  return JSON.stringify(s); // a JSON string is a valid YAML double-quoted scalar
}

export function metadataYaml(ctx: FormatContext): string {
  const n = ctx.names;
  const arch = lxcArch(n.arch);
  const created = Number(ctx.mtimeSec);
  const serial = new Date(created * 1000).toISOString().slice(0, 10).replace(/-/g, '');
  const desc = n.app ? `TurnKey ${n.app} ${n.version ?? ''} (Debian ${n.debianMajor ?? ''} ${n.codename ?? ''})`.replace(/\s+/g, ' ').replace(' )', ')') : n.name;
  const props: [string, string][] = [
    ['architecture', arch],
    ['description', desc],
    ['name', n.name],
    ['os', 'debian'],
    ['release', n.codename ?? n.debianMajor ?? 'unknown'],
    ['serial', serial],
    ['variant', n.app ? `turnkey-${n.app}` : 'default'],
  ];
  return [
    `architecture: ${yamlString(arch)}`,
    `creation_date: ${created}`,
    'properties:',
    ...props.map(([k, v]) => `  ${k}: ${yamlString(v)}`),
    'templates: {}',
    '',
  ].join('\n');
}

export const lxc: Format = {
  name: 'lxc',
  family: 'container',
  async build(ctx) {
    const pieces = new PieceList();
    tarMemberBytes(pieces, 'metadata.yaml', Buffer.from(metadataYaml(ctx), 'utf8'), ctx.mtimeSec);
    const skipped = writeTarEntries(ctx.tree('container'), { prefix: 'rootfs/', includeRoot: true }, pieces);
    if (skipped.length) ctx.warn(`lxc: ${skipped.length} socket(s) cannot be stored in tar and were left out`);
    endOfArchive(pieces);
    const { recipe } = await ctx.gzip.compile(pieces.done());
    const meta = new PieceList();
    tarMemberBytes(meta, 'metadata.yaml', Buffer.from(metadataYaml(ctx), 'utf8'), ctx.mtimeSec);
    endOfArchive(meta);
    const name = ctx.names.name;
    return [{
      path: `lxc/${name}-incus.tar.gz`, recipe, format: 'lxc',
      description: 'LXD/Incus unified image (incus image import FILE --alias NAME)',
    }, {
      path: `lxc/${name}-incus-metadata.tar.gz`, recipe: (await ctx.gzip.compile(meta.done())).recipe, format: 'lxc-split',
      description: `LXD/Incus split image metadata (incus image import FILE ${name}-incus-rootfs.squashfs --alias NAME)`,
    }, {
      path: `lxc/${name}-incus-rootfs.squashfs`, recipe: ctx.squashfs('container'), format: 'lxc-split',
      description: 'LXD/Incus split image root file system (squashfs; also mountable with mount -o loop)',
    }];
  },
};
