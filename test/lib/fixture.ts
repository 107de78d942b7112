// Test helpers: the generated fixture appliance, running the uniso CLI and
// system tools, temp directories that are always removed, and FUSE mounts
// that are always unmounted (even when a test fails).

import * as net from 'node:net';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawnSync, SpawnSyncOptions } from 'node:child_process';

export const ROOT = path.resolve(__dirname, '..', '..');
export const UNISO = path.join(ROOT, 'bin', 'uniso');
export const FIXTURE_ISO_NAME = 'turnkey-fixture-1.0-bookworm-amd64.iso';
export const FIXTURE_NAME = 'turnkey-fixture-1.0-bookworm-amd64';
export const FIXTURE_TEMPLATE = 'debian-12-turnkey-fixture_1.0-1_amd64';

export interface Fixture {
  dir: string;
  tree: string;
  iso: string;
}

let cached: Fixture | undefined;

/** The fixture appliance (generated on first use, cached across runs). */
export function fixture(): Fixture {
  if (!cached) {
    const r = spawnSync(path.join(ROOT, 'test', 'fixture', 'prepare.sh'), { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
    if (r.status !== 0) throw new Error('fixture generation failed');
    const dir = r.stdout.trim();
    cached = { dir, tree: path.join(dir, 'tree'), iso: path.join(dir, FIXTURE_ISO_NAME) };
  }
  return cached;
}

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
  out: Buffer;
}

export function run(cmd: string, args: string[], opts: SpawnSyncOptions = {}): RunResult {
  const r = spawnSync(cmd, args, { maxBuffer: 1 << 30, ...opts });
  if (r.error) throw r.error;
  const out = Buffer.isBuffer(r.stdout) ? r.stdout : Buffer.from(r.stdout ?? '');
  return { code: r.status ?? 128, stdout: out.toString('utf8'), stderr: String(r.stderr ?? ''), out };
}

/** Run a command that must succeed; throws with its stderr otherwise. */
export function must(cmd: string, args: string[], opts: SpawnSyncOptions = {}): RunResult {
  const r = run(cmd, args, opts);
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')} exited ${r.code}: ${r.stderr.trim()}`);
  return r;
}

export function uniso(args: string[], opts: SpawnSyncOptions = {}): RunResult {
  return run(process.execPath, [UNISO, ...args], opts);
}

export function mustUniso(args: string[], opts: SpawnSyncOptions = {}): RunResult {
  return must(process.execPath, [UNISO, ...args], opts);
}

export interface Teardown {
  teardown(fn: () => void | Promise<void>): void;
}

/** A TCP port on 127.0.0.1 that nobody listens on right now. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

/** Byte offset and size of a file inside an ISO, from xorriso's report_lba. */
export function isoExtent(iso: string, isoPath: string): { offset: number; size: number } {
  const r = must('xorriso', ['-indev', iso, '-find', isoPath, '-exec', 'report_lba', '--']);
  for (const l of r.stdout.split('\n')) {
    const m = /^File data lba:\s*(\d+)\s*,\s*(\d+)\s*,\s*(\d+)\s*,\s*(\d+)\s*,\s*'(.*)'\s*$/.exec(l);
    if (m && m[5] === isoPath) return { offset: Number(m[2]) * 2048, size: Number(m[4]) };
  }
  throw new Error(`xorriso does not report ${isoPath} in ${iso}:\n${r.stdout}`);
}

/** A fresh temp directory removed when the test ends. */
export function tempDir(t: Teardown, prefix = 'uniso-test-'): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  t.teardown(() => fs.rmSync(d, { recursive: true, force: true }));
  return d;
}

/** The virtual disk size tests build with (the 20 GiB default would make every copy and hash slow). */
export const TEST_DISK_SIZE = '256M';

/** Build the universal ISO of the fixture (or another input) into `dir`. */
export function buildUniversal(dir: string, input = fixture().iso, extra: string[] = []): string {
  const out = path.join(dir, `${FIXTURE_NAME}-universal.iso`);
  mustUniso(['build', input, '-o', out, '-q', '--disk-size', TEST_DISK_SIZE, ...extra]);
  return out;
}

function isMounted(mnt: string): boolean {
  return fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n').some((l) => l.split(' ')[4] === mnt);
}

/** Mount `image` on a new directory; unmounted at teardown whatever happens. */
export function mount(t: Teardown, image: string, extra: string[] = []): string {
  const mnt = path.join(tempDir(t, 'uniso-mnt-'), 'mnt');
  fs.mkdirSync(mnt);
  return mountOn(t, image, mnt, extra);
}

/** `len` bytes of `file` at `offset` (throws on a short read). */
export function readAt(file: string, offset: number, len: number): Buffer {
  const fd = fs.openSync(file, 'r');
  try {
    const b = Buffer.alloc(len);
    if (fs.readSync(fd, b, 0, len, offset) !== len) throw new Error(`short read of ${file} at ${offset}`);
    return b;
  } finally {
    fs.closeSync(fd);
  }
}

/** Deterministic pseudo-random bytes (xorshift32). */
export function pseudoRandom(n: number, seed: number): Buffer {
  const b = Buffer.alloc(n);
  let s = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0;
    b[i] = s & 0xff;
  }
  return b;
}

export { isMounted };

// ---- helpers for FUSE mount tests -------------------------------------------

/** Run a command without blocking the event loop (so several can run at once). */
export function runAsync(cmd: string, args: string[], opts: import('node:child_process').SpawnOptions = {}): Promise<RunResult> {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { spawn } = require('node:child_process') as typeof import('node:child_process');
  return new Promise((resolve, reject) => {
    const p = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], ...opts });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    p.stdout?.on('data', (d: Buffer) => out.push(d));
    p.stderr?.on('data', (d: Buffer) => err.push(d));
    p.on('error', reject);
    p.on('close', (code, sig) => {
      const o = Buffer.concat(out);
      resolve({ code: code ?? (sig ? 128 : 1), stdout: o.toString('utf8'), stderr: Buffer.concat(err).toString('utf8'), out: o });
    });
  });
}

export interface MountState {
  pid: number;
  mountpoint: string;
  image: string;
  file: string;
}

/** The state file `uniso mount` wrote for `mnt` (/run/uniso/*.json), if any. */
export function mountState(mnt: string): MountState | undefined {
  const dir = '/run/uniso';
  let real = mnt;
  try { real = fs.realpathSync(mnt); } catch { /* stale */ }
  let names: string[];
  try { names = fs.readdirSync(dir).filter((n) => n.endsWith('.json')); } catch { return undefined; }
  for (const n of names) {
    try {
      const s = JSON.parse(fs.readFileSync(path.join(dir, n), 'utf8')) as MountState;
      if (s.mountpoint === mnt || s.mountpoint === real) return { ...s, file: path.join(dir, n) };
    } catch { /* removed meanwhile or partial */ }
  }
  return undefined;
}

export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Poll `cond` every 50 ms until it holds or `ms` pass; returns its last value. */
export async function waitUntil(cond: () => boolean, ms = 10000): Promise<boolean> {
  const end = Date.now() + ms;
  for (;;) {
    if (cond()) return true;
    if (Date.now() > end) return false;
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Unmount `mnt` at teardown if it is still mounted then (`uniso umount`, else a lazy fusermount3 -uz). */
export function unmountAtTeardown(t: Teardown, mnt: string): void {
  t.teardown(() => {
    if (isMounted(mnt)) {
      uniso(['umount', mnt]);
      if (isMounted(mnt)) run('fusermount3', ['-uz', mnt]);
    }
  });
}

/** Mount `image` on an existing empty directory `mnt`; unmounted at teardown. */
export function mountOn(t: Teardown, image: string, mnt: string, extra: string[] = []): string {
  unmountAtTeardown(t, mnt);
  mustUniso(['mount', image, mnt, ...extra]);
  return mnt;
}

/** `uniso ls -l IMAGE` as [{path, size}] (directories keep their trailing "/"). */
export function listViews(image: string): { path: string; size: number }[] {
  return mustUniso(['ls', '-l', image]).stdout.split('\n').filter((l) => l.trim()).map((l) => {
    const m = /^\s*(\d+)\s{2}(.+)$/.exec(l);
    if (!m) throw new Error(`uniso ls -l: unexpected line ${JSON.stringify(l)}`);
    return { path: m[2], size: Number(m[1]) };
  });
}

/**
 * The oracle: every view in `views` copied out with `uniso extract` under DIR/extract/ (view path -> file).
 * The extracts run `jobs` at a time, in one synchronous call (a small Node script that runs them in parallel).
 */
export function extractViews(image: string, dir: string, views: { path: string }[], jobs = 3): Map<string, string> {
  const extracted = new Map<string, string>();
  for (const v of views) {
    const out = path.join(dir, 'extract', v.path);
    fs.mkdirSync(path.dirname(out), { recursive: true });
    extracted.set(v.path, out);
  }
  const script = `
    const { spawn } = require('node:child_process');
    const [uniso, image, list, jobs] = process.argv.slice(1);
    const queue = JSON.parse(list);
    let failed = 0;
    const next = () => {
      const job = queue.shift();
      if (!job) return Promise.resolve();
      return new Promise((done) => {
        const p = spawn(process.execPath, [uniso, 'extract', image, job[0], '-o', job[1]], { stdio: ['ignore', 'ignore', 'pipe'] });
        let err = '';
        p.stderr.on('data', (d) => { err += d; });
        p.on('close', (code, sig) => {
          if (code !== 0) { failed = 1; process.stderr.write('uniso extract ' + image + ' ' + job[0] + ': exit ' + (code ?? sig) + ': ' + err); }
          done();
        });
      }).then(next);
    };
    Promise.all(Array.from({ length: Number(jobs) }, next)).then(() => process.exit(failed));
  `;
  const r = run(process.execPath, ['-e', script, UNISO, image, JSON.stringify([...extracted]), String(jobs)]);
  if (r.code !== 0) throw new Error(`extracting the views of ${image} failed: ${r.stderr.trim()}`);
  return extracted;
}
