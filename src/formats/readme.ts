// README.txt at the top of the mount: what the appliance is, every view
// with its size and use, and how to verify checksums.

import { ApplianceNames } from './naming';
import { fmtBytes } from '../util/progress';

export interface ReadmeView {
  path: string;
  size: number;
  description: string;
}

export function readmeText(names: ApplianceNames, views: ReadmeView[], warnings: string[]): string {
  const width = Math.max(...views.map((v) => v.path.length), 10);
  const lines = [
    `${names.name} -- universal appliance image (uniso)`,
    '',
    'Every file below is synthesized on the fly from one deduplicated pool of',
    "the appliance's file content. Copy out the format you need; nothing here",
    'is stored twice. All files are read-only.',
    '',
    'Files:',
    ...views.map((v) => `  ${v.path.padEnd(width)}  ${fmtBytes(v.size).padStart(9)}  ${v.description}`),
    `  ${'rootfs/'.padEnd(width)}  ${''.padStart(9)}  the appliance file system itself, browsable`,
    '',
    'Each file has a FILE.sha256 beside it; check with: sha256sum -c FILE.sha256',
    '',
  ];
  if (warnings.length) lines.push('Warnings:', ...warnings.map((w) => `  ${w}`), '');
  return lines.join('\n');
}
