// Remote images: `uniso ls|info|extract|verify|mount|serve URL` over a real
// web server (Debian's nginx, HTTP and HTTPS with --ca) read exactly the
// bytes the local image gives (every file view by streaming SHA-256 against
// `uniso extract LOCAL`, rootfs/ files against the fixture tree); HTTPS
// without --ca is one line naming --ca (no mount, no daemon); a copy fetches
// about what it needs (nginx's access log), and a remount on the same
// --cache-dir fetches only the 64 KiB probe. With the in-process fault
// server: 404, a server ignoring Range, redirects and a redirect loop at open
// are one-line errors (exit 1, no internal error); a wrong Content-Range, a
// truncated body, 503s, a server killed mid-copy or down past the deadline, a
// stalled answer and the file replaced on the server give right bytes or EIO
// through the mount, never wrong bytes (whatever a failed read delivered is a
// prefix of the right bytes), the daemon keeps running and reads again once
// the server is back; --trust refuses an unsigned image and another key's
// before mounting. The disk cache: a torn or damaged chunk in a segment file is not used
// (the bytes are fetched again), two mounts share one cache directory, and
// --cache-size caps it. Oracles: the local image (uniso extract, ls --json),
// the fixture tree, nginx's access log, the fault server's request log,
// uniso status --json and the daemon's log.
//
// The fault server runs in this process: every uniso, cat, dd and curl runs
// as a child asynchronously (runAsync/hashRun), never with spawnSync, while
// it serves (what the tests compare with is computed before they start).
//
// The subtests run in parallel (t.jobs): each has its own fault server, mount
// points, cache directory and, on the shared nginx, its own name for the image
// (u.iso, fetch.iso, torn.iso, ...: hard links) so that the access-log entries
// it counts are its own. Most of a fault subtest's time is spent waiting out a
// deadline or a server kept down; the nginx subtests are the CPU-heavy ones.
// Whole-view reads (the oracle's, extract/mount/serve of every view) go through
// one queue of HEAVY at a time.

import t, { Test } from 'tap';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as crypto from 'node:crypto';
import { spawn } from 'node:child_process';
import { fixture, isMounted, processAlive, runAsync, tempDir, UNISO, waitUntil, FIXTURE_NAME, FIXTURE_TEMPLATE, RunResult, isoExtent, TEST_DISK_SIZE } from './lib/fixture';
import { accepts, freePort, NginxServer, startNginx, AccessEntry } from './lib/nginx';
import { FaultServer, startFaultServer } from './lib/fault-server';

const KiB = 1024;
const MiB = 1024 * KiB;
const CHUNK = 64 * KiB; // RemoteSource's chunk: the unit of fetching and of the disk cache
// the disk cache's layout (chunk-cache.ts): per remote file version a directory of 8 MiB segments,
// SEG.data (sparse, chunk i at (i mod SEGMENT) * CHUNK) and SEG.idx (16-byte records: magic, chunk, XXH3-64)
const SEGMENT = 128;
const RECORD = 16;
const RECORD_MAGIC = 0x31434e55;
const NODE = process.execPath;

const PROXMOX = `proxmox/${FIXTURE_TEMPLATE}.tar.gz`;
const OVA = `vm/${FIXTURE_NAME}.ova`;
const OVF = `vm/${FIXTURE_NAME}.ovf`;
const DOCKER = `docker/${FIXTURE_NAME}-docker.tar`;
const ROOTFS_FILES = ['etc/motd', 'usr/lib/random-1m.bin', 'usr/lib/zero-middle.bin', 'usr/lib/64k-plus-1.bin', 'usr/lib/exact-64k.bin',
  'usr/share/doc/numbers.txt', 'var/log/sparse.log', 'root/secret', 'srv/name with spaces.txt'];

// no proxy, no extra CA from the environment: --ca alone decides what is trusted
const env: NodeJS.ProcessEnv = { ...process.env };
for (const k of ['NODE_EXTRA_CA_CERTS', 'SSL_CERT_FILE', 'http_proxy', 'https_proxy', 'HTTP_PROXY', 'HTTPS_PROXY', 'all_proxy', 'ALL_PROXY']) delete env[k];

const fx = fixture();
const work = tempDir(t, 'uniso-remote-');
let dirs = 0;
/** A fresh, empty directory under the test's temp directory. */
function subdir(name: string): string {
  const d = path.join(work, `${++dirs}-${name}`);
  fs.mkdirSync(d);
  return d;
}

// ---- the images: the fixture's universal ISO, a signed one, and one larger than 16 MiB -------------------
// (built in t.before, at once)

const uni = path.join(subdir('uni'), `${FIXTURE_NAME}-universal.iso`);
const keys = subdir('keys');
const signed = path.join(subdir('signed'), `${FIXTURE_NAME}-universal.iso`);
const big = path.join(subdir('big'), 'big.iso');
const BIG_VIEW = 'docker/bigtest-docker.tar';
// the changed copy of uni (the file replaced on the server)
const changed = path.join(subdir('changed'), 'u.iso');

// What nginx serves: u.iso (the fixture's), signed.iso, big.iso, and the fixture's image again under the names
// of the subtests that count their requests in the access log (hard links of u.iso: the same bytes and ETag).
const www = subdir('www');
const ALIASES = ['fetch.iso', 'torn.iso', 'shared.iso'];

interface LsEntry { path: string; size: number; sha256: string }
// what the local images say: `uniso ls`, `ls -l`, `ls --json`, `info --json`, ...
const local = { ls: '', lsLong: '', lsJson: '', infoJson: '', signedLs: '', signedDockerSha: '', bigLsLong: '', bigSha: '' };
let lsJson: LsEntry[] = [];
let fileViews: LsEntry[] = [];
let sizeOf = new Map<string, number>();
let topLevel: string[] = [];
// where the catalog and the side pool lie in uni
let CATALOG = { offset: 0, size: 0 };
let POOL = { offset: 0, size: 0 };

// ---- helpers ----------------------------------------------------------------

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Hashed {
  code: number;
  stderr: string;
  sha256: string;
  size: number;
  ms: number;
  /** stdout itself, when asked to keep it */
  out?: Buffer;
}

/** Run a command, hashing its stdout as it streams (nothing written to disk); `keep` keeps stdout too. */
function hashRun(cmd: string, args: string[], keep = false): Promise<Hashed> {
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const p = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], env });
    const h = crypto.createHash('sha256');
    let size = 0;
    const kept: Buffer[] = [];
    let stderr = '';
    p.stdout.on('data', (d: Buffer) => {
      h.update(d);
      size += d.length;
      if (keep) kept.push(d);
    });
    p.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
    p.on('error', reject);
    p.on('close', (code, sig) => resolve({
      code: code ?? (sig ? 128 : 1), stderr, sha256: h.digest('hex'), size, ms: Date.now() - started,
      out: keep ? Buffer.concat(kept) : undefined,
    }));
  });
}

/** uniso as a child, asynchronously (the fault server must keep answering). */
const U = (args: string[]): Promise<RunResult> => runAsync(NODE, [UNISO, ...args], { env });
/** `uniso extract IMAGE VIEW -o -`, its stdout hashed. */
const extractSha = (image: string, view: string, extra: string[] = [], keep = false) =>
  hashRun(NODE, [UNISO, 'extract', '-q', ...extra, image, view, '-o', '-'], keep);
/** Read a file through the mount: cat, or dd with O_DIRECT (every read reaches the daemon, none is served by the page cache). */
const readFile = (file: string, direct = false, keep = false) =>
  direct ? hashRun('dd', [`if=${file}`, 'bs=1M', 'iflag=direct', 'status=none'], keep) : hashRun('cat', [file], keep);

/** Wait for all of `ps` (none left running when the subtest ends), then throw the first failure if any. */
async function settle(ps: Promise<unknown>[]): Promise<void> {
  const rs = await Promise.allSettled(ps);
  const bad = rs.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (bad) throw bad.reason;
}

/** At most HEAVY of the whole-view reads at once (every one a process or two streaming a view). */
const HEAVY = 4;
let heavyRunning = 0;
const heavyWaiting: (() => void)[] = [];
async function heavy<T>(f: () => Promise<T>): Promise<T> {
  if (heavyRunning < HEAVY) heavyRunning++;
  else await new Promise<void>((r) => heavyWaiting.push(r)); // handed the slot of one that ends
  try {
    return await f();
  } finally {
    const next = heavyWaiting.shift();
    if (next) next();
    else heavyRunning--;
  }
}

// the oracle: SHA-256 and bytes of every file view as `uniso extract LOCAL VIEW -o -` writes it
const localSha = new Map<string, string>();
const localBytes = new Map<string, Buffer>(); // the smaller views, for prefix checks
/** The views the fault and cache subtests read: the oracle has them before any subtest starts. */
const CORE_VIEWS = ['README.txt', OVA, OVF, PROXMOX, DOCKER, `raw/${FIXTURE_NAME}.img`, `vm/${FIXTURE_NAME}-disk1.vmdk`];
/** Every other view's oracle, computed while the first subtests run: await it before using them. */
let oracleAll: Promise<void> = Promise.resolve();

async function oracle(v: LsEntry): Promise<void> {
  const keep = v.size <= 8 * MiB;
  const r = await heavy(() => extractSha(uni, v.path, [], keep));
  if (r.code !== 0 || r.size !== v.size) throw new Error(`uniso extract ${uni} ${v.path}: exit ${r.code}, ${r.size} bytes: ${r.stderr}`);
  localSha.set(v.path, r.sha256);
  if (keep) localBytes.set(v.path, r.out!);
}

/** `uniso ARGS` (asynchronously) that must succeed: its stdout. */
async function mustU(args: string[]): Promise<string> {
  const r = await U(args);
  if (r.code !== 0) throw new Error(`uniso ${args.join(' ')}: exit ${r.code}: ${r.stderr}`);
  return r.stdout;
}

/** The SHA-256 of `uniso extract IMAGE VIEW -o -`, which must succeed. */
async function mustSha(image: string, view: string): Promise<string> {
  const r = await extractSha(image, view);
  if (r.code !== 0) throw new Error(`uniso extract ${image} ${view}: exit ${r.code}: ${r.stderr}`);
  return r.sha256;
}

t.before(async () => {
  // the images, built at once
  const bigTree = subdir('big-tree');
  fs.mkdirSync(path.join(bigTree, 'etc'));
  fs.writeFileSync(path.join(bigTree, 'etc/motd'), 'big\n');
  fs.mkdirSync(path.join(bigTree, 'srv'));
  // 24 MiB of incompressible bytes: a pool larger than the 16 MiB --cache-size
  fs.writeFileSync(path.join(bigTree, 'srv/random.bin'), crypto.randomBytes(24 * MiB));
  await Promise.all([
    mustU(['build', fx.iso, '-o', uni, '-q', '--disk-size', TEST_DISK_SIZE]),
    (async () => {
      await Promise.all([mustU(['key', 'generate', path.join(keys, 'a')]), mustU(['key', 'generate', path.join(keys, 'b')])]);
      // (docker only: a quicker build; what is checked is the signature)
      await mustU(['build', fx.iso, '-o', signed, '-q', '--disk-size', TEST_DISK_SIZE, '--sign', path.join(keys, 'a.key'), '--formats', 'docker']);
    })(),
    mustU(['build', bigTree, '-o', big, '-q', '--disk-size', TEST_DISK_SIZE, '--name', 'bigtest', '--formats', 'docker']),
  ]);
  fs.rmSync(bigTree, { recursive: true });
  fs.copyFileSync(uni, path.join(www, 'u.iso'));
  for (const a of ALIASES) fs.linkSync(path.join(www, 'u.iso'), path.join(www, a));
  fs.copyFileSync(signed, path.join(www, 'signed.iso'));
  fs.copyFileSync(big, path.join(www, 'big.iso'));

  // the catalog's and the side pool's places (xorriso, synchronously: no server of this process runs yet)
  CATALOG = isoExtent(uni, '/uniso/catalog.sqlite');
  POOL = isoExtent(uni, '/uniso/pool.bin');
  // the same image with 4 KiB of its side pool changed: same size, another ETag
  fs.copyFileSync(uni, changed);
  const fd = fs.openSync(changed, 'r+');
  fs.writeSync(fd, Buffer.alloc(4096, 0x5a), 0, 4096, POOL.offset + Math.floor(POOL.size * 3 / 4));
  fs.closeSync(fd);

  // what the local images say, and the two web servers
  [local.ls, local.lsLong, local.lsJson, local.infoJson, local.signedLs, local.signedDockerSha, local.bigLsLong, local.bigSha] = await Promise.all([
    mustU(['ls', uni]), mustU(['ls', '-l', uni]), mustU(['ls', '--json', uni]), mustU(['info', '--json', uni]), mustU(['ls', signed]),
    mustSha(signed, DOCKER), mustU(['ls', '-l', big]), mustSha(big, BIG_VIEW),
    (async () => {
      httpSrv = await startNginx({ root: www });
      httpsSrv = await startNginx({ root: www, https: true });
    })().then(() => ''),
  ]);
  lsJson = JSON.parse(local.lsJson) as LsEntry[];
  fileViews = lsJson.filter((v) => !v.path.endsWith('/'));
  sizeOf = new Map(fileViews.map((v) => [v.path, v.size]));
  topLevel = [...new Set(lsJson.map((v) => v.path.split('/')[0]))].sort();

  // the oracle: the views the fault subtests read now, the others (the large disk views first) while they run
  await Promise.all(CORE_VIEWS.map((p) => oracle(fileViews.find((v) => v.path === p)!)));
  const rest = fileViews.filter((v) => !CORE_VIEWS.includes(v.path)).sort((x, y) => y.size - x.size);
  oracleAll = Promise.all(rest.map(oracle)).then(() => undefined);
  oracleAll.catch(() => { /* reported by the subtests that await it */ });
});

/** `r` is a normal one-line user error: exit 1, stderr exactly one line "uniso: ...", no internal error or stack trace. */
function oneLineError(tt: Test, r: { code: number; stderr: string }, what: string, ...patterns: (RegExp | string)[]): void {
  tt.equal(r.code, 1, `${what}: exit 1 (got ${r.code})`);
  tt.match(r.stderr, /^uniso: [^\n]+\n$/, `${what}: stderr is exactly one "uniso: " line (got: ${JSON.stringify(r.stderr)})`);
  tt.notMatch(r.stderr, /internal error|\n\s+at |Error:/, `${what}: no internal error, no stack trace`);
  for (const p of patterns) tt.match(r.stderr, p, `${what}: the message says ${p}`);
}

/** `r` (a read through the mount) either failed with EIO having written a prefix of the right bytes, or gave exactly them. */
function rightOrEio(tt: Test, r: Hashed, view: string, what: string): 'ok' | 'eio' {
  const want = localBytes.get(view);
  if (r.code === 0) {
    tt.equal(r.sha256, localSha.get(view), `${what}: completed with the right bytes (${r.size} bytes)`);
    return 'ok';
  }
  tt.match(r.stderr, /Input\/output error/, `${what}: failed with EIO (${r.stderr.trim()})`);
  if (want && r.out) tt.ok(want.subarray(0, r.out.length).equals(r.out), `${what}: the ${r.out.length} bytes it gave before failing are right`);
  return 'eio';
}

interface StatusRow { pid: number; mountpoint: string; image: string; log: string; alive: boolean; mounted: boolean }
async function status(): Promise<StatusRow[]> {
  const r = await U(['status', '--json']);
  if (r.code !== 0) throw new Error(`uniso status --json: ${r.stderr}`);
  return JSON.parse(r.stdout) as StatusRow[];
}

interface Mounted { mnt: string; pid: number; log: string }

async function unmountAsync(mnt: string): Promise<void> {
  if (!isMounted(mnt)) return;
  await U(['umount', mnt]);
  if (isMounted(mnt)) await runAsync('fusermount3', ['-uz', mnt]);
}

/** A new empty mount point (its directory removed with the test's). */
function mountPoint(): string {
  const m = path.join(subdir('mnt'), 'mnt');
  fs.mkdirSync(m);
  return m;
}

// Unmounting takes ~2 s (uniso umount waits for the daemon to exit): a subtest's mounts are unmounted in the
// background when it ends, and the file's teardown (before its temp directory goes) waits for them all.
const unmounting: Promise<void>[] = [];
t.teardown(() => Promise.all(unmounting).then(() => undefined));

/** `uniso mount IMAGE MNT` (asynchronously), unmounted when the subtest ends whatever happens. */
async function mountUrl(tt: Test, image: string, extra: string[] = [], mnt = mountPoint()): Promise<Mounted> {
  tt.teardown(() => { unmounting.push(unmountAsync(mnt)); });
  const r = await U(['mount', ...extra, image, mnt]);
  if (r.code !== 0) throw new Error(`uniso mount ${image} ${mnt}: exit ${r.code}: ${r.stderr}`);
  const row = (await status()).find((s) => s.mountpoint === mnt);
  if (!row) throw new Error(`uniso status does not list ${mnt}`);
  return { mnt, pid: row.pid, log: row.log };
}

/** The daemon is alive, `uniso status` says mounted, and it answers: README.txt and a listing. */
async function daemonAnswers(tt: Test, m: Mounted, what: string): Promise<void> {
  const row = (await status()).find((s) => s.mountpoint === m.mnt);
  tt.ok(row && row.pid === m.pid && row.alive && row.mounted, `${what}: uniso status: daemon ${m.pid} alive, mounted (${JSON.stringify(row)})`);
  tt.ok(processAlive(m.pid), `${what}: the daemon process is alive`);
  const r = await readFile(path.join(m.mnt, 'README.txt'), true);
  tt.ok(r.code === 0 && r.sha256 === localSha.get('README.txt'), `${what}: the daemon answers (README.txt reads right) ${r.stderr}`);
  const ls = await runAsync('ls', ['-A', m.mnt]);
  tt.same(ls.stdout.split('\n').filter(Boolean).sort(), topLevel, `${what}: readdir of the root lists what uniso ls lists`);
}

/** The daemon's log lines (its file is removed at unmount: read it before). */
function daemonLog(m: Mounted): string[] {
  try {
    return fs.readFileSync(m.log, 'utf8').split('\n').filter(Boolean);
  } catch {
    return [];
  }
}

/** The mount point is empty and unmounted, and no daemon serves it. */
async function noMount(tt: Test, mnt: string, what: string): Promise<void> {
  tt.notOk(isMounted(mnt), `${what}: not mounted`);
  tt.same(fs.readdirSync(mnt), [], `${what}: the mount point stays empty`);
  tt.notOk((await status()).some((s) => s.mountpoint === mnt), `${what}: uniso status lists no daemon for it`);
  // the daemon that reported the error may take a moment to exit
  let left = '';
  for (const end = Date.now() + 10000; Date.now() < end; await sleep(100)) {
    left = (await runAsync('pgrep', ['-af', `uniso mount --foreground .*${mnt}$`])).stdout.trim();
    if (!left) break;
  }
  tt.equal(left, '', `${what}: no daemon process left`);
}

/**
 * Wait until the cache files under `dir` stop changing (no temporary file, the same chunks for 300 ms): a daemon
 * writes the chunks it fetched in the background, and one stopped before they are written loses them.
 */
async function cacheSettled(dir: string): Promise<void> {
  let prev = '';
  for (const end = Date.now() + 10000; Date.now() < end; await sleep(300)) {
    const files = filesUnder(dir).map((f) => `${f.file}:${f.size}`).sort().join('\n');
    if (files === prev && !files.includes('.tmp:')) return;
    prev = files;
  }
}

/** nginx's access-log entries for `/NAME` once they stop growing (a line is written when its response is done). */
async function settledEntries(s: NginxServer, name: string): Promise<AccessEntry[]> {
  let prev = -1;
  for (;;) {
    const e = (await s.accessEntries()).filter((x) => x.uri === `/${name}`);
    if (e.length === prev) return e;
    prev = e.length;
    await sleep(200);
  }
}

/** [first, last] of a "bytes=a-b" Range. */
function rangeOf(r: string | undefined): [number, number] | undefined {
  const m = /^bytes=(\d+)-(\d+)$/.exec(r ?? '');
  return m ? [Number(m[1]), Number(m[2])] : undefined;
}

/** Every file under `dir` with its size. */
function filesUnder(dir: string): { file: string; size: number; allocated: number }[] {
  const out: { file: string; size: number; allocated: number }[] = [];
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) {
      out.push(...filesUnder(p));
    } else {
      try {
        const st = fs.statSync(p);
        out.push({ file: p, size: st.size, allocated: st.blocks * 512 });
      } catch { /* renamed or removed meanwhile (a daemon writing or evicting) */ }
    }
  }
  return out;
}

/** The chunk indices with a file in a cache directory (one remote file's). */
function chunksOnDisk(cacheDir: string): Set<number> {
  const out = new Set<number>();
  for (const f of filesUnder(cacheDir).filter((x) => x.file.endsWith('.idx'))) {
    const b = fs.readFileSync(f.file);
    for (let o = 0; o + RECORD <= b.length; o += RECORD) if (b.readUInt32LE(o) === RECORD_MAGIC) out.add(b.readUInt32LE(o + 4));
  }
  return out;
}

/** The segment files holding chunk `i` in a version's cache directory, and where in .data it lies. */
function segmentOf(dir: string, i: number): { data: string; idx: string; at: number } {
  const base = path.join(dir, Math.floor(i / SEGMENT).toString(16).padStart(6, '0'));
  return { data: `${base}.data`, idx: `${base}.idx`, at: (i % SEGMENT) * CHUNK };
}

/** Forget chunks `ids` (drop their index records, as if evicted or never written). */
function dropChunks(dir: string, ids: number[]): void {
  const drop = new Set(ids);
  for (const idx of new Set(ids.map((i) => segmentOf(dir, i).idx))) {
    const b = fs.readFileSync(idx);
    const keep: Buffer[] = [];
    for (let o = 0; o + RECORD <= b.length; o += RECORD) if (!drop.has(b.readUInt32LE(o + 4))) keep.push(b.subarray(o, o + RECORD));
    fs.writeFileSync(idx, Buffer.concat(keep));
  }
}

/** The chunks that fetched ranges covered, the first (every open's 64 KiB probe) left out. */
function chunksFetched(ranges: [number, number][]): number[] {
  const out = new Set<number>();
  for (const [a, z] of ranges) for (let i = Math.floor(a / CHUNK); i <= Math.floor(z / CHUNK); i++) if (i > 0) out.add(i);
  return [...out].sort((x, y) => x - y);
}

/** A fault server serving `file` (default: the fixture's universal ISO), stopped at teardown. */
async function faultServer(tt: Test, file = uni): Promise<FaultServer> {
  const s = await startFaultServer({ file });
  tt.teardown(() => s.stop());
  return s;
}

// ---- nginx over HTTP and HTTPS ---------------------------------------------------

let httpSrv: NginxServer; // started in t.before
let httpsSrv: NginxServer;
t.teardown(async () => {
  await httpSrv?.stop();
  await httpsSrv?.stop();
});

// the subtests below run this many at a time (see the header)
t.jobs = 8;

for (const scheme of ['http', 'https'] as const) {
  t.test(`nginx over ${scheme.toUpperCase()}: ls, info, extract, mount, verify and serve read the local image's bytes`, async (t) => {
    const srv = scheme === 'http' ? httpSrv : httpsSrv;
    const url = `${srv.url}u.iso`;
    const ca = scheme === 'https' ? ['--ca', srv.caFile!] : [];

    const [ls, lsj, info] = await Promise.all([U(['ls', ...ca, url]), U(['ls', '--json', ...ca, url]), U(['info', '--json', ...ca, url])]);
    t.ok(ls.code === 0 && ls.stdout === local.ls, `ls URL equals ls LOCAL ${ls.stderr}`);
    t.ok(lsj.code === 0 && lsj.stdout === local.lsJson, `ls --json URL equals ls --json LOCAL (paths, sizes, SHA-256) ${lsj.stderr}`);
    t.ok(info.code === 0 && info.stdout === local.infoJson, `info --json URL equals info --json LOCAL ${info.stderr}`);
    t.equal(info.stderr, '', 'info URL: nothing on stderr');

    // The four ways of reading the URL run at once; each compares with the oracle once it has every view.

    // extract: every file view, hashed as it streams (never written to disk). The raw and flat vmdk views are the
    // virtual disk: 256 MiB here (the tests' --disk-size, TEST_DISK_SIZE; the default 20 GiB would take minutes
    // per read), read whole like every other view
    const extracting = (async () => {
      const got = await Promise.all(fileViews.map((v) => heavy(() => extractSha(url, v.path, ca)).then((r) => ({ v, r }))));
      await oracleAll;
      for (const { v, r } of got) {
        t.ok(r.code === 0 && r.size === v.size && r.sha256 === localSha.get(v.path),
          `extract URL ${v.path}: ${r.size} bytes, SHA-256 equals extract LOCAL ${r.stderr.trim()}`);
      }
    })();

    // mount (over HTTPS with a --cache-dir): every file view, then rootfs/ files against the fixture tree
    const cacheDir = subdir(`cache-${scheme}`);
    const mounting = (async () => {
      const how = scheme === 'http' ? 'mount' : 'mount --cache-dir';
      const m = await mountUrl(t, url, scheme === 'http' ? ca : [...ca, '--cache-dir', cacheDir]);
      const [got, files] = await Promise.all([
        Promise.all(fileViews.map((v) => heavy(() => readFile(path.join(m.mnt, v.path))).then((r) => ({ v, r })))),
        Promise.all(ROOTFS_FILES.map((rel) => readFile(path.join(m.mnt, 'rootfs', rel), false, true).then((r) => ({ rel, r })))),
      ]);
      for (const { rel, r } of files) t.ok(r.code === 0 && r.out!.equals(fs.readFileSync(path.join(fx.tree, rel))), `${how}: rootfs/${rel} equals the fixture tree`);
      await daemonAnswers(t, m, how);
      unmounting.push(unmountAsync(m.mnt));
      if (scheme === 'https') {
        const chunks = [...chunksOnDisk(cacheDir)];
        t.ok(chunks.length > 10, `the --cache-dir mount left ${chunks.length} chunks in the cache directory`);
      }
      await oracleAll;
      for (const { v, r } of got) {
        t.ok(r.code === 0 && r.size === v.size && r.sha256 === localSha.get(v.path), `${how}: cat ${v.path}: SHA-256 equals extract LOCAL ${r.stderr.trim()}`);
      }
    })();

    const verifying = (async () => {
      const v = await heavy(() => U(['verify', ...ca, url]));
      t.equal(v.code, 0, `verify URL passes ${v.stderr}`);
      t.match(v.stderr, /verified/, 'verify says verified');
    })();

    // serve URL: curl every file view
    const serving = (async () => {
      const port = await freePort();
      const serve = spawn(NODE, [UNISO, 'serve', ...ca, '-q', url, '--http', `127.0.0.1:${port}`], { stdio: ['ignore', 'ignore', 'pipe'], env });
      let serveErr = '';
      serve.stderr!.on('data', (d: Buffer) => { serveErr += d.toString(); });
      const exited = new Promise<void>((resolve) => serve.on('exit', () => resolve()));
      t.teardown(async () => {
        if (serve.exitCode === null && serve.signalCode === null) {
          serve.kill('SIGTERM');
          await exited;
        }
      });
      const end = Date.now() + 20000;
      while (!(await accepts(port)) && serve.exitCode === null && Date.now() < end) await sleep(100);
      t.ok(await accepts(port), `uniso serve URL listens ${serveErr}`);
      const got = await Promise.all(fileViews.map((x) => heavy(() => {
        const enc = x.path.split('/').map(encodeURIComponent).join('/');
        return hashRun('curl', ['-sf', '--max-time', '120', `http://127.0.0.1:${port}/${enc}`]);
      }).then((r) => ({ x, r }))));
      await oracleAll;
      for (const { x, r } of got) {
        t.ok(r.code === 0 && r.size === x.size && r.sha256 === localSha.get(x.path), `serve URL: curl ${x.path}: SHA-256 equals extract LOCAL ${r.stderr.trim()}`);
      }
    })();

    await settle([extracting, mounting, verifying, serving]);
  });
}


// ---- faults (the fault server) -------------------------------------------------------------

// A fresh mount has fetched the ISO's directories, the manifest, the catalog and (readahead) the live squashfs: the
// base tree's views (proxmox, docker, ...) read without another request. The vm tree's views (the OVA, the disk
// images) need the side pool's blocks beyond that, so UNCACHED (the OVA) is the view whose reads reach the server.
const UNCACHED = OVA;

/** Bodies the fault server cut short since log entry `n`. */
const cutShort = (s: FaultServer, n: number) => s.log.slice(n).filter((x) => {
  const r = rangeOf(x.range);
  return x.status === 206 && r && x.bytes < r[1] - r[0] + 1;
});

/** Reads UNCACHED through the mount while the server cuts its answers short (until one was, and a second more); `n`: the log's length before. */
async function readWhileTruncating(s: FaultServer, mnt: string): Promise<{ n: number; r: Awaited<ReturnType<typeof readFile>> }> {
  const n = s.log.length;
  s.fault = 'truncate';
  const reading = readFile(path.join(mnt, UNCACHED), true, true);
  await waitUntil(() => cutShort(s, n).length > 0, 5000);
  await sleep(1000);
  s.fault = 'none';
  return { n, r: await reading };
}

t.test('the server down past the deadline: uncached reads fail with EIO in bounded time, cached ones read right', async (t) => {
  const s = await faultServer(t);
  const m = await mountUrl(t, s.fileUrl);
  const motd = fs.readFileSync(path.join(fx.tree, 'etc/motd'));
  const c0 = await readFile(path.join(m.mnt, OVF), true);
  t.ok(c0.code === 0 && c0.sha256 === localSha.get(OVF), `${OVF} read before (right)`);
  const f0 = await readFile(path.join(m.mnt, 'rootfs/etc/motd'), true, true);
  t.ok(f0.code === 0 && f0.out!.equals(motd), 'rootfs/etc/motd read before (right)');
  await s.stop();
  const downAt = Date.now();
  const r = await readFile(path.join(m.mnt, UNCACHED), true, true);
  t.equal(rightOrEio(t, r, UNCACHED, 'uncached read, server down'), 'eio', 'the uncached read fails');
  t.ok(r.ms < 14000, `and gives up within ${r.ms} ms (< 14 s)`);
  const c1 = await readFile(path.join(m.mnt, OVF), true);
  t.ok(c1.code === 0 && c1.sha256 === localSha.get(OVF), `${OVF} (read before) still reads right ${c1.stderr}`);
  const f1 = await readFile(path.join(m.mnt, 'rootfs/etc/motd'), true, true);
  t.ok(f1.code === 0 && f1.out!.equals(motd), `rootfs/etc/motd (read before) still reads right ${f1.stderr}`);
  const p = await readFile(path.join(m.mnt, PROXMOX), true);
  t.ok(p.code === 0 && p.sha256 === localSha.get(PROXMOX), `${PROXMOX} (its blocks fetched with the catalog) reads right ${p.stderr}`);
  await daemonAnswers(t, m, 'server down');
  await sleep(Math.max(0, 15000 - (Date.now() - downAt)));
  await s.start();
  const ok = await readFile(path.join(m.mnt, UNCACHED), true);
  t.ok(ok.code === 0 && ok.sha256 === localSha.get(UNCACHED), `server back: the read works ${ok.stderr}`);
});

t.test('a stalled answer: EIO in bounded time, the daemon alive', async (t) => {
  const s = await faultServer(t);
  const m = await mountUrl(t, s.fileUrl);
  s.fault = 'stall';
  const r = await readFile(path.join(m.mnt, UNCACHED), true, true);
  t.equal(rightOrEio(t, r, UNCACHED, 'read, server stalls'), 'eio', 'the read fails');
  t.ok(r.ms < 14000, `within ${r.ms} ms (< 14 s)`);
  await daemonAnswers(t, m, 'stall');
  s.fault = 'none';
  const ok = await readFile(path.join(m.mnt, UNCACHED), true);
  t.ok(ok.code === 0 && ok.sha256 === localSha.get(UNCACHED), `stall over: the read works ${ok.stderr}`);
});

t.test('truncated bodies: right bytes or EIO, never wrong bytes', async (t) => {
  t.jobs = 2; // each its own fault server
  t.test('a read while answers are cut short', async (t) => {
    const s = await faultServer(t);
    const m = await mountUrl(t, s.fileUrl);
    const { n, r } = await readWhileTruncating(s, m.mnt);
    t.ok(cutShort(s, n).length > 0, `${cutShort(s, n).length} answers were cut short`);
    rightOrEio(t, r, UNCACHED, 'read while bodies were truncated');
    for (const v of [UNCACHED, `raw/${FIXTURE_NAME}.img`, PROXMOX]) {
      const c = await readFile(path.join(m.mnt, v), true);
      t.ok(c.code === 0 && c.sha256 === localSha.get(v), `then ${v} reads right ${c.stderr}`);
    }
    await daemonAnswers(t, m, 'truncate');
  });

  // Answers cut inside the first chunk of a request: single-chunk requests, which a disk cache with holes
  // (chunks evicted, or removed by another daemon sharing the directory) makes for the chunks between.
  t.test('answers cut inside the first chunk of a request (a disk cache with holes)', async (t) => {
    const s = await faultServer(t);
    const cacheDir = subdir('cache-holes');
    const x = await extractSha(s.fileUrl, UNCACHED, ['--cache-dir', cacheDir]);
    t.ok(x.code === 0 && x.sha256 === localSha.get(UNCACHED), `extract with --cache-dir fills the cache ${x.stderr}`);
    const sub = fs.readdirSync(cacheDir).map((d) => path.join(cacheDir, d)).filter((d) => fs.statSync(d).isDirectory());
    // every other chunk after the catalog's readahead (the side pool, read by the vm views only)
    const from = Math.ceil((POOL.offset + POOL.size / 2) / CHUNK);
    const cached = chunksOnDisk(cacheDir);
    // chunks with cached neighbours (so each hole is fetched alone), every other one
    const holes: number[] = [];
    for (const i of [...cached].filter((c) => c >= from).sort((x, y) => x - y)) {
      if (holes.length < 16 && cached.has(i - 1) && cached.has(i + 1) && !holes.includes(i - 1)) holes.push(i);
    }
    dropChunks(sub[0], holes);
    t.ok(holes.length >= 3, `removed chunks ${holes.join(', ')} from the cache`);
    t.notOk(holes.some((i) => chunksOnDisk(cacheDir).has(i)), 'the cache no longer lists them');
    const m = await mountUrl(t, s.fileUrl, ['--cache-dir', cacheDir]);
    const { n, r } = await readWhileTruncating(s, m.mnt);
    const cut = cutShort(s, n);
    t.ok(cut.some((e) => { const [a, z] = rangeOf(e.range)!; return z - a + 1 === CHUNK; }),
      `single-chunk answers were cut short (${cut.map((e) => `${e.range}: ${e.bytes}`).join(', ')})`);
    rightOrEio(t, r, UNCACHED, 'read while single-chunk bodies were truncated');
    const again = await readFile(path.join(m.mnt, UNCACHED), true);
    t.ok(again.code === 0 && again.sha256 === localSha.get(UNCACHED), `read again: right bytes ${again.stderr}`);
    await daemonAnswers(t, m, 'truncate, cache with holes');
    await unmountAsync(m.mnt);
    // and what went to the disk cache is right: a fresh process reads it all from there
    const fresh = await extractSha(s.fileUrl, UNCACHED, ['--cache-dir', cacheDir]);
    t.ok(fresh.code === 0 && fresh.sha256 === localSha.get(UNCACHED), `a fresh process reading the cache: right bytes ${fresh.stderr}`);
  });
});

t.test('a wrong Content-Range: EIO through the mount, never wrong bytes; right once the server is', async (t) => {
  const s = await faultServer(t);
  const m = await mountUrl(t, s.fileUrl);
  s.fault = 'wrong-content-range';
  const n = s.log.length;
  const r = await readFile(path.join(m.mnt, UNCACHED), true, true);
  t.ok(s.log.slice(n).some((x) => x.status === 206), 'the read asked the server (and got shifted ranges)');
  t.equal(rightOrEio(t, r, UNCACHED, 'read with wrong Content-Range'), 'eio', 'the read fails');
  t.ok(r.ms < 14000, `within ${r.ms} ms (< 14 s)`);
  await daemonAnswers(t, m, 'after wrong Content-Range');
  s.fault = 'none';
  const ok = await readFile(path.join(m.mnt, UNCACHED), true);
  t.ok(ok.code === 0 && ok.sha256 === localSha.get(UNCACHED), `fault off: the same read gives the right bytes ${ok.stderr}`);
});

t.test('the server killed mid-copy and restarted: EIO or right bytes, then the mount reads again', async (t) => {
  const s = await faultServer(t);
  const m = await mountUrl(t, s.fileUrl);
  // hold the copy's requests in flight, then take the server down under them
  s.fault = 'stall';
  const n = s.log.length;
  const copy = readFile(path.join(m.mnt, UNCACHED), false, true);
  t.ok(await waitUntil(() => s.log.length > n, 5000), 'the copy is waiting on the server');
  await s.stop();
  s.fault = 'none';
  await sleep(2000);
  const restartedAt = s.log.length;
  await s.start();
  const r = await copy;
  rightOrEio(t, r, UNCACHED, 'copy across the restart');
  const again = await readFile(path.join(m.mnt, UNCACHED), true);
  t.ok(again.code === 0 && again.sha256 === localSha.get(UNCACHED), `after the restart a new copy is right ${again.stderr}`);
  t.ok(s.log.slice(restartedAt).some((x) => x.status === 206), 'the daemon read from the restarted server');
  const p = await readFile(path.join(m.mnt, `vm/${FIXTURE_NAME}-disk1.vmdk`), true);
  t.ok(p.code === 0 && p.sha256 === localSha.get(`vm/${FIXTURE_NAME}-disk1.vmdk`), `and another view is right ${p.stderr}`);
  await daemonAnswers(t, m, 'after the restart');
});

t.test('the file replaced on the server: uncached reads EIO, one log line, cached bytes still the old ones', async (t) => {
  // `changed`: the same image with 4 KiB of its side pool changed (made in t.before): same size, another ETag
  t.equal(fs.statSync(changed).size, fs.statSync(uni).size, 'the changed image has the same size');

  const s = await faultServer(t);
  const m = await mountUrl(t, s.fileUrl);
  const c0 = await readFile(path.join(m.mnt, OVF), true);
  t.ok(c0.code === 0 && c0.sha256 === localSha.get(OVF), `${OVF} read before the change`);
  const motd = await readFile(path.join(m.mnt, 'rootfs/etc/motd'), true, true);
  t.ok(motd.code === 0 && motd.out!.equals(fs.readFileSync(path.join(fx.tree, 'etc/motd'))), 'rootfs/etc/motd read before the change');
  const etag = s.current().etag;
  s.replace(changed);
  t.not(s.current().etag, etag, 'the server now serves the changed file (another ETag)');
  for (const view of [UNCACHED, `raw/${FIXTURE_NAME}.img`, UNCACHED]) {
    const r = await readFile(path.join(m.mnt, view), true, true);
    t.equal(rightOrEio(t, r, view, `${view} after the change`), 'eio', `${view}: not cached: EIO`);
  }
  const c1 = await readFile(path.join(m.mnt, OVF), true);
  t.ok(c1.code === 0 && c1.sha256 === localSha.get(OVF), `${OVF} (read before) reads the old, right bytes`);
  const p1 = await readFile(path.join(m.mnt, PROXMOX), true);
  t.ok(p1.code === 0 && p1.sha256 === localSha.get(PROXMOX), `${PROXMOX} (its blocks fetched with the catalog) reads the old, right bytes`);
  const motd1 = await readFile(path.join(m.mnt, 'rootfs/etc/motd'), true, true);
  t.ok(motd1.code === 0 && motd1.out!.equals(motd.out!), 'rootfs/etc/motd (cached) reads the old, right bytes');
  await daemonAnswers(t, m, 'file replaced');
  // the notice (failed reads are logged too, each naming the read)
  const log = daemonLog(m);
  const notices = log.filter((l) => l.includes(`]: ${s.fileUrl} changed on the server`));
  t.equal(notices.length, 1, `the daemon log says once that it changed on the server (${notices.join(' | ')})`);
  t.match(notices[0] ?? '', /ETag/, 'and why (the ETag)');
});

t.test('503 for the next 3 requests: reads are retried and right', async (t) => {
  const s = await faultServer(t);
  const m = await mountUrl(t, s.fileUrl);
  s.fault = 'status:503:3';
  const r = await readFile(path.join(m.mnt, UNCACHED), true);
  t.ok(r.code === 0 && r.sha256 === localSha.get(UNCACHED), `read during 3 x 503: right bytes ${r.stderr}`);
  t.equal(s.fault, 'none', 'all three 503s were used');
  t.equal(s.log.filter((x) => x.status === 503).length, 3, 'three answers were 503');
  await daemonAnswers(t, m, '503');
  // and at open
  s.fault = 'status:503:2';
  const ls = await U(['ls', s.fileUrl]);
  t.equal(ls.code, 0, `ls while the first two answers are 503 ${ls.stderr}`);
  t.equal(ls.stdout, local.ls, 'and lists the views');
});

t.test('a redirect to a mirror is followed; a redirect loop is one line', async (t) => {
  const s = await faultServer(t);
  s.fault = 'redirect';
  const r = await U(['ls', '-l', s.fileUrl]);
  t.equal(r.code, 0, `ls through the redirect ${r.stderr}`);
  t.equal(r.stdout, local.lsLong, 'ls -l through the redirect equals ls -l LOCAL');
  const e = await extractSha(s.fileUrl, PROXMOX);
  t.ok(e.code === 0 && e.sha256 === localSha.get(PROXMOX), `extract through the redirect: right bytes ${e.stderr}`);
  const m = await mountUrl(t, s.fileUrl);
  const c = await readFile(path.join(m.mnt, OVA), true);
  t.ok(c.code === 0 && c.sha256 === localSha.get(OVA), `mount through the redirect: ${OVA} right ${c.stderr}`);
  t.ok(s.log.some((x) => x.url === '/mirror/u.iso' && x.status === 206), 'the mirror answered ranges');
  await daemonAnswers(t, m, 'redirect');

  s.fault = 'redirect-loop';
  oneLineError(t, await U(['ls', s.fileUrl]), 'ls, redirect loop', s.fileUrl, /too many redirects/);
  const mnt = mountPoint();
  t.teardown(() => { unmounting.push(unmountAsync(mnt)); });
  oneLineError(t, await U(['mount', s.fileUrl, mnt]), 'mount, redirect loop', /too many redirects/);
  await noMount(t, mnt, 'mount, redirect loop');
});

t.test('404 at open: one line naming the URL and 404', async (t) => {
  const s = await faultServer(t);
  s.fault = 'status:404';
  oneLineError(t, await U(['ls', s.fileUrl]), 'ls', s.fileUrl, /404/);
  const mnt = mountPoint();
  t.teardown(() => { unmounting.push(unmountAsync(mnt)); });
  oneLineError(t, await U(['mount', s.fileUrl, mnt]), 'mount', s.fileUrl, /404/);
  await noMount(t, mnt, 'mount of a 404');
  oneLineError(t, await U(['ls', `${s.url}nothing-here.iso`]), 'ls of a missing file (fault none)', /404/);
});

t.test('a server ignoring Range: one line saying so, at ls and at mount', async (t) => {
  const s = await faultServer(t);
  s.fault = 'ignore-range';
  oneLineError(t, await U(['ls', s.fileUrl]), 'ls', s.fileUrl, /Range/);
  const mnt = mountPoint();
  t.teardown(() => { unmounting.push(unmountAsync(mnt)); });
  oneLineError(t, await U(['mount', s.fileUrl, mnt]), 'mount', s.fileUrl, /Range/);
  await noMount(t, mnt, 'mount, Range ignored');
});

t.test('HTTPS without --ca: one line naming --ca, for ls and for mount (no mount, no daemon)', async (t) => {
  const url = `${httpsSrv.url}u.iso`;
  oneLineError(t, await U(['ls', url]), 'ls https:// without --ca', url, /--ca/);
  const mnt = mountPoint();
  t.teardown(() => { unmounting.push(unmountAsync(mnt)); });
  oneLineError(t, await U(['mount', url, mnt]), 'mount https:// without --ca', url, /--ca/);
  await noMount(t, mnt, 'mount https:// without --ca');
});

// ---- bytes fetched ------------------------------------------------------------------

t.test('a copy fetches about what it needs; a remount on the same --cache-dir fetches only the probe', async (t) => {
  const name = 'fetch.iso';
  const url = `${httpSrv.url}${name}`;
  const viewSize = sizeOf.get(PROXMOX)!;
  const before = (await settledEntries(httpSrv, name)).length;
  const r = await extractSha(url, PROXMOX);
  t.ok(r.code === 0 && r.sha256 === localSha.get(PROXMOX), `extract URL ${PROXMOX}: right bytes ${r.stderr}`);
  const mine = (await settledEntries(httpSrv, name)).slice(before);
  const bytes = mine.reduce((s, e) => s + e.bytes, 0);
  // The fixture is tiny (a 3.4 MB image, a 2.4 MB view), so fixed costs dominate: the 64 KiB probe, the ISO's
  // directories, the manifest and the catalog, and readahead past the last block needed. Bound: 1.5 x the view
  // + the catalog + 256 KiB. On this fixture that is more than the whole image, so what catches a copy that
  // fetches too much here is the next check: no byte is fetched twice (no two ranges overlap).
  const catBytes = CATALOG.size;
  const bound = 1.5 * viewSize + catBytes + 256 * KiB;
  t.ok(bytes <= bound, `${mine.length} requests, ${bytes} body bytes <= ${bound} (1.5 x ${viewSize} + catalog ${catBytes} + 256 KiB)`);
  t.ok(mine.every((e) => e.status === 206 && rangeOf(e.range)), 'every request was a single-range 206');
  const ranges = mine.map((e) => rangeOf(e.range)!).sort((a, b) => a[0] - b[0]);
  const overlaps = ranges.filter((x, i) => i > 0 && x[0] <= ranges[i - 1][1]);
  t.same(overlaps, [], 'no byte was fetched twice');
  t.ok(mine.slice(1).every((e) => e.ifRange), 'every request after the first carries If-Range');

  // through a mount with a disk cache, then again after remounting on the same cache directory
  const cacheDir = subdir('cache-remount');
  const m1 = await mountUrl(t, url, ['--cache-dir', cacheDir]);
  const c1 = await readFile(path.join(m1.mnt, PROXMOX));
  t.ok(c1.code === 0 && c1.sha256 === localSha.get(PROXMOX), `first copy through the mount: right bytes ${c1.stderr}`);
  await cacheSettled(cacheDir);
  await unmountAsync(m1.mnt);
  const cached = chunksOnDisk(cacheDir);
  const n1 = (await settledEntries(httpSrv, name)).length;
  const m2 = await mountUrl(t, url, ['--cache-dir', cacheDir], m1.mnt);
  const c2 = await readFile(path.join(m2.mnt, PROXMOX));
  t.ok(c2.code === 0 && c2.sha256 === localSha.get(PROXMOX), `second copy after remounting: right bytes ${c2.stderr}`);
  const again = (await settledEntries(httpSrv, name)).slice(n1);
  t.same(again.slice(0, 1).map((e) => [e.status, e.range, e.bytes]), [[206, `bytes=0-${CHUNK - 1}`, CHUNK]],
    'remount: the first request is the 64 KiB probe');
  // readahead of the first mount still in flight at its unmount was never cached: the second may fetch
  // that (a few requests); what the cache holds it must not fetch again
  const refetched = chunksFetched(again.map((e) => rangeOf(e.range)!)).filter((i) => cached.has(i));
  t.ok(again.length <= 4, `remount + second copy: ${again.length} requests (${again.map((e) => e.range).join(', ')})`);
  t.same(refetched, [], `no chunk of the ${cached.size} in the cache directory was fetched again`);
});

t.test('--trust via a URL: an unsigned image and another key are refused before mounting', async (t) => {
  const signedUrl = `${httpSrv.url}signed.iso`;
  const unsignedUrl = `${httpSrv.url}u.iso`;
  const A = path.join(keys, 'a.pub');
  const B = path.join(keys, 'b.pub');
  const ok = await U(['ls', '--trust', A, signedUrl]);
  t.equal(ok.code, 0, `ls --trust (signer's key) URL ${ok.stderr}`);
  t.equal(ok.stdout, local.signedLs, 'lists the views');
  oneLineError(t, await U(['ls', '--trust', B, signedUrl]), 'ls --trust other key', `${signedUrl}: signature does not match ${B}`);
  oneLineError(t, await U(['ls', '--trust', A, unsignedUrl]), 'ls --trust unsigned', `${unsignedUrl}: not signed`);
  for (const [what, url, key, msg] of [['other key', signedUrl, B, 'signature does not match'], ['unsigned', unsignedUrl, A, 'not signed']]) {
    const mnt = mountPoint();
    t.teardown(() => { unmounting.push(unmountAsync(mnt)); });
    oneLineError(t, await U(['mount', '--trust', key, url, mnt]), `mount --trust ${what}`, url, msg);
    await noMount(t, mnt, `mount --trust ${what}`);
  }
  const m = await mountUrl(t, signedUrl, ['--trust', A]);
  const r = await readFile(path.join(m.mnt, DOCKER));
  t.ok(r.code === 0 && r.sha256 === local.signedDockerSha, `mount --trust with the signer's key mounts, ${DOCKER} reads right`);
});

// ---- the disk cache --------------------------------------------------------------------------

t.test('a torn or damaged chunk in the disk cache is not used: the chunk is fetched again', async (t) => {
  const name = 'torn.iso';
  const url = `${httpSrv.url}${name}`;
  const cacheDir = subdir('cache-torn');
  const first = await extractSha(url, PROXMOX, ['--cache-dir', cacheDir]);
  t.ok(first.code === 0 && first.sha256 === localSha.get(PROXMOX), 'first extract with --cache-dir: right bytes');
  const sub = fs.readdirSync(cacheDir).filter((d) => fs.statSync(path.join(cacheDir, d)).isDirectory());
  t.equal(sub.length, 1, 'one subdirectory for the one remote file');
  const dir = path.join(cacheDir, sub[0]);
  // two chunks of the catalog, which every open reads whole
  const cat = CATALOG;
  const torn = Math.floor(cat.offset / CHUNK) + 1;
  const flipped = Math.floor((cat.offset + cat.size - 1) / CHUNK);
  t.ok(flipped > torn && (torn + 1) * CHUNK <= cat.offset + cat.size, `chunks ${torn} and ${flipped} hold catalog bytes`);
  /** Chunk `i`'s bytes in the cache's segment file. */
  const bytesOf = (i: number) => {
    const seg = segmentOf(dir, i);
    const fd = fs.openSync(seg.data, 'r+');
    try {
      const b = Buffer.alloc(CHUNK);
      fs.readSync(fd, b, 0, CHUNK, seg.at);
      return b;
    } finally {
      fs.closeSync(fd);
    }
  };
  const patch = (i: number, off: number, data: Buffer) => {
    const seg = segmentOf(dir, i);
    const fd = fs.openSync(seg.data, 'r+');
    try { fs.writeSync(fd, data, 0, data.length, seg.at + off); } finally { fs.closeSync(fd); }
  };
  const orig = [bytesOf(torn), bytesOf(flipped)];
  const listed = chunksOnDisk(cacheDir);
  t.ok(listed.has(torn) && listed.has(flipped), `both chunks are in the cache (it has ${[...listed].sort((x, y) => x - y).join(',')})`);
  // torn: its record was written, its bytes only in part (a crash before they reached the disk)
  patch(torn, 1000, Buffer.alloc(CHUNK - 1000));
  patch(flipped, 12345, Buffer.from([orig[1][12345] ^ 0x10]));
  const intact = chunksOnDisk(cacheDir);
  intact.delete(torn);
  intact.delete(flipped);

  const n = (await settledEntries(httpSrv, name)).length;
  const r = await extractSha(url, PROXMOX, ['--cache-dir', cacheDir]);
  t.ok(r.code === 0 && r.sha256 === localSha.get(PROXMOX), `a fresh process reads the right bytes ${r.stderr}`);
  const ls = await U(['ls', '--json', '--cache-dir', cacheDir, url]);
  t.equal(ls.stdout, local.lsJson, 'ls --json (the catalog) right too');
  const fetched = (await settledEntries(httpSrv, name)).slice(n).map((e) => rangeOf(e.range)!);
  for (const [i, how] of [[torn, 'torn'], [flipped, 'flipped']] as const) {
    t.ok(fetched.some(([a, z]) => a <= i * CHUNK && z >= (i + 1) * CHUNK - 1), `the ${how} chunk ${i} was fetched again`);
  }
  t.ok(await waitUntil(() => bytesOf(torn).equals(orig[0]), 5000), 'the torn chunk is whole again in the cache');
  t.ok(await waitUntil(() => bytesOf(flipped).equals(orig[1]), 5000), 'the flipped chunk is right again in the cache');
  t.same(chunksFetched(fetched).filter((i) => intact.has(i)), [],
    `no intact chunk of the ${intact.size} in the cache was fetched again (fetched ${fetched.map(([a, z]) => `${a}-${z}`).join(', ')})`);
});

t.test('two mounts of the same URL on one --cache-dir at once both read right bytes', async (t) => {
  const name = 'shared.iso';
  const url = `${httpSrv.url}${name}`;
  const cacheDir = subdir('cache-shared');
  const [m1, m2] = await Promise.all([mountUrl(t, url, ['--cache-dir', cacheDir]), mountUrl(t, url, ['--cache-dir', cacheDir])]);
  const views = [PROXMOX, OVA, DOCKER, `raw/${FIXTURE_NAME}.img`];
  const reads = await Promise.all(views.flatMap((v) => [m1, m2].map(async (m) => ({ v, m, r: await readFile(path.join(m.mnt, v)) }))));
  for (const { v, m, r } of reads) t.ok(r.code === 0 && r.sha256 === localSha.get(v), `${m === m1 ? 'first' : 'second'} mount: ${v} right ${r.stderr}`);
  await daemonAnswers(t, m1, 'first mount');
  await daemonAnswers(t, m2, 'second mount');
  await cacheSettled(cacheDir);
  unmounting.push(unmountAsync(m1.mnt), unmountAsync(m2.mnt));
  // what the two wrote is sound: a third process reads from it
  const cached = chunksOnDisk(cacheDir);
  t.ok(cached.size > 40, `the two daemons wrote ${cached.size} chunks`);
  const n = (await settledEntries(httpSrv, name)).length;
  for (const v of [PROXMOX, OVA]) {
    const r = await extractSha(url, v, ['--cache-dir', cacheDir]);
    t.ok(r.code === 0 && r.sha256 === localSha.get(v), `then extract ${v} from the shared cache: right ${r.stderr}`);
  }
  const later = (await settledEntries(httpSrv, name)).slice(n).map((e) => rangeOf(e.range)!);
  t.same(chunksFetched(later).filter((i) => cached.has(i)), [], `no chunk the daemons wrote was fetched again (fetched ${later.map(([a, z]) => `${a}-${z}`).join(', ')})`);
});

t.test('--cache-size 16M with --cache-dir: the directory stays under 16 MiB + the writes in flight', async (t) => {
  const url = `${httpSrv.url}big.iso`;
  const size = Number(local.bigLsLong.split('\n').find((l) => l.endsWith(BIG_VIEW))!.trim().split(/\s+/)[0]);
  t.ok(size > 20 * MiB, `${BIG_VIEW} is ${size} bytes (more than the cap)`);
  const want = local.bigSha;
  const cacheDir = subdir('cache-capped');
  // the cap, plus what may be written before an eviction runs: a batch of 16 chunks and their records
  // for each of the 6 requests in flight, and source.json
  const cap = 16 * MiB + 6 * 16 * (CHUNK + RECORD) + 4 * KiB;
  for (const round of [1, 2]) {
    const r = await extractSha(url, BIG_VIEW, ['--cache-dir', cacheDir, '--cache-size', '16M']);
    t.ok(r.code === 0 && r.size === size && r.sha256 === want, `round ${round}: extract URL ${BIG_VIEW}: right bytes ${r.stderr}`);
    const files = filesUnder(cacheDir);
    const total = files.reduce((s, f) => s + f.allocated, 0);
    t.ok(total <= cap, `round ${round}: the cache directory holds ${total} bytes <= ${cap}`);
    t.ok(total > 8 * MiB, `round ${round}: and is used (${chunksOnDisk(cacheDir).size} chunks)`);
    t.same(files.filter((f) => f.file.endsWith('.tmp')).map((f) => f.file), [], `round ${round}: no temp files left`);
  }
  const m = await mountUrl(t, url, ['--cache-dir', cacheDir, '--cache-size', '16M']);
  const r = await readFile(path.join(m.mnt, BIG_VIEW));
  t.ok(r.code === 0 && r.sha256 === want, `through a mount: right bytes ${r.stderr}`);
  // the daemon writes chunks in the background: measure once it is done
  t.ok(await waitUntil(() => !filesUnder(cacheDir).some((f) => f.file.endsWith('.tmp')), 10000), 'the daemon\'s chunk writes are done');
  await cacheSettled(cacheDir);
  const total = filesUnder(cacheDir).reduce((s, f) => s + f.allocated, 0);
  t.ok(total <= cap, `after the mount read it: ${total} bytes <= ${cap}`);
});

// ---- the oracle itself ---------------------------------------------------------------------

t.test('the oracle: uniso extract of the local image gives the SHA-256 uniso ls --json names', async (t) => {
  await oracleAll;
  t.ok(fileViews.length >= 30, `${fileViews.length} file views`);
  for (const v of fileViews) t.equal(localSha.get(v.path), v.sha256, `${v.path}: extract and ls --json agree`);
  t.ok(sizeOf.get(`raw/${FIXTURE_NAME}.img`)! >= 256 * MiB, 'the raw disk is the large sparse view');
});
