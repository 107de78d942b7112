// Corruption (issue 14 part 3): a small universal ISO damaged on purpose,
// one damage per seed (seeded PRNG, deterministic): bit flips, a zeroed
// range or a truncation in the live squashfs (its pool blocks or its own
// tables), the side pool, the catalog or the manifest. Every read of the
// damaged image gives the right bytes or an error, never wrong bytes:
// - every seed, in this process, through the reader `uniso extract` and the
//   daemon use (openImage, Namespace sources): whole views (a tar, a tar.gz
//   of spliced deflate segments, literals, rootfs files stored raw and
//   deflated) and the raw disk's 1 MiB chunks that hold data: right bytes,
//   or a one-line error after a prefix of them; then verifyImage (what
//   `uniso verify` checks): it finds a problem whenever a byte changed and
//   names the damaged pool blocks (and no other), the squashfs table, the
//   catalog or the manifest;
// - some seeds through the CLI: `uniso verify` (the same, as "uniso: ..."
//   lines, no stack trace), `uniso extract -o -` (what reached stdout is a
//   prefix of the reference) and `-o FILE` (all or nothing);
// - some seeds through a FUSE mount (whole views and the raw disk's chunks:
//   right bytes, a short read then EIO, or EIO; the daemon stays up) and
//   `uniso serve` (whole views and Range requests: right bytes, or a 5xx /
//   a connection cut after a prefix of them; the server stays up; the JSON
//   index is unchanged), or the image is refused in one line.
// The reference is `uniso extract` of the undamaged image. Seeds are in the
// test names; CORRUPT_SEEDS=3,17 replays only those (through every path).

import t, { Test } from 'tap';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as http from 'node:http';
import * as crypto from 'node:crypto';
import { ChildProcess, spawn } from 'node:child_process';
import {
  buildUniversal, freePort, isoExtent, isMounted, mountState, must, mustUniso, processAlive, runAsync, tempDir, UNISO, FIXTURE_NAME,
  Teardown, unmountAtTeardown,
} from './lib/fixture';
import { Catalog } from '../src/catalog/reader';
import { openImage, OpenImage } from '../src/image/open';
import { Namespace, SEQUENTIAL_READAHEAD } from '../src/image/namespace';
import { verifyImage } from '../src/commands/verify';
import { Progress } from '../src/util/progress';
import { CATALOG_NAME, Manifest, MANIFEST_NAME, UNISO_DIR } from '../src/image/layout';

const MiB = 1 << 20;
/** The seeds: each damage is read in this process through the reader extract and the daemon use, and verified. */
const ALL_SEEDS = Array.from({ length: Number(process.env.CORRUPT_SEED_COUNT ?? 40) }, (_, i) => i + 1);
// Seed n damages REGIONS[n % 4] (the squashfs, the side pool, the catalog, the manifest). Some seeds also go through
// the CLI (uniso verify, uniso extract), a FUSE mount and `uniso serve` (slower): mostly damaged pool blocks, which
// those read, and one refused image each.
const CLI_SEEDS = [1, 2, 3, 20, 25];
const MOUNT_SEEDS = [2, 9, 21, 40];
const SERVE_SEEDS = [3, 13, 37, 40];
const only = process.env.CORRUPT_SEEDS?.split(',').map(Number);
const SEEDS = only ?? ALL_SEEDS;

const dir = tempDir(t, 'uniso-corrupt-');
const uni = buildUniversal(dir, undefined, ['--formats', 'raw,proxmox,docker']);
const RAW = `raw/${FIXTURE_NAME}.img`;
// the views read whole: a tar (inflated blocks), a tar.gz (spliced deflate segments), literals,
// and rootfs files stored raw (random bytes) and deflated (text), one with a hole
const WHOLE = [
  `docker/${FIXTURE_NAME}-docker.tar`,
  'proxmox/debian-12-turnkey-fixture_1.0-1_amd64.tar.gz',
  'README.txt',
  'rootfs/usr/lib/random-1m.bin',
  'rootfs/usr/share/doc/numbers.txt',
  'rootfs/usr/lib/zero-middle.bin',
];

// ---- the reference ---------------------------------------------------------

const sha = (b: Buffer) => crypto.createHash('sha256').update(b).digest('hex');
const ref = new Map<string, Buffer>();
const rawRef = path.join(dir, 'ref', 'raw.img');
let RAW_SIZE = 0;
/** The raw disk's 1 MiB chunks holding data (where its pool blocks are), and a few all-zero ones. */
const rawChunks: number[] = [];

async function makeReference(): Promise<void> {
  const outs = [...WHOLE, RAW].map((v) => path.join(dir, 'ref', v === RAW ? 'raw.img' : v));
  for (const o of outs) fs.mkdirSync(path.dirname(o), { recursive: true });
  const jobs = [...WHOLE, RAW].map((v, i) => () => runAsync(process.execPath, [UNISO, 'extract', uni, v, '-o', outs[i]]));
  for (let i = 0; i < jobs.length; i += 4) {
    const rs = await Promise.all(jobs.slice(i, i + 4).map((j) => j()));
    for (const r of rs) if (r.code !== 0) throw new Error(`uniso extract of the undamaged image failed: ${r.stderr}`);
  }
  WHOLE.forEach((v, i) => ref.set(v, fs.readFileSync(outs[i])));
  RAW_SIZE = fs.statSync(rawRef).size;
  const fd = fs.openSync(rawRef, 'r');
  const b = Buffer.alloc(MiB);
  const zero: number[] = [];
  try {
    for (let c = 0; c * MiB < RAW_SIZE; c++) {
      fs.readSync(fd, b, 0, MiB, c * MiB);
      (b.some((x) => x !== 0) ? rawChunks : zero).push(c);
    }
  } finally {
    fs.closeSync(fd);
  }
  rawChunks.push(zero[0], zero[Math.floor(zero.length / 2)], zero[zero.length - 1]);
}
function rawChunk(c: number): Buffer {
  const fd = fs.openSync(rawRef, 'r');
  try {
    const b = Buffer.alloc(Math.min(MiB, RAW_SIZE - c * MiB));
    fs.readSync(fd, b, 0, b.length, c * MiB);
    return b;
  } finally {
    fs.closeSync(fd);
  }
}

// ---- where things are in the ISO -------------------------------------------

interface Region {
  name: 'squashfs' | 'side pool' | 'catalog' | 'manifest';
  offset: number; // in the ISO
  size: number;
  poolAt?: number; // pool offset of the region's first byte (pool files)
}

const info = (() => {
  const x = path.join(dir, 'x');
  must('xorriso', ['-osirrox', 'on', '-indev', uni, '-extract', `/${UNISO_DIR}`, x]);
  const manifest = JSON.parse(fs.readFileSync(path.join(x, MANIFEST_NAME), 'utf8')) as Manifest;
  const cat = new Catalog(path.join(x, CATALOG_NAME), uni);
  try {
    const t0 = cat.blockTable(manifest.pool.size);
    return { parts: manifest.pool.parts, blocks: { offset: t0.offset, csize: t0.csize, count: t0.count } };
  } finally {
    cat.close();
  }
})();
const REGIONS: Region[] = [
  ...info.parts.map((p): Region => ({ name: p.role === 'squashfs' ? 'squashfs' : 'side pool', ...isoExtent(uni, `/${p.path}`), poolAt: p.at })),
  { name: 'catalog', ...isoExtent(uni, `/${UNISO_DIR}/${CATALOG_NAME}`) },
  { name: 'manifest', ...isoExtent(uni, `/${UNISO_DIR}/${MANIFEST_NAME}`) },
];
const SQUASHFS_PATH = info.parts.find((p) => p.role === 'squashfs')!.path;
const original = fs.readFileSync(uni);

/** Ids of the pool blocks whose stored bytes meet pool bytes [a, b). */
function blocksIn(a: number, b: number): number[] {
  const ids: number[] = [];
  const { offset, csize, count } = info.blocks;
  for (let i = 0; i < count; i++) if (offset[i] < b && offset[i] + csize[i] > a) ids.push(i + 1);
  return ids;
}

/** The squashfs's regions, from its superblock: [name, start, end) relative to the squashfs. */
const squashfsRegions = (() => {
  const r = REGIONS.find((x) => x.name === 'squashfs')!;
  const sb = original.subarray(r.offset, r.offset + 96);
  const at = (o: number) => Number(sb.readBigUInt64LE(o));
  const [inodes, dirs, lookup, used] = [at(64), at(72), at(80), at(40)];
  return [
    { name: 'superblock', start: 0, end: 96 }, { name: 'data area', start: 96, end: inodes },
    { name: 'inode table', start: inodes, end: dirs }, { name: 'directory table', start: dirs, end: lookup },
    { name: 'lookup tables (export, id, xattr)', start: lookup, end: used }, { name: 'padding', start: used, end: r.size },
  ];
})();

/** The squashfs regions holding a byte the damage changed. */
function squashfsPlaces(d: Damage): string[] {
  const base = REGIONS.find((x) => x.name === 'squashfs')!.offset;
  const changed = d.kind === 'flip' ? d.bits.map((b) => Math.floor(b / 8))
    : Array.from({ length: d.to - d.from }, (_, i) => d.from + i).filter((i) => original[i] !== 0);
  return [...new Set(changed.map((i) => squashfsRegions.find((r) => i - base >= r.start && i - base < r.end)?.name ?? 'outside'))];
}

// ---- the damage -------------------------------------------------------------

/** mulberry32: a small seeded PRNG (deterministic across runs and machines). */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let x = a;
    x = Math.imul(x ^ (x >>> 15), x | 1);
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61);
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}

interface Damage {
  seed: number;
  region: Region;
  kind: 'flip' | 'zero' | 'truncate';
  /** ISO bytes changed: [from, to) (truncate: from the cut to the end) */
  from: number;
  to: number;
  bits: number[]; // flip: absolute bit numbers
  what: string;
}

function damageFor(seed: number): Damage {
  const r = prng(seed * 7919 + 1);
  const int = (n: number) => Math.floor(r() * n);
  const region = REGIONS[seed % REGIONS.length];
  const k = r();
  const kind = k < 0.5 ? 'flip' : k < 0.85 ? 'zero' : 'truncate';
  // half the squashfs's damage goes to its own tables (small, after the data: mostly pool blocks)
  const tables = region.name === 'squashfs' && r() < 0.5 ? squashfsRegions[2].start : 0;
  const at = region.offset + tables + int(region.size - tables);
  if (kind === 'flip') {
    const n = 1 + int(3);
    const span = Math.min(64, region.offset + region.size - at);
    const bits = [...new Set(Array.from({ length: n }, () => (at + int(span)) * 8 + int(8)))].sort((x, y) => x - y);
    const from = Math.floor(bits[0] / 8);
    const to = Math.floor(bits[bits.length - 1] / 8) + 1;
    return { seed, region, kind, from, to, bits, what: `flip bit${bits.length > 1 ? 's' : ''} ${bits.map((b) => `${Math.floor(b / 8)}.${b % 8}`).join(' ')}` };
  }
  if (kind === 'zero') {
    const len = 1 + int(Math.min(8192, region.size));
    const to = Math.min(region.offset + region.size, at + len);
    return { seed, region, kind, from: at, to, bits: [], what: `zero bytes ${at}..${to - 1}` };
  }
  return { seed, region, kind, from: at, to: original.length, bits: [], what: `truncate at ${at}` };
}

/** The damaged copy of the image; whether the damage changed anything. */
function applyDamage(d: Damage, file: string): boolean {
  const b = Buffer.from(original);
  if (d.kind === 'truncate') {
    fs.writeFileSync(file, b.subarray(0, d.from));
    return true;
  }
  if (d.kind === 'flip') for (const bit of d.bits) b[Math.floor(bit / 8)] ^= 1 << (bit % 8);
  else b.fill(0, d.from, d.to);
  fs.writeFileSync(file, b);
  return !b.subarray(d.from, d.to).equals(original.subarray(d.from, d.to));
}

/** The pool blocks the damage changed (truncation: none named, everything after the cut is gone). */
function damagedBlocks(d: Damage): number[] {
  if (d.region.poolAt === undefined || d.kind === 'truncate') return [];
  const base = d.region.poolAt - d.region.offset;
  if (d.kind === 'flip') return [...new Set(d.bits.flatMap((bit) => blocksIn(base + Math.floor(bit / 8), base + Math.floor(bit / 8) + 1)))];
  // zeroing already-zero bytes changes nothing: only blocks with a byte that was not zero
  return blocksIn(base + d.from, base + d.to).filter((id) => {
    const s = info.blocks.offset[id - 1] - base;
    const e = s + info.blocks.csize[id - 1];
    return original.subarray(Math.max(s, d.from), Math.min(e, d.to)).some((x) => x !== 0);
  });
}

// ---- checks -------------------------------------------------------------------

/** An error message: lines, none a stack trace, each with text. */
function clearError(tt: Test, stderr: string, what: string, maxLines = 1): void {
  const lines = stderr.split('\n').filter((l) => l.trim() !== '');
  tt.ok(lines.length >= 1 && lines.length <= maxLines, `${what}: ${maxLines === 1 ? 'one error line' : `1..${maxLines} error lines`}`, { stderr });
  tt.notOk(/^\s+at |TypeError|RangeError|ReferenceError|SyntaxError|Assertion/m.test(stderr), `${what}: no stack trace or internal error`, { stderr });
}

/** `got` (a read that may have stopped early) agrees with `want`: equal, or an error after a prefix of it. */
function prefixOf(tt: Test, got: Buffer, want: Buffer, failed: boolean, what: string): void {
  if (!failed) {
    tt.equal(sha(got), sha(want), `${what}: right bytes`);
    return;
  }
  tt.ok(got.length <= want.length && got.equals(want.subarray(0, got.length)), `${what}: failed after ${got.length} right bytes, none wrong`);
}

async function checkExtract(tt: Test, img: string, d: Damage): Promise<void> {
  // to stdout: what came out before an error is a prefix of the right bytes
  const v = WHOLE[0];
  const r = await runAsync(process.execPath, [UNISO, 'extract', img, v, '-o', '-']);
  if (r.code !== 0) clearError(tt, r.stderr, `extract ${v} -o -`);
  prefixOf(tt, r.out, ref.get(v)!, r.code !== 0, `extract ${v} -o -`);
  // to a file: all or nothing (no partial file left behind)
  const w = WHOLE[1];
  const out = path.join(dir, `seed-${d.seed}.tar.gz`);
  const f = await runAsync(process.execPath, [UNISO, 'extract', img, w, '-o', out]);
  if (f.code === 0) {
    tt.equal(sha(fs.readFileSync(out)), sha(ref.get(w)!), `extract ${w} -o FILE: right bytes`);
  } else {
    clearError(tt, f.stderr, `extract ${w} -o FILE`);
    tt.notOk(fs.existsSync(out), `extract ${w} -o FILE failed: no output file left`);
  }
  fs.rmSync(out, { force: true });
}

/** What verify said about the damage (its error lines) names what was damaged, and no undamaged block. */
function checkNamed(tt: Test, said: string, d: Damage): void {
  const named = [...said.matchAll(/\bblock (\d+)\b/g)].map((m) => Number(m[1]));
  const blocks = damagedBlocks(d);
  for (const id of new Set(named)) tt.ok(blocks.includes(id), `verify names block ${id}, which was damaged`, { said, blocks });
  if (d.kind === 'truncate') {
    tt.match(said, /truncated|beyond the end|short/i, 'verify says the image is truncated');
  } else if (blocks.length) {
    for (const id of blocks.slice(0, 10)) tt.ok(named.includes(id), `verify names damaged block ${id}`, { said });
  } else if (d.region.name === 'squashfs') {
    // the squashfs's own structures: the table the changed bytes are in (read here from its superblock)
    const want = squashfsPlaces(d);
    const namedTables = [...said.matchAll(/squashfs's (.+?) \(bytes/g)].map((m) => m[1]);
    for (const n of namedTables) tt.ok(want.includes(n), `verify names the squashfs's ${n}, which was damaged`, { said, want });
    tt.ok(want.some((w) => w === 'data area' ? new RegExp(`/${SQUASHFS_PATH}: .*squashfs is damaged: in its data area`).test(said)
      : namedTables.includes(w)), `verify names where in the live squashfs (${want.join(', ')})`, { said });
  } else if (d.region.name === 'catalog') {
    tt.match(said, /catalog/, 'verify names the catalog');
  } else if (d.region.name === 'manifest') {
    tt.match(said, /manifest/, 'verify names the manifest');
  } else {
    tt.fail(`verify: nothing expected for damage in ${d.region.name} outside every block`, { said });
  }
}

async function checkVerifyCli(tt: Test, img: string, d: Damage, changed: boolean): Promise<void> {
  const r = await runAsync(process.execPath, [UNISO, 'verify', '-q', img]);
  if (!changed) {
    tt.equal(r.code, 0, 'verify: the damage changed no byte, the image verifies', { stderr: r.stderr });
    return;
  }
  tt.not(r.code, 0, 'verify fails');
  clearError(tt, r.stderr, 'verify', 21);
  checkNamed(tt, r.stderr, d);
}

/** An error thrown in-process is a clear one-line message, not a programming error. */
function clearThrown(tt: Test, e: unknown, what: string): string {
  const err = e as Error;
  tt.ok(err instanceof Error && !(err instanceof TypeError || err instanceof RangeError || err instanceof ReferenceError), `${what}: a deliberate error`, { err });
  tt.ok(typeof err?.message === 'string' && err.message.length > 0 && !err.message.includes('\n'), `${what}: one line`, { message: err?.message });
  return err?.message ?? String(e);
}

/**
 * The reader `uniso extract` and the daemon use, in this process (fast: every seed): each view
 * read from the start in 1 MiB reads, the raw disk's chunks, then verifyImage.
 */
async function checkInProcess(tt: Test, file: string, d: Damage, changed: boolean): Promise<void> {
  let img: OpenImage;
  try {
    img = await openImage(file, { cacheBytes: 8 << 20 });
  } catch (e) {
    const msg = clearThrown(tt, e, 'open refused');
    tt.ok(changed, 'refused only a changed image');
    checkNamed(tt, msg, d);
    return;
  }
  try {
    const ns = new Namespace(img.catalog, img.blocks);
    for (const v of WHOLE) {
      const parts: Buffer[] = [];
      let failed = false;
      try {
        const src = ns.source(ns.lookup('/' + v)!, SEQUENTIAL_READAHEAD);
        for (let pos = 0; pos < src.size;) {
          const b = Buffer.alloc(Math.min(MiB, src.size - pos));
          const n = await src.pread(b, pos);
          if (n === 0) throw new Error(`read ${v}: 0 bytes at ${pos} of ${src.size}`);
          parts.push(b.subarray(0, n));
          pos += n;
        }
      } catch (e) {
        clearThrown(tt, e, `read ${v}`);
        failed = true;
      }
      prefixOf(tt, Buffer.concat(parts), ref.get(v)!, failed, `read ${v}`);
    }
    const raw = ns.source(ns.lookup('/' + RAW)!);
    for (const c of rawChunks) {
      const want = rawChunk(c);
      const b = Buffer.alloc(want.length);
      try {
        const n = await raw.pread(b, c * MiB);
        tt.ok(n === want.length && b.equals(want), `read raw chunk ${c}: right bytes`);
      } catch (e) {
        clearThrown(tt, e, `read raw chunk ${c}`);
      }
    }
    const r = await verifyImage(img, new Progress(false));
    if (!changed) {
      tt.same(r.problems, [], 'verify: the damage changed no byte, the image verifies');
      return;
    }
    tt.ok(r.problems.length > 0, 'verify finds problems');
    for (const p of r.problems) tt.ok(p.length > 0 && !p.includes('\n'), 'verify: each problem is one line', { p });
    checkNamed(tt, r.problems.join('\n'), d);
  } finally {
    img.close();
  }
}

/** Read `file` whole, in 128 KiB reads, stopping at the first error. */
function readAllUntilError(file: string): { got: Buffer; err?: NodeJS.ErrnoException } {
  const parts: Buffer[] = [];
  let fd: number;
  try {
    fd = fs.openSync(file, 'r');
  } catch (e) {
    return { got: Buffer.alloc(0), err: e as NodeJS.ErrnoException };
  }
  try {
    const b = Buffer.alloc(128 * 1024);
    for (let pos = 0; ;) {
      const n = fs.readSync(fd, b, 0, b.length, pos);
      if (n === 0) break;
      parts.push(Buffer.from(b.subarray(0, n)));
      pos += n;
    }
    return { got: Buffer.concat(parts) };
  } catch (e) {
    return { got: Buffer.concat(parts), err: e as NodeJS.ErrnoException };
  } finally {
    fs.closeSync(fd);
  }
}

async function checkMount(tt: Test, img: string): Promise<void> {
  const mnt = path.join(tempDir(tt, 'uniso-corrupt-mnt-'), 'mnt');
  fs.mkdirSync(mnt);
  unmountAtTeardown(tt, mnt);
  const m = await runAsync(process.execPath, [UNISO, 'mount', img, mnt]);
  if (m.code !== 0) {
    clearError(tt, m.stderr, 'mount refused');
    tt.notOk(isMounted(mnt), 'nothing mounted');
    return;
  }
  const pid = mountState(mnt)?.pid;
  for (const v of WHOLE) {
    const { got, err } = readAllUntilError(path.join(mnt, v));
    if (err) tt.equal(err.code, 'EIO', `mount ${v}: EIO`);
    prefixOf(tt, got, ref.get(v)!, !!err, `mount ${v}`);
  }
  // a read that meets a damaged block may return the bytes before it (a short read), then EIO
  const fd = fs.openSync(path.join(mnt, RAW), 'r');
  try {
    for (const c of rawChunks) {
      const want = rawChunk(c);
      const b = Buffer.alloc(want.length);
      let got = 0;
      let failed = false;
      try {
        for (let n = 1; got < b.length && n > 0; got += n) n = fs.readSync(fd, b, got, b.length - got, c * MiB + got);
      } catch (e) {
        tt.equal((e as NodeJS.ErrnoException).code, 'EIO', `mount raw chunk ${c}: EIO`);
        failed = true;
      }
      prefixOf(tt, b.subarray(0, got), want, failed, `mount raw chunk ${c}`);
    }
  } finally {
    fs.closeSync(fd);
  }
  tt.ok(isMounted(mnt) && pid !== undefined && processAlive(pid), 'the daemon is still up');
  tt.ok(fs.readdirSync(mnt).includes('README.txt'), 'the mount still answers');
  const u = await runAsync(process.execPath, [UNISO, 'umount', mnt]);
  tt.equal(u.code, 0, 'unmounts', { stderr: u.stderr });
}

interface Got { status: number; body: Buffer; cut: boolean }

function get(port: number, p: string, headers: http.OutgoingHttpHeaders = {}): Promise<Got> {
  return new Promise((resolve) => {
    const req = http.get({ host: '127.0.0.1', port, path: encodeURI('/' + p), headers, agent: false }, (res) => {
      const parts: Buffer[] = [];
      res.on('data', (c: Buffer) => parts.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(parts), cut: !res.complete }));
      res.on('aborted', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(parts), cut: true }));
      res.on('error', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(parts), cut: true }));
    });
    req.on('error', () => resolve({ status: 0, body: Buffer.alloc(0), cut: true }));
    req.setTimeout(30000, () => req.destroy());
  });
}

/** Start `uniso serve` on a free port: the process, or undefined with its error output when it refused the image. */
async function serve(tt: Teardown, img: string): Promise<{ proc: ChildProcess; port: number; stderr: () => string } | { refused: string }> {
  const port = await freePort();
  const proc = spawn(process.execPath, [UNISO, 'serve', img, '--http', `127.0.0.1:${port}`], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  proc.stderr!.on('data', (c: Buffer) => { err += c.toString(); });
  const exited = new Promise<void>((resolve) => proc.on('exit', () => resolve()));
  tt.teardown(async () => {
    if (proc.exitCode === null && proc.signalCode === null) {
      proc.kill('SIGKILL');
      await exited;
    }
  });
  const end = Date.now() + 20000;
  for (;;) {
    if (proc.exitCode !== null) return { refused: err };
    const r = await get(port, '').catch(() => undefined);
    if (r && r.status) return { proc, port, stderr: () => err };
    if (Date.now() > end) throw new Error(`uniso serve did not start: ${err}`);
    await new Promise((res) => setTimeout(res, 50));
  }
}

async function checkServe(tt: Test, img: string): Promise<void> {
  const s = await serve(tt, img);
  if ('refused' in s) {
    clearError(tt, s.refused, 'serve refused');
    return;
  }
  const index = await get(s.port, '?format=json');
  if (index.status === 200) tt.equal(index.body.toString(), indexRef, 'serve: the JSON index is unchanged');
  for (const v of WHOLE) {
    const r = await get(s.port, v);
    const failed = r.status !== 200 || r.cut;
    if (failed && r.status !== 200) tt.ok(r.status >= 500 || (r.status === 0 && r.cut), `serve ${v}: ${r.status || 'connection cut'}: an error`);
    prefixOf(tt, r.status === 200 ? r.body : Buffer.alloc(0), ref.get(v)!, failed, `serve ${v}`);
  }
  for (const c of rawChunks) {
    const want = rawChunk(c);
    const r = await get(s.port, RAW, { Range: `bytes=${c * MiB}-${c * MiB + want.length - 1}` });
    const failed = r.status !== 206 || r.cut;
    if (failed && r.status !== 206) tt.ok(r.status >= 500 || (r.status === 0 && r.cut), `serve raw chunk ${c}: ${r.status || 'connection cut'}: an error`);
    prefixOf(tt, r.status === 206 ? r.body : Buffer.alloc(0), want, failed, `serve raw chunk ${c}`);
  }
  tt.ok(s.proc.exitCode === null && s.proc.signalCode === null, 'the server is still up');
  tt.notOk(/^\s+at |TypeError|RangeError|ReferenceError/m.test(s.stderr()), 'the server logged no stack trace', { stderr: s.stderr() });
}

// ---- the runs -------------------------------------------------------------------

let indexRef: string | undefined;
t.before(async () => {
  await makeReference();
  const s = await serve(t, uni);
  if ('refused' in s) throw new Error(`uniso serve refused the undamaged image: ${s.refused}`);
  indexRef = (await get(s.port, '?format=json')).body.toString();
  s.proc.kill('SIGKILL');
});

t.test('the undamaged image verifies and its reference is right', async (tt) => {
  const r = await runAsync(process.execPath, [UNISO, 'verify', '-q', uni]);
  tt.equal(r.code, 0, 'verify passes', { stderr: r.stderr });
  const ls = JSON.parse(mustUniso(['ls', '--json', uni]).stdout) as { path: string; sha256: string }[];
  const want = new Map(ls.map((v) => [v.path, v.sha256]));
  for (const v of WHOLE.filter((w) => want.has(w))) tt.equal(sha(ref.get(v)!), want.get(v), `${v}: reference matches its recorded SHA-256`);
  tt.ok(rawChunks.length > 3, `the raw disk has data in ${rawChunks.length - 3} MiB`);
  tt.ok(indexRef && indexRef.includes('README.txt'), 'the JSON index of the undamaged image');
});

// Regression: 597 of the manifest's 4376 one-bit flips (in its name, its keys, a pool file's role, the catalog's
// file name) left a manifest that was read as another one: `uniso verify` passed, `uniso serve` showed the damaged
// name. Every bit of every third byte (each field is several bytes long): refused, saying the manifest is damaged.
t.test('one-bit flips of the manifest are all refused', async (tt) => {
  const m = REGIONS.find((r) => r.name === 'manifest')!;
  const file = path.join(dir, 'manifest-flips.iso');
  fs.writeFileSync(file, original);
  const fd = fs.openSync(file, 'r+');
  const accepted: string[] = [];
  let tried = 0;
  try {
    for (let at = m.offset; at < m.offset + m.size; at += 3) {
      for (let bit = 0; bit < 8; bit++, tried++) {
        fs.writeSync(fd, Buffer.from([original[at] ^ (1 << bit)]), 0, 1, at);
        try {
          (await openImage(file)).close();
          accepted.push(`byte ${at - m.offset} bit ${bit}: accepted`);
        } catch (e) {
          const msg = (e as Error).message;
          if (!/manifest/.test(msg) || msg.includes('\n')) accepted.push(`byte ${at - m.offset} bit ${bit}: ${msg}`);
        }
        fs.writeSync(fd, original, at, 1, at);
      }
    }
  } finally {
    fs.closeSync(fd);
    fs.rmSync(file, { force: true });
  }
  tt.same(accepted, [], `${tried} flips refused, each saying the manifest is damaged`);
});

// two seeds at a time (the machine has two cores)
t.jobs = 2;
for (const seed of SEEDS) {
  const d = damageFor(seed);
  t.test(`seed ${seed}: ${d.region.name}: ${d.what}`, async (tt) => {
    const img = path.join(dir, `damaged-${seed}.iso`);
    tt.teardown(() => fs.rmSync(img, { force: true }));
    const changed = applyDamage(d, img);
    await tt.test('read and verify in process', (x) => checkInProcess(x, img, d, changed));
    if (only || CLI_SEEDS.includes(seed)) {
      await tt.test('uniso verify', (x) => checkVerifyCli(x, img, d, changed));
      await tt.test('uniso extract', (x) => checkExtract(x, img, d));
    }
    if (only || MOUNT_SEEDS.includes(seed)) await tt.test('mount', (x) => checkMount(x, img));
    if (only || SERVE_SEEDS.includes(seed)) await tt.test('serve', (x) => checkServe(x, img));
  });
}
