// Writes the universal ISO with xorriso: the input ISO's tree and boot
// records (El Torito, isohybrid MBR) replayed, with the files uniso
// rewrote mapped over the originals (the live root squashfs, the checksum
// lists that name it), plus /uniso/ (catalog, side pool, manifest). For
// inputs that are not ISOs, a plain data ISO holding /uniso/.
// SOURCE_DATE_EPOCH pins every timestamp, so identical input gives a
// bit-identical image.

import { spawn } from 'node:child_process';
import { UserError } from '../util/errors';
import { UNISO_DIR } from '../image/layout';

export interface IsoWriteOptions {
  inputIso?: string; // replay this ISO's tree and boot records
  /** local files put over files of the input ISO (path from the ISO's root) */
  replace?: { isoPath: string; file: string }[];
  addDir: string; // local directory mapped to /uniso
  output: string; // file to write (a temp name; the caller renames)
  volumeId: string;
  epochSec: number; // SOURCE_DATE_EPOCH
}

function run(cmd: string, args: string[], env: NodeJS.ProcessEnv): Promise<{ code: number; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'], env });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
    child.on('error', (e) => reject(new UserError(`cannot run ${cmd} (install the "xorriso" package): ${e.message}`)));
    child.on('close', (code) => resolve({ code: code ?? 1, stderr }));
  });
}

export async function writeUniversalIso(o: IsoWriteOptions): Promise<void> {
  const env = { ...process.env, SOURCE_DATE_EPOCH: String(Math.max(0, Math.floor(o.epochSec))) };
  const maps = (o.replace ?? []).flatMap((r) => ['-map', r.file, `/${r.isoPath.replace(/^\/+/, '')}`]);
  const common = ['-compliance', 'iso_9660_level=3', ...maps, '-map', o.addDir, `/${UNISO_DIR}`, '-commit'];
  const args = o.inputIso
    ? ['-abort_on', 'FAILURE', '-indev', o.inputIso, '-outdev', `stdio:${o.output}`, '-boot_image', 'any', 'replay', ...common]
    : ['-abort_on', 'FAILURE', '-outdev', `stdio:${o.output}`, '-volid', o.volumeId.slice(0, 32), '-joliet', 'on', ...common];
  const { code, stderr } = await run('xorriso', args, env);
  if (code !== 0) {
    const line = stderr.split('\n').filter((l) => /FAILURE|SORRY|FATAL|error/i.test(l)).pop() ?? stderr.trim().split('\n').pop();
    throw new UserError(`${o.inputIso ?? o.output}: xorriso failed: ${line ?? `exit ${code}`}`);
  }
}
