// Input detection and dispatch: a TurnKey-layout ISO (casper/*root.squashfs,
// casper/filesystem.squashfs or live/filesystem.squashfs), a squashfs image,
// a root directory, or a tar archive (plain, gzip, xz, bzip2 or zstd).

import * as fs from 'node:fs';
import * as zlib from 'node:zlib';
import { spawn } from 'node:child_process';
import { Readable } from 'node:stream';
import { ByteSource, FileSource } from '../io/source';
import { IsoImage, looksLikeIso } from '../iso/iso9660';
import { SquashfsReader, looksLikeSquashfs } from './squashfs';
import { ingestTar } from './tar';
import { ingestDirectory, directoryBytes } from './dir';
import { PoolWriter } from '../pool/writer';
import { Tree } from '../tree';
import { fileError, describeErrno, UserError } from '../util/errors';
import type { Progress } from '../util/progress';

export type InputKind = 'iso' | 'squashfs' | 'directory' | 'tar';

export interface Ingested {
  kind: InputKind;
  tree: Tree;
  warnings: string[];
  rootSquashfs?: string; // path of the root squashfs inside the ISO
  rootSquashfsSize?: number;
}

const ISO_SQUASHFS_DIRS = ['casper', 'live'];

async function findRootSquashfs(iso: IsoImage): Promise<{ path: string; src: ByteSource } | undefined> {
  for (const dir of ISO_SQUASHFS_DIRS) {
    const d = await iso.lookup(dir);
    if (!d || !d.isDir) continue;
    const kids = (await iso.readdir(d)).filter((k) => !k.isDir);
    const pick = kids.find((k) => /root\.squashfs$/.test(k.name)) ?? kids.find((k) => k.name === 'filesystem.squashfs');
    if (pick) return { path: `${dir}/${pick.name}`, src: iso.open(pick, `${dir}/${pick.name}`) };
  }
  return undefined;
}

type Compression = 'gzip' | 'xz' | 'bzip2' | 'zstd' | undefined;

function compressionOf(head: Buffer): Compression {
  if (head[0] === 0x1f && head[1] === 0x8b) return 'gzip';
  if (head.subarray(0, 6).equals(Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]))) return 'xz';
  if (head.toString('latin1', 0, 3) === 'BZh') return 'bzip2';
  if (head.length >= 4 && head.readUInt32LE(0) === 0xfd2fb528) return 'zstd';
  return undefined;
}

function looksLikeTar(head: Buffer): boolean {
  if (head.length < 512) return false;
  const magic = head.toString('latin1', 257, 262);
  if (magic === 'ustar') return true;
  let sum = 0;
  for (let i = 0; i < 512; i++) sum += i >= 148 && i < 156 ? 0x20 : head[i];
  const stored = parseInt(head.toString('latin1', 148, 156).replace(/[\0 ]/g, ''), 8);
  return stored === sum && head[0] !== 0;
}

/** A decompressing stream of `file` (through a helper process for xz/bzip2/zstd). */
function tarStream(file: string, comp: Compression): AsyncIterable<Buffer> {
  const raw = fs.createReadStream(file, { highWaterMark: 1 << 20 });
  if (!comp) return raw;
  if (comp === 'gzip') {
    const gunzip = zlib.createGunzip({ chunkSize: 1 << 20 });
    raw.on('error', (e) => gunzip.destroy(e));
    return raw.pipe(gunzip).on('error', () => { /* surfaced by the iterator */ }) as Readable;
  }
  const tool = comp === 'bzip2' ? 'bzip2' : comp;
  const child = spawn(tool, ['-dc'], { stdio: ['pipe', 'pipe', 'pipe'] });
  let err = '';
  child.stderr.on('data', (d: Buffer) => { err += d.toString(); });
  child.on('error', (e) => child.stdout.destroy(new Error(`cannot run ${tool}: ${e.message}`)));
  child.on('close', (code) => {
    if (code) child.stdout.destroy(new Error(`${tool} failed: ${err.trim().split('\n')[0] ?? code}`));
  });
  raw.pipe(child.stdin);
  child.stdin.on('error', () => { /* the tool exited early; reported through its exit code */ });
  return child.stdout;
}

async function withTarErrors<T>(file: string, f: () => Promise<T>): Promise<T> {
  try {
    return await f();
  } catch (e) {
    if (e instanceof UserError) throw e;
    const msg = (e as Error).message;
    if (/unexpected end of file|incorrect header check|invalid/.test(msg)) throw fileError(file, `corrupt compressed archive (${msg})`);
    throw fileError(file, msg);
  }
}

export async function ingest(input: string, pool: PoolWriter, progress?: Progress): Promise<Ingested> {
  let st: fs.Stats;
  try {
    st = fs.statSync(input);
  } catch (e) {
    throw fileError(input, describeErrno(e));
  }
  if (st.isDirectory()) {
    progress?.phase(`reading ${input}`, directoryBytes(input));
    return { kind: 'directory', tree: await ingestDirectory(input, pool, progress), warnings: [] };
  }
  if (!st.isFile()) throw fileError(input, 'not a regular file or directory');
  const src = FileSource.open(input);
  try {
    if (await looksLikeIso(src)) {
      const iso = await IsoImage.open(src, input);
      const found = await findRootSquashfs(iso);
      if (!found) {
        throw fileError(input, 'ISO has no root squashfs (looked for casper/*root.squashfs, casper/filesystem.squashfs, live/filesystem.squashfs)');
      }
      const sq = await SquashfsReader.open(found.src, `${input}:${found.path}`);
      progress?.phase(`reading ${found.path}`, found.src.size);
      return { kind: 'iso', tree: await sq.ingest(pool, progress), warnings: [], rootSquashfs: found.path, rootSquashfsSize: found.src.size };
    }
    if (await looksLikeSquashfs(src)) {
      const sq = await SquashfsReader.open(src, input);
      progress?.phase(`reading ${input}`, src.size);
      return { kind: 'squashfs', tree: await sq.ingest(pool, progress), warnings: [] };
    }
    const head = Buffer.alloc(Math.min(512, src.size));
    await src.pread(head, 0);
    const comp = compressionOf(head);
    if (!comp && !looksLikeTar(head)) {
      throw fileError(input, 'not an ISO image, squashfs image, directory or tar archive');
    }
    progress?.phase(`reading ${input}`, comp ? 0 : st.size);
    return await withTarErrors(input, async () => {
      const { tree, warnings } = await ingestTar(tarStream(input, comp), input, pool, progress);
      return { kind: 'tar' as const, tree, warnings };
    });
  } finally {
    src.close();
  }
}
