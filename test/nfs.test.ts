// `uniso mount IMAGE MNT --nfs ADDR:PORT`: the FUSE mount (allow_other
// forced) exported read-only by NFS-Ganesha as /uniso over NFSv3 and NFSv4,
// root not squashed, rpcbind started when none runs. Checked with libnfs's
// nfs-cp / nfs-cat / nfs-ls (this kernel has no NFS client): every file view
// over v3 and v4 equals `uniso extract`; owners and modes show through;
// the export is read-only; `uniso status [--json]`; the export keeps working
// after the kernel drops its FUSE inode cache and after a reader is killed
// mid-read; ganesha killed (-9): the FUSE mount keeps serving and status
// says "stopped"; `uniso umount` and SIGTERM stop ganesha and the rpcbind
// uniso started, then unmount (also during an active FUSE copy); an rpcbind
// uniso did not start is left alone; two exports at once; a port in use and a
// missing ganesha give one clear line and mount nothing.

import t, { Test } from 'tap';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { spawn } from 'node:child_process';
import {
  buildUniversal, extractViews, fixture, isMounted, listViews, mountOn, mountState, must, mustUniso, processAlive, run, tempDir,
  UNISO, uniso, unmountAtTeardown, waitUntil, FIXTURE_NAME,
} from './lib/fixture';

const fx = fixture();
const dir = tempDir(t, 'uniso-nfs-');
const uni = buildUniversal(dir);
const fileViews = listViews(uni).filter((v) => !v.path.endsWith('/'));
const sizeOf = new Map(fileViews.map((v) => [v.path, v.size]));
const extracted = extractViews(uni, dir, fileViews);
const bytesOf = (view: string) => fs.readFileSync(extracted.get(view)!);
const RAW = `raw/${FIXTURE_NAME}.img`;
const HUGE = 'rootfs/srv/data/huge-9g.img';

const pgrep = (args: string[]) => run('pgrep', args).stdout.split('\n').filter(Boolean).map(Number);
/** An rpcbind that was running before this file started (not ours: left alone, and uniso must not start another). */
const rpcbindBefore = pgrep(['-x', 'rpcbind']);

function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.once('error', () => resolve(false));
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });
}

let nextPort = 12049;
/** The next free port from 12049 up (ganesha needs its port free). */
async function nfsPort(): Promise<number> {
  for (;;) {
    const p = nextPort++;
    if (p === 12100) throw new Error('no free port in 12049..12099');
    if (await portFree(p)) return p;
  }
}

const url = (p: string, v: 3 | 4, port: number) => `nfs://127.0.0.1/uniso/${p}?version=${v}&nfsport=${port}`;

interface StatusRow {
  pid: number;
  mountpoint: string;
  alive: boolean;
  mounted: boolean;
  nfs?: { listen: string; status: string; ganeshaPid?: number; log: string };
}

function statusOf(mnt: string): StatusRow | undefined {
  const rows = JSON.parse(mustUniso(['status', '--json']).stdout) as StatusRow[];
  return rows.find((r) => r.mountpoint === fs.realpathSync(mnt));
}

interface NfsMount {
  mnt: string;
  port: number;
  pid: number; // the daemon
  stateFile: string;
  ganeshaPid: number;
  rpcbindPid?: number; // the rpcbind uniso started, if any
}

/** Every ganesha/rpcbind pid uniso started here: killed at the end if still alive (whatever the tests did). */
const started = new Set<number>();
t.teardown(() => {
  for (const p of started) {
    if (processAlive(p)) {
      try { process.kill(p, 'SIGKILL'); } catch { /* gone */ }
    }
  }
});

async function nfsMount(tt: Test, port?: number): Promise<NfsMount> {
  const p = port ?? (await nfsPort());
  const mnt = path.join(tempDir(tt, 'uniso-nfsmnt-'), 'mnt');
  fs.mkdirSync(mnt);
  mountOn(tt, uni, mnt, ['--nfs', `127.0.0.1:${p}`]);
  const st = mountState(mnt);
  if (!st) throw new Error(`no state file for ${mnt}`);
  const row = statusOf(mnt);
  const ganeshaPid = row?.nfs?.ganeshaPid;
  if (!ganeshaPid) throw new Error(`uniso status --json has no ganesha pid for ${mnt}: ${JSON.stringify(row)}`);
  started.add(ganeshaPid);
  const rpcbindPid = pgrep(['-P', String(st.pid), '-x', 'rpcbind'])[0];
  if (rpcbindPid) started.add(rpcbindPid);
  return { mnt, port: p, pid: st.pid, stateFile: st.file, ganeshaPid, rpcbindPid };
}

/** nfs-cp SRC to a fresh local file; its bytes (or undefined) and the result. */
function nfsCp(src: string, dst: string): { code: number; stderr: string; bytes?: Buffer } {
  fs.rmSync(dst, { force: true });
  const r = run('nfs-cp', [src, dst], { timeout: 120000 });
  const bytes = r.code === 0 && fs.existsSync(dst) ? fs.readFileSync(dst) : undefined;
  fs.rmSync(dst, { force: true });
  return { code: r.code, stderr: (r.stderr + r.stdout).trim(), bytes };
}

interface LsEntry { mode: string; uid: number; gid: number; size: number; name: string }
function nfsLs(u: string): { code: number; stderr: string; entries: Map<string, LsEntry> } {
  const r = run('nfs-ls', [u], { timeout: 60000 });
  const entries = new Map<string, LsEntry>();
  for (const l of r.stdout.split('\n')) {
    const m = /^([-dlcbps][-rwxsStT]{9})\s+\d+\s+(\d+)\s+(\d+)\s+(\d+)\s(.+)$/.exec(l);
    if (m) entries.set(m[5], { mode: m[1], uid: Number(m[2]), gid: Number(m[3]), size: Number(m[4]), name: m[5] });
  }
  return { code: r.code, stderr: r.stderr, entries };
}

function errCode(f: () => unknown): string {
  try {
    f();
    return 'no error';
  } catch (e) {
    return (e as NodeJS.ErrnoException).code ?? String(e);
  }
}

/** After umount/SIGTERM: ganesha and uniso's rpcbind gone, the mount point unmounted and usable. */
async function expectAllStopped(tt: Test, m: NfsMount, how: string): Promise<void> {
  tt.ok(await waitUntil(() => !isMounted(m.mnt), 15000), `${how}: mountinfo no longer lists the mount point`);
  tt.ok(await waitUntil(() => !processAlive(m.pid), 15000), `${how}: the daemon exited`);
  tt.ok(await waitUntil(() => !processAlive(m.ganeshaPid), 15000), `${how}: ganesha (${m.ganeshaPid}) is gone`);
  tt.notOk(pgrep(['-x', 'ganesha.nfsd']).includes(m.ganeshaPid), `${how}: pgrep ganesha.nfsd does not list it`);
  tt.same(pgrep(['-f', `ganesha.nfsd.*${path.basename(m.stateFile, '.json')}`]), [], `${how}: no ganesha.nfsd with this mount's config runs`);
  if (m.rpcbindPid) {
    tt.ok(await waitUntil(() => !processAlive(m.rpcbindPid!), 15000), `${how}: the rpcbind uniso started (${m.rpcbindPid}) is gone`);
    tt.notOk(pgrep(['-x', 'rpcbind']).includes(m.rpcbindPid), `${how}: pgrep rpcbind does not list it`);
  }
  tt.equal(errCode(() => fs.statSync(m.mnt)), 'no error', `${how}: stat of the mount point works (not ENOTCONN)`);
  tt.same(fs.readdirSync(m.mnt), [], `${how}: the mount point is an empty directory again`);
  tt.notOk(fs.existsSync(m.stateFile), `${how}: the state file is removed`);
  tt.notOk(fs.existsSync(m.stateFile.replace(/\.json$/, '-nfs')), `${how}: the ganesha work directory is removed`);
  tt.notOk(statusOf(m.mnt), `${how}: uniso status no longer lists the mount`);
  tt.ok(await portFree(m.port), `${how}: port ${m.port} is free again`);
}

t.test('every file view over NFSv3 and NFSv4 equals uniso extract; owners show through; read-only', async (t) => {
  const m = await nfsMount(t);
  const mi = fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n').find((l) => l.split(' ')[4] === fs.realpathSync(m.mnt)) ?? '';
  t.match(mi, /allow_other/, 'the FUSE mount has allow_other (forced by --nfs)');
  const tmp = path.join(dir, 'nfs-copy');
  for (const v of fileViews) {
    for (const ver of [3, 4] as const) {
      const r = nfsCp(url(v.path, ver, m.port), tmp);
      t.equal(r.code, 0, `${v.path} v${ver}: nfs-cp exits 0 ${r.code ? r.stderr : ''}`);
      t.ok(r.bytes && r.bytes.length === v.size && r.bytes.equals(bytesOf(v.path)), `${v.path} v${ver}: ${r.bytes?.length} bytes equal uniso extract`);
    }
  }
  // rootfs/ files, including root's 0600 file in a 0700 directory (root is not squashed)
  for (const rel of ['etc/motd', 'usr/lib/random-1m.bin', 'usr/lib/64k-plus-1.bin', 'root/secret', 'srv/data/big-ids']) {
    const want = fs.readFileSync(path.join(fx.tree, rel));
    for (const ver of [3, 4] as const) {
      const r = nfsCp(url(`rootfs/${rel}`, ver, m.port), tmp);
      t.ok(r.code === 0 && r.bytes?.equals(want), `rootfs/${rel} v${ver}: equals the fixture ${r.code ? r.stderr : ''}`);
    }
  }
  // owners and modes
  for (const ver of [3, 4] as const) {
    const data = nfsLs(url('rootfs/srv/data', ver, m.port));
    t.equal(data.code, 0, `nfs-ls rootfs/srv/data v${ver} ${data.stderr}`);
    const big = data.entries.get('big-ids');
    t.same(big && [big.uid, big.gid], [3000000, 4000000], `v${ver}: srv/data/big-ids is owned by 3000000:4000000`);
    t.equal(data.entries.get('huge-9g.img')?.size, fs.statSync(path.join(fx.tree, 'srv/data/huge-9g.img')).size, `v${ver}: huge-9g.img size (> 4 GiB)`);
    const root = nfsLs(url('rootfs/root', ver, m.port));
    t.equal(root.code, 0, `nfs-ls rootfs/root v${ver} ${root.stderr}`);
    t.equal(root.entries.get('secret')?.mode, '-rw-------', `v${ver}: root/secret is 0600`);
    // NFSv4 sends owners as names (root@domain) that libnfs cannot map back; NFSv3 sends numbers
    if (ver === 3) t.same([root.entries.get('secret')?.uid, root.entries.get('secret')?.gid], [0, 0], 'v3: root/secret is owned by 0:0');
    const views = nfsLs(url('docker', ver, m.port));
    t.equal(views.entries.get(`${FIXTURE_NAME}-docker.tar`)?.mode, '-r--r--r--', `v${ver}: views are 0444`);
  }
  // read-only
  const local = path.join(dir, 'upload.txt');
  fs.writeFileSync(local, 'x\n');
  for (const ver of [3, 4] as const) {
    const w = run('nfs-cp', [local, url(`new-${ver}.txt`, ver, m.port)], { timeout: 60000 });
    t.not(w.code, 0, `v${ver}: writing a new file fails (read-only export)`);
  }
  t.notOk(fs.existsSync(path.join(m.mnt, 'new-3.txt')) || fs.existsSync(path.join(m.mnt, 'new-4.txt')), 'nothing was created');
  mustUniso(['umount', m.mnt]);
});

t.test('uniso status shows the NFS export running; rpcbind is started when none runs', async (t) => {
  const m = await nfsMount(t);
  const row = statusOf(m.mnt)!;
  t.equal(row.pid, m.pid, 'status --json: the daemon pid');
  t.ok(row.alive && row.mounted, 'status --json: alive and mounted');
  t.equal(row.nfs?.listen, `127.0.0.1:${m.port}`, 'status --json: nfs.listen');
  t.equal(row.nfs?.status, 'running', 'status --json: nfs.status is "running"');
  t.ok(processAlive(m.ganeshaPid), 'the ganesha pid from status runs');
  t.ok(pgrep(['-x', 'ganesha.nfsd']).includes(m.ganeshaPid), 'and it is a ganesha.nfsd');
  const text = mustUniso(['status']).stdout;
  t.match(text, `${fs.realpathSync(m.mnt)}: mounted`, 'status: the mount is listed');
  t.match(text, `  nfs 127.0.0.1:${m.port}/uniso: running`, 'status: the NFS export is running');
  if (rpcbindBefore.length === 0) {
    t.ok(m.rpcbindPid && processAlive(m.rpcbindPid), 'no rpcbind ran before: the daemon started one');
  } else {
    t.equal(m.rpcbindPid, undefined, 'an rpcbind already ran: the daemon did not start another');
  }
  const r = nfsCp(url('README.txt', 3, m.port), path.join(dir, 'status-readme'));
  t.ok(r.bytes?.equals(bytesOf('README.txt')), `NFSv3 (MOUNT through rpcbind) works ${r.code ? r.stderr : ''}`);
  mustUniso(['umount', m.mnt]);
});

t.test('the export keeps working after the kernel drops its FUSE inode cache', async (t) => {
  const m = await nfsMount(t);
  const dirs = ['rootfs', 'rootfs/etc', 'rootfs/srv', 'rootfs/srv/data', 'rootfs/usr/lib', 'vm', 'raw'];
  // the NFS server learns the file handles of these directories...
  for (const d of ['', ...dirs]) t.equal(nfsLs(url(d, 4, m.port)).code, 0, `nfs-ls /uniso/${d}`);
  // ...then memory pressure (here: drop_caches) evicts the FUSE inodes behind them
  fs.writeFileSync('/proc/sys/vm/drop_caches', '2');
  const files = ['rootfs/etc/motd', 'rootfs/srv/data/big-ids', 'rootfs/usr/lib/64k-plus-1.bin', `vm/${FIXTURE_NAME}.mf`, `raw/${FIXTURE_NAME}.img.sha256`];
  for (const f of files) {
    const want = f.startsWith('rootfs/') ? fs.readFileSync(path.join(fx.tree, f.slice(7))) : bytesOf(f);
    for (const ver of [4, 3] as const) {
      const r = nfsCp(url(f, ver, m.port), path.join(dir, 'dropped'));
      t.equal(r.code, 0, `${f} v${ver} after drop_caches: nfs-cp exits 0 ${r.code ? r.stderr : ''}`);
      t.ok(r.bytes?.equals(want), `${f} v${ver} after drop_caches: right bytes`);
    }
  }
  for (const d of dirs) {
    const l = nfsLs(url(d, 3, m.port));
    t.equal(l.code, 0, `nfs-ls /uniso/${d} v3 after drop_caches ${l.stderr.trim()}`);
  }
  t.ok(fs.readFileSync(path.join(m.mnt, 'rootfs/etc/motd')).equals(fs.readFileSync(path.join(fx.tree, 'etc/motd'))), 'the FUSE mount itself still reads');
  mustUniso(['umount', m.mnt]);
});

t.test('a reader killed mid-read leaves the export working', async (t) => {
  const m = await nfsMount(t);
  const dst = path.join(dir, 'killed-reader');
  for (const [what, ver] of [[HUGE, 3], [HUGE, 4], [RAW, 3]] as const) {
    fs.rmSync(dst, { force: true });
    const p = spawn('nfs-cp', [url(what, ver, m.port), dst], { stdio: 'ignore' });
    const exited = new Promise((r) => p.on('exit', r));
    t.teardown(() => { if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL'); });
    const grew = await waitUntil(() => p.exitCode !== null || (fs.existsSync(dst) && fs.statSync(dst).size > 8 << 20), 30000);
    const midway = p.exitCode === null;
    p.kill('SIGKILL');
    await exited;
    if (what === HUGE) t.ok(grew && midway, `${what} v${ver}: nfs-cp killed after ${fs.existsSync(dst) ? fs.statSync(dst).size : 0} bytes`);
    else t.pass(`${what} v${ver}: nfs-cp killed ${midway ? 'midway' : 'after it finished'}`);
    fs.rmSync(dst, { force: true });
    t.equal(statusOf(m.mnt)?.nfs?.status, 'running', `after killing the ${what} v${ver} reader: status still running`);
    for (const v2 of [3, 4] as const) {
      const r = nfsCp(url(RAW, v2, m.port), path.join(dir, 'after-kill'));
      t.ok(r.code === 0 && r.bytes?.equals(bytesOf(RAW)), `after killing the ${what} v${ver} reader: ${RAW} over v${v2} is right ${r.code ? r.stderr : ''}`);
    }
  }
  mustUniso(['umount', m.mnt]);
});

t.test('ganesha killed: the FUSE mount keeps serving, status says stopped, umount cleans up', async (t) => {
  const m = await nfsMount(t);
  process.kill(m.ganeshaPid, 'SIGKILL');
  t.ok(await waitUntil(() => !processAlive(m.ganeshaPid)), 'ganesha is gone');
  t.ok(await waitUntil(() => /^stopped/.test(statusOf(m.mnt)?.nfs?.status ?? ''), 10000), `status --json: ${statusOf(m.mnt)?.nfs?.status}`);
  const row = statusOf(m.mnt)!;
  t.ok(row.alive && row.mounted, 'status --json: the mount is still alive and mounted');
  t.match(mustUniso(['status']).stdout, new RegExp(`  nfs 127\\.0\\.0\\.1:${m.port}/uniso: stopped`), 'status: the export is stopped');
  t.match(mustUniso(['status']).stdout, `${fs.realpathSync(m.mnt)}: mounted`, 'status: the mount is still mounted');
  t.ok(processAlive(m.pid), 'the daemon still runs');
  for (const v of ['README.txt', RAW, `vm/${FIXTURE_NAME}.ova`]) {
    t.ok(fs.readFileSync(path.join(m.mnt, v)).equals(bytesOf(v)), `${v} still reads through the FUSE mount`);
  }
  const r = run('nfs-cat', [url('README.txt', 4, m.port)], { timeout: 30000 });
  t.not(r.code, 0, 'NFS no longer answers');
  const u = uniso(['umount', m.mnt]);
  t.equal(u.code, 0, `uniso umount exits 0 ${u.stderr}`);
  await expectAllStopped(t, m, 'umount after ganesha died');
});

t.test('uniso umount stops ganesha and the rpcbind uniso started, then unmounts', async (t) => {
  const m = await nfsMount(t);
  t.ok(processAlive(m.ganeshaPid), 'ganesha runs');
  const u = uniso(['umount', m.mnt]);
  t.equal(u.code, 0, `uniso umount exits 0 ${u.stderr}`);
  t.notOk(isMounted(m.mnt), 'not mounted when uniso umount returns');
  await expectAllStopped(t, m, 'umount');
  if (rpcbindBefore.length === 0) t.same(pgrep(['-x', 'rpcbind']), [], 'no rpcbind runs (none did before)');
});

t.test('umount -l by hand (ganesha holds the mount busy for a plain umount): the daemon notices, stops ganesha and rpcbind, exits', async (t) => {
  const m = await nfsMount(t);
  t.ok(processAlive(m.ganeshaPid), 'ganesha runs');
  must('umount', ['-l', m.mnt]);
  await expectAllStopped(t, m, 'umount -l');
});

t.test('SIGTERM to the daemon stops ganesha and rpcbind, then unmounts', async (t) => {
  const m = await nfsMount(t);
  t.ok(nfsCp(url('README.txt', 4, m.port), path.join(dir, 'sigterm-readme')).bytes?.equals(bytesOf('README.txt')), 'serving over NFS');
  process.kill(m.pid, 'SIGTERM');
  await expectAllStopped(t, m, 'SIGTERM');
  if (rpcbindBefore.length === 0) t.same(pgrep(['-x', 'rpcbind']), [], 'no rpcbind runs (none did before)');
});

t.test('SIGTERM during an active FUSE copy: the copy fails cleanly, the mount point stays usable', async (t) => {
  const m = await nfsMount(t);
  const dst = path.join(dir, 'cp-during-sigterm');
  const cp = spawn('cp', [path.join(m.mnt, HUGE), dst], { stdio: ['ignore', 'ignore', 'pipe'] });
  let cpErr = '';
  cp.stderr!.on('data', (d: Buffer) => { cpErr += d.toString(); });
  const cpExit = new Promise<number | null>((r) => cp.on('exit', (code) => r(code)));
  t.teardown(() => { if (cp.exitCode === null && cp.signalCode === null) cp.kill('SIGKILL'); });
  const rchar = () => {
    try {
      return Number(/rchar: (\d+)/.exec(fs.readFileSync(`/proc/${cp.pid}/io`, 'utf8'))![1]);
    } catch {
      return 0;
    }
  };
  t.ok(await waitUntil(() => rchar() > 64 << 20, 30000), `cp has read ${rchar()} bytes of the 9 GiB file`);
  t.equal(cp.exitCode, null, 'cp is still copying');
  process.kill(m.pid, 'SIGTERM');
  const code = await Promise.race([cpExit, new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), 30000))]);
  t.not(code, 'timeout', 'cp ended within 30 s');
  t.not(code, 0, `cp exits non-zero (${code}): ${cpErr.trim().split('\n')[0]}`);
  await expectAllStopped(t, m, 'SIGTERM during cp');
  fs.rmSync(dst, { force: true });
});

t.test('an rpcbind uniso did not start is left running', async (t) => {
  let ours: ReturnType<typeof spawn> | undefined;
  if (rpcbindBefore.length === 0) {
    ours = spawn('rpcbind', ['-f', '-w'], { stdio: 'ignore' });
    t.teardown(() => { if (ours && ours.exitCode === null && ours.signalCode === null) ours.kill('SIGTERM'); });
    t.ok(await waitUntil(() => !portFree111Sync(), 10000), 'our rpcbind listens on 111');
  }
  const m = await nfsMount(t);
  t.equal(m.rpcbindPid, undefined, 'the daemon did not start an rpcbind');
  const r = nfsCp(url('README.txt', 3, m.port), path.join(dir, 'own-rpcbind'));
  t.ok(r.bytes?.equals(bytesOf('README.txt')), `NFSv3 works with the existing rpcbind ${r.code ? r.stderr : ''}`);
  mustUniso(['umount', m.mnt]);
  await expectAllStopped(t, m, 'umount with a foreign rpcbind');
  if (ours) t.ok(processAlive(ours.pid!), 'our rpcbind still runs after uniso umount');
  for (const p of rpcbindBefore) t.ok(processAlive(p), `the rpcbind that ran before (${p}) still runs`);
});

/** Is something listening on 127.0.0.1:111? (synchronously, with ss) */
function portFree111Sync(): boolean {
  return !/:111\s/.test(run('ss', ['-ltn']).stdout);
}

t.test('two NFS exports at once: each serves v3 and v4 (or the second is refused); unmounting one keeps the other', async (t) => {
  const a = await nfsMount(t);
  const bPort = await nfsPort();
  const bMnt = path.join(tempDir(t, 'uniso-nfsmnt-'), 'mnt');
  fs.mkdirSync(bMnt);
  unmountAtTeardown(t, bMnt);
  const second = uniso(['mount', uni, bMnt, '--nfs', `127.0.0.1:${bPort}`]);
  if (second.code !== 0) {
    // refusing a second export is acceptable if it says so in one line and mounts nothing
    t.match(second.stderr, /^uniso: .+\n$/, `the second export is refused with one line: ${second.stderr.trim()}`);
    t.notOk(isMounted(bMnt), 'and nothing is mounted');
    t.equal(statusOf(a.mnt)?.nfs?.status, 'running', 'the first export still runs');
    for (const ver of [3, 4] as const) {
      const r = nfsCp(url('README.txt', ver, a.port), path.join(dir, 'two'));
      t.ok(r.code === 0 && r.bytes?.equals(bytesOf('README.txt')), `first export v${ver} still serves ${r.code ? r.stderr : ''}`);
    }
    mustUniso(['umount', a.mnt]);
  } else {
    const bRow = statusOf(bMnt);
    if (bRow?.nfs?.ganeshaPid) started.add(bRow.nfs.ganeshaPid);
    for (const [name, port, mnt] of [['first', a.port, a.mnt], ['second', bPort, bMnt]] as const) {
      t.equal(statusOf(mnt)?.nfs?.status, 'running', `${name} export: status running`);
      for (const ver of [3, 4] as const) {
        const r = nfsCp(url('README.txt', ver, port), path.join(dir, 'two'));
        t.ok(r.code === 0 && r.bytes?.equals(bytesOf('README.txt')), `${name} export (port ${port}) v${ver} serves README.txt ${r.code ? r.stderr : ''}`);
      }
    }
    // unmounting the first (which started rpcbind when none ran) must not break the second
    mustUniso(['umount', a.mnt]);
    t.equal(statusOf(bMnt)?.nfs?.status, 'running', 'second export: status still running after the first was unmounted');
    for (const ver of [3, 4] as const) {
      const r = nfsCp(url('README.txt', ver, bPort), path.join(dir, 'two'));
      t.ok(r.code === 0 && r.bytes?.equals(bytesOf('README.txt')), `second export v${ver} still serves after the first was unmounted ${r.code ? r.stderr : ''}`);
    }
    mustUniso(['umount', bMnt]);
  }
  if (rpcbindBefore.length === 0) {
    t.ok(await waitUntil(() => pgrep(['-x', 'rpcbind']).length === 0, 15000), 'no rpcbind left once both are unmounted');
  }
  t.same(pgrep(['-x', 'ganesha.nfsd']).filter((p) => started.has(p)), [], 'no ganesha started here is left');
});

t.test('a port already in use: one clear line, nothing mounted, nothing started', async (t) => {
  const port = await nfsPort();
  const srv = net.createServer();
  await new Promise<void>((r) => srv.listen(port, '127.0.0.1', () => r()));
  t.teardown(() => new Promise<void>((r) => srv.close(() => r())));
  const mnt = path.join(tempDir(t, 'uniso-nfsmnt-'), 'mnt');
  fs.mkdirSync(mnt);
  t.teardown(() => { if (isMounted(mnt)) { uniso(['umount', mnt]); run('fusermount3', ['-uz', mnt]); } });
  const ganeshaBefore = pgrep(['-x', 'ganesha.nfsd']);
  const rpcbindNow = pgrep(['-x', 'rpcbind']);
  const r = uniso(['mount', uni, mnt, '--nfs', `127.0.0.1:${port}`], { timeout: 60000 });
  t.not(r.code, 0, `uniso mount exits ${r.code} != 0`);
  t.match(r.stderr, new RegExp(`^uniso: 127\\.0\\.0\\.1:${port}: address already in use[^\\n]*\\n$`), `one line: ${r.stderr.trim()}`);
  t.notOk(isMounted(mnt), 'nothing is mounted');
  t.same(fs.readdirSync(mnt), [], 'the mount point is untouched');
  t.notOk(mountState(mnt), 'no state file');
  t.same(pgrep(['-x', 'ganesha.nfsd']), ganeshaBefore, 'no ganesha was started');
  t.same(pgrep(['-x', 'rpcbind']), rpcbindNow, 'no rpcbind was started');
  // the same with the listener on the wildcard address
  await new Promise<void>((r2) => srv.close(() => r2()));
  const wild = net.createServer();
  await new Promise<void>((r2) => wild.listen(port, '0.0.0.0', () => r2()));
  t.teardown(() => new Promise<void>((r2) => wild.close(() => r2())));
  const r2 = uniso(['mount', uni, mnt, '--nfs', `127.0.0.1:${port}`], { timeout: 60000 });
  t.not(r2.code, 0, 'a listener on 0.0.0.0 is detected too');
  t.match(r2.stderr, /^uniso: .*address already in use[^\n]*\n$/, `one line: ${r2.stderr.trim()}`);
  t.notOk(isMounted(mnt), 'nothing is mounted');
});

t.test('ganesha missing: a clear error naming the packages, nothing mounted', async (t) => {
  const mnt = path.join(tempDir(t, 'uniso-nfsmnt-'), 'mnt');
  fs.mkdirSync(mnt);
  t.teardown(() => { if (isMounted(mnt)) { uniso(['umount', mnt]); run('fusermount3', ['-uz', mnt]); } });
  const empty = tempDir(t, 'uniso-nopath-');
  const port = await nfsPort();
  // ganesha.nfsd lives in /usr/bin: a PATH without it (uniso also looks in /usr/sbin and /sbin)
  const r = run(process.execPath, [UNISO, 'mount', uni, mnt, '--nfs', `127.0.0.1:${port}`], { env: { ...process.env, PATH: empty }, timeout: 60000 });
  t.not(r.code, 0, `uniso mount exits ${r.code} != 0`);
  t.match(r.stderr, /^uniso: [^\n]*ganesha[^\n]*\n$/, `one line about ganesha: ${r.stderr.trim()}`);
  t.match(r.stderr, /nfs-ganesha\b/, 'names the nfs-ganesha package');
  t.match(r.stderr, /nfs-ganesha-vfs/, 'names the nfs-ganesha-vfs package');
  t.notOk(isMounted(mnt), 'nothing is mounted');
  t.notOk(mountState(mnt), 'no state file');
});

t.test('cleanup check: no ganesha or rpcbind started by uniso is left', async (t) => {
  const left = [...started].filter((p) => processAlive(p));
  t.same(left, [], 'every ganesha/rpcbind uniso started has exited');
  if (rpcbindBefore.length === 0) t.same(pgrep(['-x', 'rpcbind']), [], 'no rpcbind runs');
  t.same(pgrep(['-x', 'ganesha.nfsd']).filter((p) => started.has(p)), [], 'no ganesha.nfsd started here runs');
});
