// The FUSE mount: every file view reads the same bytes as `uniso extract`
// (cp, dd at odd offsets and block sizes, buffered and O_DIRECT, concurrent
// readers, sha256sum -c), the namespace (listings, sizes, modes, mtimes,
// inode numbers stable across remounts), rootfs/ against the fixture tree,
// read-only behaviour, bad requests, unmounting (umount, SIGTERM, SIGINT),
// --allow-other with default_permissions, and mounting the extracted
// directory form of the universal ISO.

import t, { Test } from 'tap';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as crypto from 'node:crypto';
import {
  buildUniversal, extractViews, fixture, isMounted, listViews, mount, mountOn, mountState, must, mustUniso, processAlive, run,
  readAt, runAsync, tempDir, uniso, waitUntil, FIXTURE_NAME, FIXTURE_TEMPLATE,
} from './lib/fixture';
import { compareTrees } from './lib/treecmp';

const GiB = 1024 * 1024 * 1024;
const HUGE = 'srv/data/huge-9g.img';
const HUGE_SIZE = 9 * GiB + 12345;

const fx = fixture();
const dir = tempDir(t);
const uni = buildUniversal(dir);
const listing = listViews(uni);
const fileViews = listing.filter((v) => !v.path.endsWith('/'));
const sizeOf = new Map(fileViews.map((v) => [v.path, v.size]));

// the oracle: every file view copied out without FUSE
const extracted = extractViews(uni, dir, fileViews);
const bytesOf = (view: string) => fs.readFileSync(extracted.get(view)!);

const mnt = mount(t, uni);

// deterministic "random" offsets (xorshift32)
let seed = 0x2545f491;
function rand(n: number): number {
  seed ^= seed << 13; seed >>>= 0;
  seed ^= seed >>> 17;
  seed ^= seed << 5; seed >>>= 0;
  return n <= 0 ? 0 : seed % n;
}

/** Drop the page cache of one file so the next buffered read reaches the daemon. */
function dropCache(file: string): void {
  must('dd', [`if=${file}`, 'iflag=nocache', 'count=0', 'status=none']);
}

interface DdRead {
  bs: number;
  skip: number;
  count?: number;
  bytes?: boolean; // iflag=skip_bytes,count_bytes
}

function ddArgs(file: string, r: DdRead, direct: boolean): string[] {
  const flags = [...(direct ? ['direct'] : []), ...(r.bytes ? ['skip_bytes', 'count_bytes'] : [])];
  return [`if=${file}`, `bs=${r.bs}`, `skip=${r.skip}`, ...(r.count !== undefined ? [`count=${r.count}`] : []),
    ...(flags.length ? [`iflag=${flags.join(',')}`] : []), 'status=none'];
}

function ddSlice(buf: Buffer, r: DdRead): Buffer {
  const start = r.bytes ? r.skip : r.skip * r.bs;
  const len = r.count === undefined ? Infinity : r.bytes ? r.count : r.count * r.bs;
  return buf.subarray(Math.min(start, buf.length), Math.min(buf.length, start + len));
}

function ddReads(size: number): DdRead[] {
  const reads: DdRead[] = [
    { bs: 4093, skip: 7, count: 50 },
    { bs: 1, skip: Math.max(0, size - 1), count: 1 }, // the last byte
    { bs: 1 << 20, skip: 0 }, // the whole file
    { bs: 65537, skip: 1, count: 3 }, // straddles 64 KiB pool block boundaries
    { bs: 131072, skip: Math.max(0, size - 100), count: 300, bytes: true }, // runs past EOF
  ];
  for (let i = 0; i < 3; i++) {
    const skip = rand(size);
    reads.push({ bs: [512, 4096, 4097, 65536, 131071, 1 << 20][rand(6)], skip, count: 1 + rand(Math.min(300000, size - skip + 1)), bytes: true });
  }
  return reads;
}

t.test('every file view reads through the mount exactly as uniso extract writes it', async (t) => {
  t.ok(fileViews.length >= 15, `${fileViews.length} file views listed`);
  t.ok(fileViews.some((v) => v.path === 'README.txt'), 'README.txt is listed');
  t.ok(fileViews.filter((v) => v.path.endsWith('.sha256')).length >= 7, '.sha256 files are listed');
  const cpDir = path.join(dir, 'cp');
  for (const v of fileViews) {
    const dst = path.join(cpDir, v.path);
    fs.mkdirSync(path.dirname(dst), { recursive: true });
    dropCache(path.join(mnt, v.path));
    must('cp', [path.join(mnt, v.path), dst]);
    const a = fs.readFileSync(dst);
    t.equal(a.length, v.size, `${v.path}: cp copied ${v.size} bytes`);
    t.ok(a.equals(bytesOf(v.path)), `${v.path}: cp bytes equal uniso extract`);
    t.equal(run('cmp', [dst, extracted.get(v.path)!]).code, 0, `${v.path}: cmp`);
  }
});

t.test('dd at odd offsets and block sizes equals the slice of the extracted file', async (t) => {
  for (const v of fileViews) {
    const want = bytesOf(v.path);
    const f = path.join(mnt, v.path);
    for (const r of ddReads(v.size)) {
      for (const direct of [false, true]) {
        if (!direct) dropCache(f);
        const got = must('dd', ddArgs(f, r, direct)).out;
        const exp = ddSlice(want, r);
        t.ok(got.equals(exp), `${v.path}: dd ${ddArgs('', r, direct).slice(1, -1).join(' ')} -> ${got.length} bytes, want ${exp.length}`);
      }
    }
  }
});

t.test('dd inside rootfs/ files equals the fixture bytes', async (t) => {
  for (const rel of ['usr/lib/random-1m.bin', 'usr/lib/zero-middle.bin', 'usr/lib/64k-plus-1.bin', 'usr/lib/exact-64k.bin',
    'usr/share/doc/numbers.txt', 'var/log/sparse.log', 'etc/motd']) {
    const want = fs.readFileSync(path.join(fx.tree, rel));
    const f = path.join(mnt, 'rootfs', rel);
    for (const r of ddReads(want.length)) {
      for (const direct of [false, true]) {
        if (!direct) dropCache(f);
        const got = must('dd', ddArgs(f, r, direct)).out;
        t.ok(got.equals(ddSlice(want, r)), `rootfs/${rel}: dd ${ddArgs('', r, direct).slice(1, -1).join(' ')}`);
      }
    }
  }
});

t.test('two readers at once both get the right bytes', async (t) => {
  const big = [...fileViews].sort((a, b) => b.size - a.size).slice(0, 3).map((v) => v.path);
  const out = path.join(dir, 'concurrent');
  fs.mkdirSync(out, { recursive: true });
  for (const view of big) {
    const f = path.join(mnt, view);
    dropCache(f);
    const [a, b] = [path.join(out, 'a'), path.join(out, 'b')];
    const [ra, rb] = await Promise.all([runAsync('cp', [f, a]), runAsync('cp', [f, b])]);
    t.equal(ra.code, 0, `${view}: first cp exits 0 ${ra.stderr}`);
    t.equal(rb.code, 0, `${view}: second cp exits 0 ${rb.stderr}`);
    const want = bytesOf(view);
    t.ok(fs.readFileSync(a).equals(want), `${view}: first concurrent cp`);
    t.ok(fs.readFileSync(b).equals(want), `${view}: second concurrent cp`);
    // two O_DIRECT readers at different offsets, every request reaching the daemon
    const r1: DdRead = { bs: 4093, skip: 3, count: 200 };
    const r2: DdRead = { bs: 65537, skip: 12345, count: 2000000, bytes: true };
    const [d1, d2] = await Promise.all([runAsync('dd', ddArgs(f, r1, true)), runAsync('dd', ddArgs(f, r2, true))]);
    t.ok(d1.code === 0 && d1.out.equals(ddSlice(want, r1)), `${view}: concurrent dd 1`);
    t.ok(d2.code === 0 && d2.out.equals(ddSlice(want, r2)), `${view}: concurrent dd 2`);
  }
  // two different views (and a rootfs file) at once
  const other = path.join(mnt, 'rootfs/usr/lib/random-1m.bin');
  dropCache(path.join(mnt, big[0]));
  dropCache(path.join(mnt, big[1]));
  dropCache(other);
  const [x, y, z] = await Promise.all([
    runAsync('cat', [path.join(mnt, big[0])]), runAsync('cat', [path.join(mnt, big[1])]), runAsync('cat', [other]),
  ]);
  t.ok(x.out.equals(bytesOf(big[0])), `${big[0]} while others are read`);
  t.ok(y.out.equals(bytesOf(big[1])), `${big[1]} while others are read`);
  t.ok(z.out.equals(fs.readFileSync(path.join(fx.tree, 'usr/lib/random-1m.bin'))), 'rootfs file while views are read');
});

t.test('readers killed mid-read leave the daemon serving the right bytes', async (t) => {
  const { spawn } = await import('node:child_process');
  const pid = mountState(mnt)?.pid;
  t.ok(pid && processAlive(pid), 'the daemon runs');
  // the largest views (inflating and spliced) and the 9 GiB sparse rootfs file, each reader killed while it reads
  const victims = [...[...fileViews].sort((a, b) => b.size - a.size).slice(0, 3).map((v) => v.path), `rootfs/${HUGE}`];
  for (const view of victims) {
    const f = path.join(mnt, view);
    dropCache(f);
    const reader = spawn('dd', [`if=${f}`, 'of=/dev/null', 'bs=64k', 'iflag=direct', 'status=none'], { stdio: 'ignore' });
    const exited = new Promise<void>((r) => reader.on('exit', () => r()));
    await new Promise((r) => setTimeout(r, 150));
    reader.kill('SIGKILL');
    await exited;
    t.ok(pid && processAlive(pid), `${view}: the daemon survives its reader being killed`);
  }
  for (const view of victims.slice(0, 3)) {
    const r: DdRead = { bs: 65536, skip: 0, count: 64 };
    const d = await runAsync('dd', ddArgs(path.join(mnt, view), r, true));
    t.ok(d.code === 0 && d.out.equals(ddSlice(bytesOf(view), r)), `${view}: read again afterwards, the right bytes`);
  }
  const tail = await runAsync('dd', ddArgs(path.join(mnt, 'rootfs', HUGE), { bs: 4096, skip: HUGE_SIZE - 4096, count: 4096, bytes: true }, true));
  t.ok(tail.code === 0 && tail.out.equals(readAt(path.join(fx.tree, HUGE), HUGE_SIZE - 4096, 4096)), `rootfs/${HUGE}: its last 4 KiB afterwards`);
});

t.test('sha256sum -c passes for every .sha256 inside its view directory', async (t) => {
  const sums = fileViews.filter((v) => v.path.endsWith('.sha256'));
  t.equal(sums.length, fileViews.length - 1 - sums.length, 'one .sha256 per view except README.txt');
  for (const s of sums) {
    const cwd = path.join(mnt, path.dirname(s.path));
    const r = run('sha256sum', ['-c', path.basename(s.path)], { cwd });
    t.equal(r.code, 0, `${s.path}: sha256sum -c exits 0 ${r.stderr}`);
    t.equal(r.stdout, `${path.basename(s.path, '.sha256')}: OK\n`, `${s.path}: sha256sum -c says OK`);
  }
});

t.test('directory listings match uniso ls', async (t) => {
  const children = new Map<string, Set<string>>();
  for (const v of listing) {
    const parts = v.path.replace(/\/$/, '').split('/');
    for (let i = 0; i < parts.length; i++) {
      const d = parts.slice(0, i).join('/');
      if (!children.has(d)) children.set(d, new Set());
      children.get(d)!.add(parts[i]);
    }
  }
  t.same(fs.readdirSync(mnt).sort(), [...children.get('')!].sort(), 'mount root');
  t.ok(children.get('')!.has('rootfs') && children.get('')!.has('README.txt'), 'root holds rootfs and README.txt');
  for (const [d, names] of children) {
    if (d === '') continue;
    t.same(fs.readdirSync(path.join(mnt, d)).sort(), [...names].sort(), `${d}/`);
  }
  // readdir's inode numbers agree with stat's (use_ino)
  const r = must('python3', ['-c', 'import os,sys\nfor d in sys.argv[1:]:\n  for e in os.scandir(d): print(e.inode() == os.lstat(e.path).st_ino, e.path)',
    mnt, path.join(mnt, 'docker'), path.join(mnt, 'rootfs'), path.join(mnt, 'rootfs/usr/bin')]).stdout;
  t.same(r.split('\n').filter((l) => l.startsWith('False')), [], 'd_ino equals st_ino');
});

t.test('views: sizes from uniso ls -l, modes 0444/0555, stable mtimes', async (t) => {
  for (const v of fileViews) {
    const st = fs.statSync(path.join(mnt, v.path), { bigint: true });
    t.equal(Number(st.size), v.size, `${v.path}: size`);
    t.equal(st.mode, BigInt(fs.constants.S_IFREG | 0o444), `${v.path}: regular file, mode 0444`);
    t.equal(st.nlink, 1n, `${v.path}: one link`);
    t.equal(st.uid, 0n, `${v.path}: owned by root`);
    const again = fs.statSync(path.join(mnt, v.path), { bigint: true });
    t.equal(again.mtimeNs, st.mtimeNs, `${v.path}: mtime stable across two stats`);
    t.equal(again.ino, st.ino, `${v.path}: inode stable across two stats`);
  }
  const dirs = new Set(['', ...fileViews.map((v) => path.dirname(v.path)).filter((d) => d !== '.')]);
  for (const d of dirs) {
    const st = fs.statSync(path.join(mnt, d), { bigint: true });
    t.equal(st.mode, BigInt(fs.constants.S_IFDIR | 0o555), `${d || '/'}: directory, mode 0555`);
    t.equal(fs.statSync(path.join(mnt, d), { bigint: true }).mtimeNs, st.mtimeNs, `${d || '/'}: mtime stable`);
  }
});

/** `stat -c %i` of every entry below `root` (lstat, not following links). */
function inodes(root: string, rels: string[]): Map<string, string> {
  const out = must('stat', ['-c', '%i', ...rels.map((r) => path.join(root, r))]).stdout.trim().split('\n');
  return new Map(rels.map((r, i) => [r, out[i]]));
}

function allEntries(root: string): string[] {
  const out: string[] = [];
  const rec = (rel: string) => {
    for (const n of fs.readdirSync(path.join(root, rel))) {
      const r = rel ? `${rel}/${n}` : n;
      out.push(r);
      if (fs.lstatSync(path.join(root, r)).isDirectory()) rec(r);
    }
  };
  rec('');
  return out;
}

t.test('inode numbers are unique and stable across a remount', async (t) => {
  const entries = allEntries(mnt);
  const byIno = new Map<string, string[]>();
  const first = inodes(mnt, entries);
  for (const [rel, ino] of first) byIno.set(ino, [...(byIno.get(ino) ?? []), rel]);
  const shared = [...byIno.values()].filter((v) => v.length > 1).map((v) => v.sort().join('|'));
  t.same(shared, ['rootfs/sbin/linked-again|rootfs/srv/data/linked-third|rootfs/usr/bin/linked'],
    'only the hard-link group shares an inode number');
  t.notOk(byIno.has('1'), 'no entry reuses the root inode number 1');
  t.equal(fs.statSync(mnt).ino, 1, 'the mount root is inode 1');
  const sample = ['README.txt', 'docker', `docker/${FIXTURE_NAME}-docker.tar`, `docker/${FIXTURE_NAME}-docker.tar.sha256`,
    `opennode/${FIXTURE_TEMPLATE}.ovf`, `lxc/${FIXTURE_NAME}-incus.tar.gz`, 'rootfs', 'rootfs/etc/motd', 'rootfs/usr/bin/linked',
    'rootfs/dev/sda', 'rootfs/var/log/fifo', 'rootfs/usr/bin/rel-link', `rootfs/${HUGE}`, 'rootfs/usr/share/many/file-300'];
  const before = Object.fromEntries(inodes(mnt, sample));
  // a second daemon: mount, record, umount, then mount again on the same mount point
  const mnt2 = mount(t, uni);
  t.same(Object.fromEntries(inodes(mnt2, sample)), before, 'same inode numbers from a second daemon');
  mustUniso(['umount', mnt2]);
  t.notOk(isMounted(mnt2), 'unmounted');
  mountOn(t, uni, mnt2);
  t.same(Object.fromEntries(inodes(mnt2, sample)), before, 'same inode numbers after umount and mount again');
  t.same(Object.fromEntries(inodes(mnt2, entries)), Object.fromEntries(first), 'every entry keeps its inode number');
  mustUniso(['umount', mnt2]);
});

t.test('rootfs/ equals the fixture tree', async (t) => {
  const root = path.join(mnt, 'rootfs');
  // xattrs were not served over FUSE when this test was written, so this comparison leaves them out
  // (xattrs: false); the next subtest checks them on their own now that the daemon has getxattr/listxattr.
  t.same(compareTrees(fx.tree, root, { xattrs: false, ignore: [HUGE] }), [], 'owners, modes, mtimes, sizes, bytes, links, devices');
  // spot checks of what compareTrees covers, stated explicitly
  const suid = fs.lstatSync(path.join(root, 'usr/bin/suid-tool'));
  t.equal(suid.mode & 0o7777, 0o4755, 'setuid bit');
  t.equal(fs.lstatSync(path.join(root, 'usr/bin/sgid-tool')).mode & 0o7777, 0o2711, 'setgid bit');
  t.equal(fs.lstatSync(path.join(root, 'tmp')).mode & 0o7777, 0o1777, 'sticky bit');
  const big = fs.lstatSync(path.join(root, 'srv/data/big-ids'));
  t.same([big.uid, big.gid], [3000000, 4000000], 'large uid/gid');
  t.equal(fs.readlinkSync(path.join(root, 'usr/bin/rel-link')), '../lib/random-1m.bin', 'relative symlink target');
  t.equal(fs.readlinkSync(path.join(root, 'var/log/dangling')), '/nonexistent/target', 'dangling symlink target');
  t.equal(fs.readlinkSync(path.join(root, 'srv/long-symlink')), `/srv/data/${'long-target-'.repeat(12)}`, 'long symlink target');
  const hl = ['usr/bin/linked', 'sbin/linked-again', 'srv/data/linked-third'].map((p) => fs.lstatSync(path.join(root, p)));
  t.ok(hl.every((s) => s.ino === hl[0].ino), 'hard links share an inode');
  t.ok(hl.every((s) => s.nlink === 3), 'hard links have link count 3');
  const nvme = fs.lstatSync(path.join(root, 'dev/nvme-big'));
  t.ok(nvme.isBlockDevice(), 'block device');
  t.equal(must('stat', ['-c', '%t:%T', path.join(root, 'dev/nvme-big')]).stdout.trim(), `${(259).toString(16)}:${(300).toString(16)}`, 'major 259 minor 300');
  t.ok(fs.lstatSync(path.join(root, 'var/log/fifo')).isFIFO(), 'fifo');
  t.equal(fs.readFileSync(path.join(root, 'srv/ünïcødé/日本語ファイル.txt'), 'utf8'), 'utf8\n', 'non-ASCII names');
  t.equal(fs.lstatSync(path.join(root, 'etc/motd')).mtime.toISOString(), '1999-12-31T23:59:59.000Z', 'old mtime');
  t.equal(fs.lstatSync(path.join(root, 'srv/data/odd-mode')).mtime.toISOString(), '2038-02-01T00:00:00.000Z', 'mtime past 2038-01-19');
});

t.test('rootfs/ xattrs over FUSE (getxattr/listxattr) equal the fixture', async (t) => {
  const root = path.join(mnt, 'rootfs');
  // one "# file: ..." block per entry with xattrs, in directory order (which differs): compare them sorted
  const dump = (d: string) => must('getfattr', ['-R', '-h', '-d', '-m', '-', '-e', 'hex', '.'], { cwd: d }).stdout
    .split('\n\n').map((b) => b.trim()).filter(Boolean).sort();
  const want = dump(fx.tree);
  t.equal(want.length, 4, 'the fixture has four entries with xattrs');
  t.same(dump(root), want, 'getfattr -R -d -m - of rootfs/ equals the fixture tree');
  t.match(must('getcap', [path.join(root, 'usr/bin/ping')]).stdout, /cap_net_raw[=+]ep/, 'getcap sees cap_net_raw+ep');
  t.equal(must('getfattr', ['--only-values', '-n', 'user.comment', path.join(root, 'etc/motd')]).stdout, 'fixture file', 'user.comment');
  t.equal(must('getfattr', ['-e', 'hex', '-n', 'user.binary', path.join(root, 'usr/lib/exact-64k.bin')]).stdout.match(/user.binary=(\S+)/)?.[1],
    '0x00ff10', 'binary value');
  const missing = run('getfattr', ['-n', 'user.nope', path.join(root, 'etc/motd')]);
  t.match(missing.stderr, /No such attribute/, 'a missing attribute gives ENODATA');
  t.equal(must('getfattr', ['-d', '-m', '-', path.join(mnt, 'README.txt')]).stdout, '', 'views have no xattrs');
});

t.test('the 9 GiB sparse file: size by stat, bytes at known offsets (no full read)', async (t) => {
  const f = path.join(mnt, 'rootfs', HUGE);
  const st = fs.statSync(f);
  t.equal(st.size, HUGE_SIZE, 'size');
  t.equal(st.mtime.toISOString(), fs.statSync(path.join(fx.tree, HUGE)).mtime.toISOString(), 'mtime');
  for (const direct of [false, true]) {
    const at = (skip: number, count: number) => must('dd', ddArgs(f, { bs: 65536, skip, count, bytes: true }, direct)).out;
    const how = direct ? 'O_DIRECT' : 'buffered';
    t.equal(at(0, 20).toString(), 'head of a 9 GiB file', `${how}: bytes at 0`);
    t.equal(at(8 * GiB + 777, 17).toString(), 'tail beyond 8 GiB', `${how}: bytes at 8 GiB + 777`);
    t.ok(at(8 * GiB + 770, 30).equals(Buffer.concat([Buffer.alloc(7), Buffer.from('tail beyond 8 GiB'), Buffer.alloc(6)])), `${how}: zeros around the tail data`);
    t.ok(at(4 * GiB + 3, 4096).equals(Buffer.alloc(4096)), `${how}: zeros in the hole above 4 GiB`);
    t.ok(at(HUGE_SIZE - 10, 100).equals(Buffer.alloc(10)), `${how}: the last 10 bytes, nothing past EOF`);
  }
});

const errCode = (f: () => unknown): string => {
  try {
    f();
    return 'no error';
  } catch (e) {
    return (e as NodeJS.ErrnoException).code ?? String(e);
  }
};

t.test('the mount is read-only and the daemon keeps running', async (t) => {
  const state = mountState(mnt);
  t.ok(state, 'state file for the mount');
  const denied = ['EROFS', 'EACCES', 'EPERM'];
  const readme = path.join(mnt, 'README.txt');
  const motd = path.join(mnt, 'rootfs/etc/motd');
  const attempts: [string, () => unknown][] = [
    ['write README.txt', () => fs.writeFileSync(readme, 'x')],
    ['append to README.txt', () => fs.appendFileSync(readme, 'x')],
    ['open README.txt O_RDWR', () => fs.closeSync(fs.openSync(readme, 'r+'))],
    ['truncate README.txt', () => fs.truncateSync(readme, 0)],
    ['create a file in the root', () => fs.writeFileSync(path.join(mnt, 'new-file'), 'x')],
    ['create a file in docker/', () => fs.writeFileSync(path.join(mnt, 'docker/new-file'), 'x')],
    ['mkdir', () => fs.mkdirSync(path.join(mnt, 'new-dir'))],
    ['unlink README.txt', () => fs.unlinkSync(readme)],
    ['unlink a view', () => fs.unlinkSync(path.join(mnt, `docker/${FIXTURE_NAME}-docker.tar`))],
    ['rmdir docker/', () => fs.rmdirSync(path.join(mnt, 'docker'))],
    ['rename README.txt', () => fs.renameSync(readme, path.join(mnt, 'README2.txt'))],
    ['symlink', () => fs.symlinkSync('README.txt', path.join(mnt, 'link'))],
    ['hard link', () => fs.linkSync(readme, path.join(mnt, 'hardlink'))],
    ['chmod README.txt', () => fs.chmodSync(readme, 0o666)],
    ['chown README.txt', () => fs.chownSync(readme, 1000, 1000)],
    ['utimes README.txt', () => fs.utimesSync(readme, 1, 1)],
    ['write rootfs/etc/motd', () => fs.writeFileSync(motd, 'x')],
    ['create in rootfs/tmp', () => fs.writeFileSync(path.join(mnt, 'rootfs/tmp/new'), 'x')],
    ['unlink rootfs/etc/motd', () => fs.unlinkSync(motd)],
    ['chmod rootfs/etc/motd', () => fs.chmodSync(motd, 0o777)],
    ['mknod in rootfs/dev', () => must('mknod', [path.join(mnt, 'rootfs/dev/new'), 'c', '1', '3'])],
  ];
  for (const [what, f] of attempts) {
    const code = errCode(f);
    const ok = denied.includes(code) || (what === 'mknod in rootfs/dev' && /Read-only file system|Permission denied|Operation not permitted/.test(code));
    t.ok(ok, `${what}: fails (${code})`);
  }
  t.notOk(fs.existsSync(path.join(mnt, 'new-file')), 'no file was created');
  t.ok(fs.readFileSync(readme).equals(bytesOf('README.txt')), 'README.txt unchanged');
  t.equal(fs.readFileSync(motd, 'utf8'), 'hello\n', 'rootfs/etc/motd unchanged');
  t.equal(fs.statSync(readme).mode & 0o7777, 0o444, 'mode unchanged');
  t.ok(state && processAlive(state.pid), 'daemon still running');
  t.ok(isMounted(mnt), 'still mounted');
});

t.test('the daemon survives bad requests', async (t) => {
  const state = mountState(mnt);
  t.equal(errCode(() => fs.openSync(path.join(mnt, 'nonexistent'), 'r')), 'ENOENT', 'open a missing file in the root');
  t.equal(errCode(() => fs.openSync(path.join(mnt, 'docker/nonexistent.tar'), 'r')), 'ENOENT', 'open a missing view');
  t.equal(errCode(() => fs.openSync(path.join(mnt, 'rootfs/etc/nonexistent'), 'r')), 'ENOENT', 'open a missing rootfs file');
  t.equal(errCode(() => fs.statSync(path.join(mnt, 'nope/deeper/still'))), 'ENOENT', 'stat below a missing directory');
  t.equal(errCode(() => fs.statSync(path.join(mnt, 'README.txt/child'))), 'ENOTDIR', 'stat below a file');
  t.equal(errCode(() => fs.statSync(path.join(mnt, 'rootfs/etc/motd/child'))), 'ENOTDIR', 'stat below a rootfs file');
  t.equal(errCode(() => fs.readdirSync(path.join(mnt, 'README.txt'))), 'ENOTDIR', 'readdir on a view');
  t.equal(errCode(() => fs.readdirSync(path.join(mnt, 'rootfs/etc/motd'))), 'ENOTDIR', 'readdir on a rootfs file');
  t.equal(errCode(() => fs.readdirSync(path.join(mnt, 'rootfs/var/log/fifo'))), 'ENOTDIR', 'readdir on a fifo');
  t.equal(errCode(() => fs.readlinkSync(path.join(mnt, 'README.txt'))), 'EINVAL', 'readlink on a view');
  t.equal(errCode(() => fs.readlinkSync(path.join(mnt, 'rootfs/etc/motd'))), 'EINVAL', 'readlink on a rootfs file');
  t.equal(errCode(() => fs.readFileSync(path.join(mnt, 'docker'))), 'EISDIR', 'read a directory');
  for (let i = 0; i < 200; i++) errCode(() => fs.statSync(path.join(mnt, `missing-${i}`)));
  const readmeSize = sizeOf.get('README.txt')!;
  for (const flags of [fs.constants.O_RDONLY, fs.constants.O_RDONLY | fs.constants.O_DIRECT]) {
    const how = flags === fs.constants.O_RDONLY ? 'buffered' : 'O_DIRECT';
    const fd = fs.openSync(path.join(mnt, 'README.txt'), flags);
    const b = Buffer.alloc(8192);
    t.equal(fs.readSync(fd, b, 0, 100, readmeSize + 1000), 0, `${how}: read far past EOF gives 0 bytes`);
    t.equal(fs.readSync(fd, b, 0, 100, readmeSize), 0, `${how}: read at EOF gives 0 bytes`);
    t.equal(fs.readSync(fd, b, 0, 100, readmeSize - 7), 7, `${how}: read across EOF gives the 7 remaining bytes`);
    t.ok(b.subarray(0, 7).equals(bytesOf('README.txt').subarray(readmeSize - 7)), `${how}: and they are right`);
    t.equal(fs.readSync(fd, b, 0, 100, 2 ** 52), 0, `${how}: read at a huge offset gives 0 bytes`);
    fs.closeSync(fd);
    const fdH = fs.openSync(path.join(mnt, 'rootfs', HUGE), flags);
    t.equal(fs.readSync(fdH, b, 0, 4096, HUGE_SIZE + 4096), 0, `${how}: read past EOF of the 9 GiB file`);
    fs.closeSync(fdH);
  }
  // a handle whose file is read after many others were opened and closed
  const fds = Array.from({ length: 64 }, () => fs.openSync(path.join(mnt, 'README.txt'), 'r'));
  for (const fd of fds.slice(1)) fs.closeSync(fd);
  t.equal(fs.readFileSync(fds[0]).length, readmeSize, 'an old handle still reads');
  fs.closeSync(fds[0]);
  t.ok(state && processAlive(state.pid), 'daemon still running');
  for (const v of fileViews.slice(0, 4)) {
    dropCache(path.join(mnt, v.path));
    t.ok(fs.readFileSync(path.join(mnt, v.path)).equals(bytesOf(v.path)), `${v.path}: still reads correctly`);
  }
  t.ok(fs.readFileSync(path.join(mnt, 'rootfs/usr/lib/random-1m.bin')).equals(fs.readFileSync(path.join(fx.tree, 'usr/lib/random-1m.bin'))),
    'rootfs file still reads correctly');
});

/** Mount on a fresh directory and return it with the daemon's state. */
function freshMount(tt: Parameters<typeof mount>[0], extra: string[] = []) {
  const m = mount(tt, uni, extra);
  const st = mountState(m);
  if (!st) throw new Error(`no state file for ${m}`);
  return { m, st };
}

async function expectCleanlyGone(tt: Test, m: string, pid: number, stateFile: string, how: string) {
  tt.ok(await waitUntil(() => !isMounted(m)), `${how}: mountinfo no longer lists the mount`);
  tt.ok(await waitUntil(() => !processAlive(pid)), `${how}: the daemon exited`);
  tt.equal(errCode(() => fs.statSync(m)), 'no error', `${how}: stat of the mount point works (no dead mount)`);
  tt.ok(fs.statSync(m).isDirectory(), `${how}: the mount point is a directory again`);
  tt.same(fs.readdirSync(m), [], `${how}: and it is empty`);
  tt.notOk(fs.existsSync(stateFile), `${how}: the state file is removed`);
  // the same mount point can be mounted again
  mountOn(tt, uni, m);
  tt.ok(fs.readFileSync(path.join(m, 'README.txt')).equals(bytesOf('README.txt')), `${how}: mounting there again works`);
  mustUniso(['umount', m]);
  tt.notOk(isMounted(m), `${how}: unmounted again`);
}

t.test('uniso umount unmounts and stops the daemon', async (t) => {
  const { m, st } = freshMount(t);
  t.ok(processAlive(st.pid), 'daemon running');
  t.equal(st.mountpoint, fs.realpathSync(m), 'state file names the mount point');
  t.equal(st.image, path.resolve(uni), 'state file names the image');
  t.ok(isMounted(m), 'mounted');
  const r = uniso(['umount', m]);
  t.equal(r.code, 0, `uniso umount exits 0 ${r.stderr}`);
  t.notOk(isMounted(m), 'not mounted as soon as uniso umount returns');
  await expectCleanlyGone(t, m, st.pid, st.file, 'umount');
});

for (const sig of ['SIGTERM', 'SIGINT'] as const) {
  t.test(`${sig} to the daemon unmounts cleanly`, async (t) => {
    const { m, st } = freshMount(t);
    t.ok(fs.readFileSync(path.join(m, 'README.txt')).equals(bytesOf('README.txt')), 'mounted and serving');
    process.kill(st.pid, sig);
    await expectCleanlyGone(t, m, st.pid, st.file, sig);
  });
}

t.test('--allow-other lets other users read; default_permissions still applies', async (t) => {
  const nobody = (args: string[]) => run('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', ...args]);
  const { m } = freshMount(t, ['--allow-other']);
  fs.chmodSync(path.dirname(m), 0o755); // let nobody reach the mount point
  const readme = nobody(['cat', path.join(m, 'README.txt')]);
  t.equal(readme.code, 0, `nobody can cat README.txt ${readme.stderr}`);
  t.ok(readme.out.equals(bytesOf('README.txt')), 'and gets the right bytes');
  const view = `lxc/${FIXTURE_NAME}-incus.tar.gz`;
  t.ok(nobody(['cat', path.join(m, view)]).out.equals(bytesOf(view)), `nobody reads ${view}`);
  t.equal(nobody(['cat', path.join(m, 'rootfs/etc/motd')]).stdout, 'hello\n', 'nobody reads a world-readable rootfs file');
  t.equal(nobody(['cat', path.join(m, 'rootfs/var/tmp/nobody')]).stdout, 'nobody\n', "nobody reads its own file");
  const secret = nobody(['cat', path.join(m, 'rootfs/root/secret')]);
  t.not(secret.code, 0, 'nobody cannot read root/secret (0600 in a 0700 directory)');
  t.match(secret.stderr, /Permission denied/, 'EACCES for root/secret');
  t.equal(nobody(['ls', path.join(m, 'rootfs/root')]).code === 0, false, 'nobody cannot list /root (0700)');
  const odd = nobody(['cat', path.join(m, 'rootfs/srv/data/odd-mode')]);
  t.match(odd.stderr, /Permission denied/, 'nobody cannot read a mode 0471 root file');
  const root = run('cat', [path.join(m, 'rootfs/root/secret')]);
  t.equal(root.stdout, 'secret\n', 'root still reads root/secret');
});

t.test('without --allow-other another user gets EACCES', async (t) => {
  fs.chmodSync(path.dirname(mnt), 0o755);
  const r = run('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', 'cat', path.join(mnt, 'README.txt')]);
  t.not(r.code, 0, 'nobody cannot cat README.txt');
  t.match(r.stderr, /Permission denied/, 'EACCES');
  t.equal(r.stdout, '', 'no bytes');
  t.ok(fs.readFileSync(path.join(mnt, 'README.txt')).equals(bytesOf('README.txt')), 'root still reads it');
});

t.test('mounting the extracted directory form serves the same bytes', async (t) => {
  const x = path.join(dir, 'iso-contents');
  fs.mkdirSync(x);
  must('xorriso', ['-osirrox', 'on', '-indev', uni, '-extract', '/', x]);
  t.ok(fs.existsSync(path.join(x, 'uniso')), 'the ISO has a /uniso directory');
  const compareWith = (m: string, how: string) => {
    t.same(fs.readdirSync(m).sort(), fs.readdirSync(mnt).sort(), `${how}: same top-level entries`);
    for (const v of ['README.txt', `docker/${FIXTURE_NAME}-docker.tar`, `lxc/${FIXTURE_NAME}-incus.tar.gz`,
      `opennode/${FIXTURE_TEMPLATE}.ovf`, `proxmox/${FIXTURE_TEMPLATE}.tar.gz.sha256`]) {
      const a = fs.readFileSync(path.join(m, v));
      t.ok(a.equals(fs.readFileSync(path.join(mnt, v))) && a.equals(bytesOf(v)), `${how}: ${v} equals the ISO mount`);
      t.equal(fs.statSync(path.join(m, v)).size, sizeOf.get(v), `${how}: ${v} size`);
    }
    const rel = 'usr/lib/zero-middle.bin';
    t.ok(fs.readFileSync(path.join(m, 'rootfs', rel)).equals(fs.readFileSync(path.join(fx.tree, rel))), `${how}: rootfs/${rel}`);
    t.equal(fs.statSync(path.join(m, 'rootfs', HUGE)).size, HUGE_SIZE, `${how}: rootfs/${HUGE} size`);
  };
  const m1 = mount(t, x);
  compareWith(m1, 'extracted ISO root');
  mustUniso(['umount', m1]);
  const m2 = mount(t, path.join(x, 'uniso'));
  compareWith(m2, 'extracted /uniso directory');
  mustUniso(['umount', m2]);
});

t.test('the digest files name the right bytes (sanity of the oracle)', async (t) => {
  for (const v of fileViews.filter((x) => x.path.endsWith('.sha256'))) {
    const target = v.path.slice(0, -'.sha256'.length);
    const hex = crypto.createHash('sha256').update(bytesOf(target)).digest('hex');
    t.equal(bytesOf(v.path).toString(), `${hex}  ${path.basename(target)}\n`, v.path);
  }
});
