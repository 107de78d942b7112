// Seed inputs for the fuzz targets, made at fuzz time by the real tools
// (mksquashfs, tar and the compressors, xorriso, uniso build) from a tiny
// tree, and the "hot" regions of each (headers, tables, directories) where
// mutations land more often. Nothing here is committed: `make fuzz` makes
// them under fuzz/work/ (gitignored).

import * as fs from 'node:fs';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { FileSource } from '../src/io/source';
import { IsoImage } from '../src/iso/iso9660';
import type { Seed } from './harness';
import { pseudoRandom } from '../test/lib/fixture';

export const ROOT = path.resolve(__dirname, '..');

export function sh(cmd: string, args: string[], opts: { cwd?: string } = {}): Buffer {
  const r = spawnSync(cmd, args, { cwd: opts.cwd, maxBuffer: 1 << 28 });
  if (r.error) throw r.error;
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} exited ${r.status}: ${String(r.stderr).trim()}`);
  return r.stdout;
}

/**
 * A tiny root tree: directories, small and multi-block files, a sparse
 * file, symlinks, a hard link, a FIFO, xattrs, a long name.
 */
export function tinyTree(dir: string): string {
  const t = path.join(dir, 'tree');
  if (fs.existsSync(t)) return t;
  fs.mkdirSync(path.join(t, 'etc', 'deep', 'er'), { recursive: true });
  fs.mkdirSync(path.join(t, 'usr', 'bin'), { recursive: true });
  fs.writeFileSync(path.join(t, 'etc', 'hostname'), 'fuzz\n');
  fs.writeFileSync(path.join(t, 'etc', 'deep', 'er', 'numbers'), Array.from({ length: 3000 }, (_, i) => `${i}\n`).join(''));
  fs.writeFileSync(path.join(t, 'usr', 'bin', 'prog'), pseudoRandom(150_000, 7)); // more than one 128 KiB block
  fs.writeFileSync(path.join(t, 'usr', 'bin', 'tail'), pseudoRandom(3000, 9)); // a fragment
  fs.symlinkSync('prog', path.join(t, 'usr', 'bin', 'link'));
  fs.symlinkSync('../etc/hostname', path.join(t, 'usr', 'hostname-link'));
  fs.linkSync(path.join(t, 'etc', 'hostname'), path.join(t, 'etc', 'hostname.hard'));
  fs.writeFileSync(path.join(t, `${'n'.repeat(120)}.long`), 'long name\n');
  const sparse = path.join(t, 'etc', 'sparse');
  fs.writeFileSync(sparse, '');
  fs.truncateSync(sparse, 1 << 20);
  const fd = fs.openSync(sparse, 'r+');
  fs.writeSync(fd, Buffer.from('middle'), 0, 6, 400_000);
  fs.closeSync(fd);
  spawnSync('mkfifo', [path.join(t, 'etc', 'fifo')]);
  spawnSync('setfattr', ['-n', 'user.fuzz', '-v', 'value', path.join(t, 'etc', 'hostname')]);
  for (const p of ['etc/deep/er/numbers', 'etc/deep/er', 'etc/deep', 'etc', 'usr/bin', 'usr', '.']) {
    spawnSync('touch', ['-h', '-d', '@1700000000', path.join(t, p)]);
  }
  return t;
}

const SQ_HEADER = 96;

/** Hot regions of a squashfs image: the superblock and its tables (inode table to the end). */
/** A small universal ISO of the tiny tree (built once per seed directory). */
export function tinyUniversal(dir: string): string {
  const file = path.join(dir, 'universal.iso');
  if (!fs.existsSync(file)) {
    sh(process.execPath, [path.join(ROOT, 'bin', 'uniso'), 'build', tinyTree(dir), '-o', file, '-q', '--name', 'fuzz', '--disk-size', '64M', '--formats', 'lxc']);
  }
  return file;
}

export function squashfsHot(b: Buffer, base = 0): [number, number][] {
  const hot: [number, number][] = [[base, SQ_HEADER]];
  if (b.length >= SQ_HEADER) {
    const inodes = Number(b.readBigUInt64LE(64));
    const used = Number(b.readBigUInt64LE(40));
    if (inodes < used && used <= b.length) hot.push([base + inodes, used - inodes]);
  }
  return hot;
}

export function makeSquashfs(dir: string, comp: string, extra: string[] = []): Buffer {
  const tree = tinyTree(dir);
  const out = path.join(dir, `${comp}${extra.join('')}.squashfs`);
  fs.rmSync(out, { force: true });
  sh('mksquashfs', [tree, out, '-comp', comp, '-noappend', '-quiet', '-no-progress', '-mkfs-time', '0', '-all-time', '1700000000', ...extra]);
  return fs.readFileSync(out);
}

/** Hot regions of a tar archive: every header block (a block whose checksum matches). */
export function tarHot(b: Buffer): [number, number][] {
  const hot: [number, number][] = [];
  for (let o = 0; o + 512 <= b.length; o += 512) {
    let sum = 0;
    for (let i = 0; i < 512; i++) sum += i >= 148 && i < 156 ? 0x20 : b[o + i];
    const stored = parseInt(b.toString('latin1', o + 148, o + 156).replace(/[\0 ]/g, ''), 8);
    if (stored === sum) hot.push([o, 512]);
  }
  return hot.length ? hot : [[0, Math.min(512, b.length)]];
}

/** Tar archives of the tiny tree in each format GNU tar writes (sparse, xattrs, long names). */
export function makeTars(dir: string): Seed[] {
  const tree = tinyTree(dir);
  const seeds: Seed[] = [];
  for (const fmt of ['gnu', 'pax', 'ustar', 'oldgnu']) {
    const out = path.join(dir, `${fmt}.tar`);
    const args = ['-C', tree, '--format', fmt, '--sort=name', '--mtime=@1700000000', '--owner=0', '--group=0', '--numeric-owner', '-cf', out];
    if (fmt === 'pax' || fmt === 'gnu') args.push('--sparse');
    if (fmt === 'pax') args.push('--xattrs', '--xattrs-include=*');
    // ustar cannot hold the 120-byte name: leave it out there
    args.push(...(fmt === 'ustar' ? ['etc', 'usr'] : ['.']));
    sh('tar', args);
    const bytes = fs.readFileSync(out);
    seeds.push({ name: fmt, bytes, hot: tarHot(bytes) });
  }
  return seeds;
}

/** Hot regions of an ISO image: the volume descriptors, every directory extent, and the squashfs tables inside. */
export async function isoHot(file: string): Promise<[number, number][]> {
  const src = FileSource.open(file);
  try {
    const iso = await IsoImage.open(src, file);
    const hot: [number, number][] = [[16 * 2048, 4 * 2048]];
    const walk = async (e: Awaited<ReturnType<IsoImage['lookup']>>, depth: number): Promise<void> => {
      if (!e || depth > 8) return;
      hot.push([e.extents[0][0], e.size]);
      for (const k of await iso.readdir(e)) {
        if (k.isDir) await walk(k, depth + 1);
        else if (/squashfs$/.test(k.name)) {
          const b = Buffer.alloc(Math.min(k.size, 1 << 24));
          await src.pread(b, k.extents[0][0]);
          hot.push(...squashfsHot(b, k.extents[0][0]));
        } else if (k.size < 1 << 20) {
          hot.push([k.extents[0][0], k.size]); // manifest, catalog, small files
        }
      }
    };
    await walk(await iso.lookup('/'), 0);
    return hot;
  } finally {
    src.close();
  }
}
