// Test helpers: the generated fixture appliance, running the uniso CLI and
// system tools, temp directories that are always removed, and FUSE mounts
// that are always unmounted (even when a test fails).

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

interface Teardown {
  teardown(fn: () => void | Promise<void>): void;
}

/** A fresh temp directory removed when the test ends. */
export function tempDir(t: Teardown, prefix = 'uniso-test-'): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  t.teardown(() => fs.rmSync(d, { recursive: true, force: true }));
  return d;
}

/** Build the universal ISO of the fixture (or another input) into `dir`. */
export function buildUniversal(dir: string, input = fixture().iso, extra: string[] = []): string {
  const out = path.join(dir, `${FIXTURE_NAME}-universal.iso`);
  mustUniso(['build', input, '-o', out, '-q', ...extra]);
  return out;
}

function isMounted(mnt: string): boolean {
  return fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n').some((l) => l.split(' ')[4] === mnt);
}

/** Mount `image` on a new directory; unmounted at teardown whatever happens. */
export function mount(t: Teardown, image: string, extra: string[] = []): string {
  const base = tempDir(t, 'uniso-mnt-');
  const mnt = path.join(base, 'mnt');
  fs.mkdirSync(mnt);
  t.teardown(() => {
    if (isMounted(mnt)) {
      uniso(['umount', mnt]);
      if (isMounted(mnt)) run('fusermount3', ['-uz', mnt]);
    }
  });
  mustUniso(['mount', image, mnt, ...extra]);
  return mnt;
}

export { isMounted };
