// LXD / Incus unified image: one tar.gz holding metadata.yaml and rootfs/
// (the container tree). Import with `incus image import <file> --alias x`.

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
    const { recipe } = ctx.gzip.compile(pieces.done());
    return [{
      path: `lxc/${ctx.names.name}-incus.tar.gz`, recipe, format: 'lxc',
      description: 'LXD/Incus unified image (incus image import FILE --alias NAME)',
    }];
  },
};
