// `uniso mount` / `uniso umount`: checks on the mount point (missing, not a
// directory, busy, stale mount left by a killed daemon), detaching the
// daemon once it is mounted, a per-mount state file (pid, image), clean
// unmount on SIGINT/SIGTERM, and clearing stale mounts with fusermount3.

import * as fs from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import * as path from 'node:path';
import * as crypto from 'node:crypto';
import * as os from 'node:os';
import { spawn, spawnSync } from 'node:child_process';
import { isUrl, openImage } from '../image/open';
import { displayUrl } from '../io/http-client';
import { RemoteSourceOptions } from '../io/remote-source';
import { Daemon } from './daemon';
import { fileError, UserError } from '../util/errors';
import { NfsExport, NFS_PSEUDO_PATH as NFS_PATH, checkNfsTools, checkPortFree } from '../serve/nfs';
import { parseListen } from '../serve/listen';

export interface MountOptions {
  foreground: boolean;
  allowOther: boolean;
  cacheMb: number;
  nfs?: string; // ADDR:PORT to export the mount over NFS (ganesha)
  remote?: RemoteSourceOptions; // an http(s):// image: CA file, disk cache
  trust?: string; // public key file the image's signature must verify with
}

interface MountState {
  pid: number;
  mountpoint: string;
  image: string;
  log: string;
  nfs?: { listen: string; status: string; ganeshaPid?: number; log: string };
}

function runDir(): string {
  const candidates = [
    process.getuid?.() === 0 ? '/run/uniso' : undefined,
    process.env.XDG_RUNTIME_DIR ? path.join(process.env.XDG_RUNTIME_DIR, 'uniso') : undefined,
    path.join('/tmp', `uniso-${process.getuid?.() ?? 'user'}`),
  ].filter((x): x is string => !!x);
  for (const d of candidates) {
    try {
      fs.mkdirSync(d, { recursive: true, mode: 0o700 });
      fs.accessSync(d, fs.constants.W_OK);
      return d;
    } catch { /* try the next */ }
  }
  throw new UserError('no writable runtime directory for mount state');
}

function stateFile(mnt: string): string {
  return path.join(runDir(), `${crypto.createHash('sha256').update(mnt).digest('hex').slice(0, 16)}.json`);
}

function readState(mnt: string): MountState | undefined {
  return readStateFile(stateFile(mnt));
}

function readStateFile(f: string): MountState | undefined {
  try {
    return JSON.parse(fs.readFileSync(f, 'utf8')) as MountState;
  } catch {
    return undefined;
  }
}

function writeState(mnt: string, st: MountState): void {
  const f = stateFile(mnt);
  fs.writeFileSync(`${f}.tmp`, JSON.stringify(st) + '\n');
  fs.renameSync(`${f}.tmp`, f);
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function unescapeMountinfo(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
}

/** The mount at exactly `mnt`, from /proc/self/mountinfo (fs type, source, device "major:minor"). */
export function mountAt(mnt: string): { fstype: string; source: string; dev: string } | undefined {
  let text: string;
  try {
    text = fs.readFileSync('/proc/self/mountinfo', 'utf8');
  } catch {
    return undefined;
  }
  let found: { fstype: string; source: string; dev: string } | undefined;
  for (const line of text.split('\n')) {
    const f = line.split(' ');
    if (f.length < 10) continue;
    if (unescapeMountinfo(f[4]) !== mnt) continue;
    const dash = f.indexOf('-');
    found = { fstype: f[dash + 1], source: unescapeMountinfo(f[dash + 2]), dev: f[2] };
  }
  return found;
}

/**
 * The kernel reads ahead of a sequential reader by the mount's bdi
 * read_ahead_kb, 128 KiB for a FUSE mount: one request in flight at a
 * time. A larger window keeps several reads in flight, so the daemon
 * inflates ahead on both cores. Needs root; without it the default stays.
 */
function raiseKernelReadahead(mnt: string, log: (line: string) => void): void {
  const m = mountAt(mnt);
  if (!m || !/^\d+:\d+$/.test(m.dev)) return;
  try {
    fs.writeFileSync(`/sys/class/bdi/${m.dev}/read_ahead_kb`, `${KERNEL_READAHEAD_KB}\n`);
  } catch (e) {
    if (process.getuid?.() === 0) log(`could not raise the kernel readahead (${(e as Error).message})`);
  }
}

function checkMountpoint(mnt: string): void {
  let st: fs.Stats;
  try {
    st = fs.statSync(mnt);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOTCONN' || code === 'ECONNABORTED') {
      throw fileError(mnt, `stale FUSE mount left by a killed daemon; clear it with: uniso umount ${mnt}`);
    }
    if (code === 'ENOENT') throw fileError(mnt, 'mount point does not exist');
    throw fileError(mnt, (e as Error).message);
  }
  if (!st.isDirectory()) throw fileError(mnt, 'mount point is not a directory');
  const m = mountAt(mnt);
  if (m) throw fileError(mnt, `mount point is busy (already mounted: ${m.fstype} ${m.source}); unmount it first: uniso umount ${mnt}`);
  if (fs.readdirSync(mnt).length > 0) throw fileError(mnt, 'mount point is not empty');
}

function canonical(mnt: string): string {
  const abs = path.resolve(mnt);
  try {
    return fs.realpathSync(abs);
  } catch {
    return abs; // a stale mount cannot be resolved; use the path as given
  }
}

/**
 * The daemon runs in its own node process tuned for a small, steady memory
 * footprint: a small young generation (short-lived buffers are reclaimed
 * quickly), one malloc arena (no per-thread arenas holding freed memory),
 * and a fixed mmap threshold above libfuse's 128 KiB read buffers (one is
 * allocated per read request: served by mmap they would cost page faults
 * and TLB shootdowns on every read; larger ones still go back to the
 * system when freed). The old generation starts at 48 MB rather than
 * V8's few MB: the heap's objects stay near 8 MB, yet with the default
 * start the collector ran a full mark-compact every ~35 MB read (20 per
 * 673 MB view; V8's worker threads took a tenth of the CPU samples of a
 * cold read); with 48 MB it runs 6, at ~20 MB more peak RSS with 8
 * readers. Measured by `make bench` (throughput, daemon RSS).
 */
const DAEMON_NODE_FLAGS = ['--max-semi-space-size=2', '--initial-old-space-size=48'];
/**
 * The daemon's libuv thread pool (where blocks are inflated) has one
 * thread per core rather than libuv's 4: on 2 cores, 4 inflating threads
 * competed with the event loop that answers FUSE (cold read of the bench
 * docker tar, medians of 8 fresh daemons: 554 MB/s with 4, 585 with 2).
 * A UV_THREADPOOL_SIZE set by the user is kept.
 */
function daemonEnv(): NodeJS.ProcessEnv {
  const pool = process.env.UV_THREADPOOL_SIZE ?? String(Math.max(2, Math.min(os.availableParallelism(), 64)));
  return { ...process.env, MALLOC_ARENA_MAX: '1', MALLOC_MMAP_THRESHOLD_: '262144', UV_THREADPOOL_SIZE: pool, UNISO_DAEMON: '1' };
}
/** The kernel's readahead window on the mount (see raiseKernelReadahead). */
const KERNEL_READAHEAD_KB = 1024;

function daemonArgs(image: string, mnt: string, opts: MountOptions): string[] {
  const args = [...DAEMON_NODE_FLAGS, process.argv[1], 'mount', '--foreground', '--cache-mb', String(opts.cacheMb)];
  if (opts.allowOther) args.push('--allow-other');
  if (opts.nfs) args.push('--nfs', opts.nfs);
  const r = opts.remote;
  if (r?.ca) args.push('--ca', path.resolve(r.ca));
  if (r?.cacheDir) args.push('--cache-dir', path.resolve(r.cacheDir));
  if (r?.cacheBytes) args.push('--cache-size', String(r.cacheBytes));
  if (opts.trust !== undefined) args.push('--trust', opts.trust);
  return [...args, image, mnt];
}

export async function mountCommand(image: string, mntArg: string, opts: MountOptions): Promise<void> {
  const mnt = canonical(mntArg);
  checkMountpoint(mnt);
  if (opts.nfs && process.env.UNISO_DAEMON !== '1') {
    // an NFS server reads the mount as other users: allow_other is needed
    opts.allowOther = true;
    const { host, port } = parseListen(opts.nfs, '--nfs');
    checkNfsTools();
    const other = runningNfsExport();
    if (other) {
      // ganesha registers NFSv3 with the one rpcbind: a second server would take it over from the first
      throw new UserError(`--nfs: ${other.mountpoint} is already exported over NFS (${other.nfs!.listen}); one NFS export per host: unmount it first`);
    }
    await checkPortFree(host, port);
  }
  if (!opts.foreground) return detach(image, mnt, opts);
  if (process.env.UNISO_DAEMON === '1') return runDaemon(image, mnt, opts);
  // foreground: run the tuned daemon process attached to this terminal
  const child = spawn(process.execPath, daemonArgs(image, mnt, opts), { stdio: 'inherit', env: daemonEnv() });
  const forward = (sig: NodeJS.Signals) => () => child.kill(sig);
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(sig, forward(sig));
  const code: number = await new Promise((resolve) => child.on('exit', (c, sig) => resolve(c ?? (sig ? 128 : 1))));
  if (code !== 0) process.exit(code);
}

/** Start the daemon in the background and wait until it reports mounted (or failed). */
async function detach(image: string, mnt: string, opts: MountOptions): Promise<void> {
  const dir = runDir();
  const log = path.join(dir, `${path.basename(stateFile(mnt), '.json')}.log`);
  const logFd = fs.openSync(log, 'w');
  const child = spawn(process.execPath, daemonArgs(image, mnt, opts), {
    detached: true,
    stdio: ['ignore', logFd, logFd, 'pipe'],
    env: { ...daemonEnv(), UNISO_READY_FD: '3', UNISO_LOG_FILE: log },
  });
  fs.closeSync(logFd);
  const ready = child.stdio[3] as NodeJS.ReadableStream;
  const msg: string = await new Promise((resolve) => {
    let buf = '';
    ready.on('data', (d: Buffer) => { buf += d.toString(); if (buf.includes('\n')) resolve(buf); });
    ready.on('end', () => resolve(buf));
    child.on('exit', (code) => resolve(buf || `exited with status ${code}`));
  });
  if (msg.startsWith('ok')) {
    child.unref();
    (ready as unknown as { destroy(): void }).destroy();
    return;
  }
  if (msg.startsWith('error ')) {
    // the daemon said what went wrong; that message is all the log holds
    try { fs.unlinkSync(log); } catch { /* gone */ }
    throw new UserError(msg.slice(6).trim());
  }
  throw new UserError(`${mnt}: mount failed: daemon ${msg.trim() || 'exited'} (see ${log})`);
}

async function runDaemon(image: string, mnt: string, opts: MountOptions): Promise<void> {
  const readyFd = process.env.UNISO_READY_FD ? Number(process.env.UNISO_READY_FD) : undefined;
  const logFile = process.env.UNISO_LOG_FILE; // removed after a clean unmount
  const report = (line: string) => {
    if (readyFd === undefined) return;
    try { fs.writeSync(readyFd, `${line}\n`); } catch { /* parent gone */ }
  };
  const log = (line: string) => process.stderr.write(`${new Date().toISOString()} uniso[${process.pid}]: ${line}\n`);
  let img;
  try {
    img = await openImage(image, { cacheBytes: opts.cacheMb << 20, remote: { ...opts.remote, log }, trust: opts.trust });
  } catch (e) {
    report(`error ${(e as Error).message}`);
    throw e;
  }
  const daemon = new Daemon(img, mnt, { allowOther: opts.allowOther, log });
  try {
    await daemon.mount();
  } catch (e) {
    img.close();
    const msg = `${mnt}: mount failed: ${(e as Error).message}`;
    report(`error ${msg}`);
    throw new UserError(msg);
  }
  raiseKernelReadahead(mnt, log);
  const state: MountState = { pid: process.pid, mountpoint: mnt, image: isUrl(image) ? displayUrl(image) : path.resolve(image), log: logFile ?? '' };
  let nfs: NfsExport | undefined;
  if (opts.nfs) {
    const { host, port } = parseListen(opts.nfs, '--nfs');
    const workDir = path.join(runDir(), `${path.basename(stateFile(mnt), '.json')}-nfs`);
    nfs = new NfsExport({ host, port, mountpoint: mnt, workDir, log });
    try {
      await nfs.start();
    } catch (e) {
      await nfs.stop();
      await daemon.unmount();
      img.close();
      report(`error ${mnt}: ${(e as Error).message}`);
      throw e;
    }
    state.nfs = { listen: opts.nfs, status: 'running', ganeshaPid: nfs.ganeshaPid, log: nfs.logFile };
    nfs.onUnexpectedExit = (why) => {
      log(`NFS export stopped: ganesha exited (${why}); the FUSE mount keeps serving (see ${nfs!.logFile})`);
      state.nfs = { ...state.nfs!, status: `stopped: ganesha exited (${why})` };
      writeState(mnt, state);
    };
  }
  writeState(mnt, state);
  process.on('uncaughtException', (e) => log(`unexpected error (still serving): ${e.stack ?? e.message}`));
  process.on('unhandledRejection', (e) => log(`unexpected rejection (still serving): ${String(e)}`));
  let stopping = false;
  /** `unmount`: false when the mount is already gone (and the path may hold someone else's mount now). */
  const stop = async (why: string, unmount = true) => {
    if (stopping) return;
    stopping = true;
    log(unmount ? `${why}: unmounting ${mnt}` : `${why}: exiting`);
    if (nfs) await nfs.stop();
    if (unmount) await daemon.unmount();
    // a new mount on this path may have written its own state already
    if (readState(mnt)?.pid === process.pid) {
      try { fs.unlinkSync(stateFile(mnt)); } catch { /* gone */ }
    }
    if (logFile) {
      try { fs.unlinkSync(logFile); } catch { /* gone */ }
    }
    img.close();
    process.exit(0);
  };
  process.on('SIGINT', () => void stop('SIGINT'));
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGHUP', () => void stop('SIGHUP'));
  watchMount(mnt, (why, mounted) => void stop(why, mounted));
  log(`mounted ${image} on ${mnt}`);
  report('ok');
  if (readyFd !== undefined) {
    try { fs.closeSync(readyFd); } catch { /* closed */ }
  }
  // Keep the event loop alive until a signal arrives.
  setInterval(() => { /* the FUSE thread serves requests */ }, 1 << 30);
}


/** How often the daemon checks that its mount is still there. */
const MOUNT_WATCH_MS = 250;

/**
 * Calls `gone` once when the mount this daemon serves goes away by any
 * means: removed (fusermount -u, umount, umount -l: it leaves
 * /proc/self/mountinfo, or another mount replaces it there) or its kernel
 * connection aborted (the mount point then answers ENOTCONN). libfuse
 * daemons end with their mount; so does ours.
 */
function watchMount(mnt: string, gone: (why: string, stillMounted: boolean) => void): void {
  const dev = mountAt(mnt)?.dev;
  if (!dev) return;
  let checking = false;
  const timer = setInterval(() => {
    if (checking) return;
    const now = mountAt(mnt);
    if (!now || now.dev !== dev) {
      clearInterval(timer);
      gone(`${mnt} was unmounted`, false);
      return;
    }
    // statfs always reaches the daemon (stat may be answered from the kernel's
    // attribute cache); async, as the FUSE thread answers through this event loop
    checking = true;
    fs.promises.statfs(mnt).then(() => { checking = false; }, (e: NodeJS.ErrnoException) => {
      checking = false;
      if (e.code === 'ENOTCONN' || e.code === 'ECONNABORTED') {
        clearInterval(timer);
        gone(`the kernel connection of ${mnt} was aborted`, true); // the dead mount is lifted (lazily)
      }
    });
  }, MOUNT_WATCH_MS);
  timer.unref();
}

function fusermount(mnt: string, lazy: boolean): { ok: boolean; err: string } {
  for (const tool of ['fusermount3', 'fusermount']) {
    const r = spawnSync(tool, [lazy ? '-uz' : '-u', mnt], { encoding: 'utf8' });
    if (r.error) continue;
    return { ok: r.status === 0, err: (r.stderr ?? '').trim() };
  }
  return { ok: false, err: 'fusermount3 not found (install the "fuse3" package)' };
}

export async function umountCommand(mntArg: string): Promise<void> {
  const mnt = canonical(mntArg);
  const state = readState(mnt);
  if (state && alive(state.pid)) {
    process.kill(state.pid, 'SIGTERM');
    for (let i = 0; i < 200 && (alive(state.pid) || mountAt(mnt)); i++) await sleep(50);
    if (!mountAt(mnt)) return;
  }
  try { fs.unlinkSync(stateFile(mnt)); } catch { /* none */ }
  const m = mountAt(mnt);
  if (!m) throw fileError(mnt, 'not mounted');
  if (!m.fstype.startsWith('fuse')) throw fileError(mnt, `not a uniso mount (${m.fstype})`);
  const r = fusermount(mnt, false);
  if (r.ok) return;
  if (/busy/i.test(r.err)) throw fileError(mnt, 'mount point is busy (a process is using it); close it and retry');
  const lazy = fusermount(mnt, true);
  if (!lazy.ok) throw fileError(mnt, `unmount failed: ${lazy.err || r.err}`);
}

/** The state files of this user's mounts, by file name. */
function allStates(): MountState[] {
  const dir = runDir();
  return fs.readdirSync(dir).filter((n) => n.endsWith('.json')).sort()
    .map((f) => readStateFile(path.join(dir, f))).filter((st): st is MountState => !!st);
}

/** Does the state say the NFS export runs, and does its ganesha still run? */
function nfsRunning(st: MountState): boolean {
  return !!st.nfs && st.nfs.status === 'running' && !!st.nfs.ganeshaPid && alive(st.nfs.ganeshaPid);
}

/** The state of a live mount of this user whose NFS export is running, if any. */
function runningNfsExport(): MountState | undefined {
  return allStates().find((st) => alive(st.pid) && nfsRunning(st));
}

/** `uniso status`: the mounts this user's daemons serve, and their NFS exports. */
export function statusCommand(json: boolean): void {
  const rows: (MountState & { alive: boolean; mounted: boolean })[] = [];
  for (const st of allStates()) {
    if (st.nfs && st.nfs.status === 'running' && !nfsRunning(st)) st.nfs.status = 'stopped: ganesha is not running';
    rows.push({ ...st, alive: alive(st.pid), mounted: !!mountAt(st.mountpoint) });
  }
  if (json) {
    process.stdout.write(JSON.stringify(rows, null, 2) + '\n');
    return;
  }
  if (!rows.length) {
    process.stdout.write('no uniso mounts\n');
    return;
  }
  for (const r of rows) {
    const state = r.alive && r.mounted ? 'mounted' : r.mounted ? 'STALE (daemon gone; uniso umount ' + r.mountpoint + ')' : 'not mounted';
    process.stdout.write(`${r.mountpoint}: ${state}, ${r.image} (daemon ${r.pid})\n`);
    if (r.nfs) process.stdout.write(`  nfs ${r.nfs.listen}${NFS_PATH}: ${r.nfs.status}\n`);
  }
}
