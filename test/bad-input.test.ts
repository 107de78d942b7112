// Bad input and damaged images: every failure is one line on stderr
// ("uniso: FILE: problem"), a non-zero exit, and nothing left behind (no
// output file, no .NAME.PID.tmp, no .uniso-build-* directory). Mount point
// problems (missing, busy, not empty, stale after a killed daemon) and
// corruption of the catalog or the pool after the build (verify, extract,
// ls/info and reads through FUSE, which must give EIO while the daemon keeps
// serving the undamaged files).

import t from 'tap';
import { Catalog } from '../src/catalog/reader';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as crypto from 'node:crypto';
import * as zlib from 'node:zlib';
import { processAlive, buildUniversal, fixture, FIXTURE_NAME, FIXTURE_TEMPLATE, isMounted, mount, must, mustUniso, run, runAsync, RunResult, tempDir, uniso, readAt, UNISO, isoExtent, unmountAtTeardown } from './lib/fixture';
import { execFileSync, spawn } from 'node:child_process';

const fx = fixture();
const work = tempDir(t, 'uniso-bad-');
const PROXMOX = `proxmox/${FIXTURE_TEMPLATE}.tar.gz`;
const LXC = `lxc/${FIXTURE_NAME}-incus.tar.gz`;

// ---- helpers ---------------------------------------------------------------

/** Exit status non-zero (and not the internal-error 70); stderr exactly one "uniso: " line naming `file` and matching `problem`. */
function oneLineError(t: tap.Test, r: RunResult, file: string, problem: RegExp, what: string): void {
  t.not(r.code, 0, `${what}: exits non-zero`);
  t.not(r.code, 70, `${what}: not an internal error`);
  t.match(r.stderr, /^uniso: [^\n]+\n$/, `${what}: stderr is exactly one "uniso: " line`);
  const line = r.stderr.split('\n')[0];
  t.ok(line.includes(file), `${what}: the message names ${file} (got: ${line})`);
  t.match(line, problem, `${what}: the message says what is wrong`);
}

/** The directory holds nothing but `keep` (no output, no temp files). */
function onlyHolds(t: tap.Test, dir: string, keep: string[], what: string): void {
  t.same(fs.readdirSync(dir).filter((n) => !keep.includes(n)).sort(), [], `${what}: nothing left in ${dir}`);
}

/** A fresh, empty output directory. */
let outs = 0;
function outDir(): string {
  const d = path.join(work, `out-${++outs}`);
  fs.mkdirSync(d);
  return d;
}

function buildFails(t: tap.Test, input: string, names: string, problem: RegExp, what: string): void {
  const out = outDir();
  const r = uniso(['build', input, '-o', path.join(out, 'u.iso'), '-q']);
  oneLineError(t, r, names, problem, what);
  onlyHolds(t, out, [], what);
}


function flipByte(file: string, offset: number): void {
  const fd = fs.openSync(file, 'r+');
  try {
    const b = Buffer.alloc(1);
    fs.readSync(fd, b, 0, 1, offset);
    b[0] ^= 0xff;
    fs.writeSync(fd, b, 0, 1, offset);
  } finally {
    fs.closeSync(fd);
  }
}

/** The state file `uniso mount` keeps for a mount point (see src/fuse/control.ts). */
function stateFileOf(mnt: string): string {
  return path.join('/run/uniso', `${crypto.createHash('sha256').update(mnt).digest('hex').slice(0, 16)}.json`);
}

function daemonPid(mnt: string): number {
  const f = stateFileOf(mnt);
  if (fs.existsSync(f)) return (JSON.parse(fs.readFileSync(f, 'utf8')) as { pid: number }).pid;
  // fall back to the process list
  const r = must('pgrep', ['-f', `uniso mount --foreground.* ${mnt}$`]);
  return Number(r.stdout.trim().split('\n')[0]);
}

// A good universal ISO of the fixture (damaged copies are made from it).
const good = buildUniversal(outDir());

// The fixture's root squashfs, as a file.
const rootSquashfs = path.join(work, '10root.squashfs');
must('xorriso', ['-osirrox', 'on', '-indev', fx.iso, '-extract', '/casper/10root.squashfs', rootSquashfs]);

/** A TurnKey-layout ISO (no boot records) holding `files` (ISO path -> local file). */
function isoWith(name: string, files: Record<string, string>): string {
  const stage = path.join(work, `${name}.stage`);
  for (const [p, src] of Object.entries(files)) {
    fs.mkdirSync(path.dirname(path.join(stage, p)), { recursive: true });
    fs.copyFileSync(src, path.join(stage, p));
  }
  const out = path.join(work, name);
  must('xorriso', ['-as', 'mkisofs', '-quiet', '-o', out, '-V', 'BAD', '-R', '-J', stage]);
  return out;
}

// ---- build: bad input ----------------------------------------------------------

t.test('input is not an ISO (a text file)', async (t) => {
  const f = path.join(work, 'notes.txt');
  fs.writeFileSync(f, 'this is not an appliance\n'.repeat(100));
  buildFails(t, f, f, /not an ISO image, squashfs image, directory or tar archive/, 'text file');
});

t.test('ISO without a root squashfs', async (t) => {
  const cfg = path.join(work, 'isolinux.cfg');
  fs.writeFileSync(cfg, 'DEFAULT live\n');
  const iso = isoWith('no-casper.iso', { 'isolinux/isolinux.cfg': cfg, 'live/README': cfg, 'casper/vmlinuz': cfg });
  buildFails(t, iso, iso, /no root squashfs/, 'ISO without casper/*root.squashfs');
});

t.test('truncated squashfs, bare and inside an ISO', async (t) => {
  const full = fs.statSync(rootSquashfs).size;
  const bytesUsed = Number(readAt(rootSquashfs, 40, 8).readBigUInt64LE(0));
  t.ok(bytesUsed > 4096 && bytesUsed <= full, `superblock bytes_used ${bytesUsed} (file ${full})`);
  for (const size of [4096, Math.floor(bytesUsed / 2), bytesUsed - 1]) {
    const bare = path.join(work, `trunc-${size}.squashfs`);
    fs.copyFileSync(rootSquashfs, bare);
    fs.truncateSync(bare, size);
    buildFails(t, bare, bare, /truncated/, `squashfs cut to ${size} bytes`);
    const iso = isoWith(`trunc-${size}.iso`, { 'casper/10root.squashfs': bare });
    buildFails(t, iso, `${iso}:casper/10root.squashfs`, /truncated/, `ISO holding a squashfs cut to ${size} bytes`);
  }
});

t.test('tar with a "../" path', async (t) => {
  const py = `
import io, sys, tarfile
def add(t, name, data):
    i = tarfile.TarInfo(name); i.size = len(data); i.mtime = 1700000000; t.addfile(i, io.BytesIO(data))
with tarfile.open(sys.argv[1], sys.argv[3], format=tarfile.PAX_FORMAT) as t:
    add(t, 'etc/good.txt', b'fine\\n')
    add(t, sys.argv[2], b'escaped\\n')
`;
  for (const [file, member, mode] of [
    ['dotdot.tar', '../evil.txt', 'w'],
    ['dotdot-deep.tar', 'etc/../../evil.txt', 'w'],
    ['dotdot.tar.gz', '../evil.txt', 'w:gz'],
  ]) {
    const tar = path.join(work, file);
    must('python3', ['-c', py, tar, member, mode]);
    t.match(must('tar', ['-tf', tar]).stdout, member, `${file} holds ${member}`);
    buildFails(t, tar, tar, /refusing path with "\.\." in archive/, `${file} (${member})`);
  }
});

t.test('tar with an absolute path', async (t) => {
  const src = path.join(work, 'abs-src');
  fs.mkdirSync(src);
  fs.writeFileSync(path.join(src, 'good.txt'), 'fine\n');
  fs.writeFileSync(path.join(src, 'evil.txt'), 'absolute\n');
  const tar = path.join(work, 'absolute.tar');
  must('tar', ['--format=posix', '-cPf', tar, '-C', src, 'good.txt', path.join(src, 'evil.txt')]);
  t.match(must('tar', ['-tPf', tar]).stdout, `\n${path.join(src, 'evil.txt')}\n`, 'the archive holds an absolute member');
  buildFails(t, tar, tar, /refusing absolute path/, 'tar with /abs/path');
});

t.test('output directory missing', async (t) => {
  const parent = outDir();
  const out = path.join(parent, 'no-such-dir', 'u.iso');
  const r = uniso(['build', fx.iso, '-o', out, '-q']);
  oneLineError(t, r, path.join(parent, 'no-such-dir'), /does not exist/, 'missing output directory');
  t.notOk(fs.existsSync(path.join(parent, 'no-such-dir')), 'the missing directory was not created');
  onlyHolds(t, parent, [], 'missing output directory');
});

t.test('output path is an existing directory (build and extract)', async (t) => {
  const parent = outDir();
  const target = path.join(parent, 'a-directory');
  fs.mkdirSync(target);
  const r = uniso(['build', fx.iso, '-o', target, '-q']);
  oneLineError(t, r, target, /directory/, 'build -o DIR');
  onlyHolds(t, parent, ['a-directory'], 'build -o DIR');
  t.same(fs.readdirSync(target), [], 'the directory is untouched');
  const e = uniso(['extract', good, 'README.txt', '-o', target]);
  oneLineError(t, e, target, /directory/, 'extract -o DIR');
  onlyHolds(t, parent, ['a-directory'], 'extract -o DIR');
  t.same(fs.readdirSync(target), [], 'the directory is still untouched');
});

t.test('output is a FIFO or device: written in place, never replaced by a file', async (t) => {
  const parent = outDir();
  const fifo = path.join(parent, 'pipe');
  execFileSync('mkfifo', [fifo]);
  // a reader on the FIFO, started before the writer opens it
  const reader = spawn('sh', ['-c', `sha256sum < '${fifo}'`], { stdio: ['ignore', 'pipe', 'inherit'] });
  let sum = '';
  reader.stdout.on('data', (d: Buffer) => { sum += d.toString(); });
  const done = new Promise<number>((r) => reader.on('exit', (c) => r(c ?? 1)));
  const e = await runAsync(process.execPath, [UNISO, 'extract', good, 'README.txt', '-o', fifo]);
  t.equal(e.code, 0, `extract -o FIFO exits 0 ${e.stderr}`);
  t.equal(await done, 0, 'the reader finished');
  const plain = path.join(work, 'README.plain');
  mustUniso(['extract', good, 'README.txt', '-o', plain]);
  const want = crypto.createHash('sha256').update(fs.readFileSync(plain)).digest('hex');
  t.equal(sum.split(' ')[0], want, 'the reader got the bytes of README.txt');
  t.ok(fs.statSync(fifo).isFIFO(), 'the FIFO is still a FIFO');
  onlyHolds(t, parent, ['pipe'], 'extract -o FIFO');
  const b = uniso(['build', fx.iso, '-o', fifo, '-q']);
  oneLineError(t, b, fifo, /not a regular file/, 'build -o FIFO');
  t.ok(fs.statSync(fifo).isFIFO(), 'build left the FIFO a FIFO');
  onlyHolds(t, parent, ['pipe'], 'build -o FIFO');
});

t.test('input missing', async (t) => {
  const input = path.join(work, 'no-such-input.iso');
  buildFails(t, input, input, /no such file or directory/, 'missing input');
});

// ---- mount point problems ----------------------------------------------------------

t.test('mount point missing', async (t) => {
  const mnt = path.join(work, 'no-such-mnt');
  unmountAtTeardown(t, mnt);
  const r = uniso(['mount', good, mnt]);
  oneLineError(t, r, mnt, /does not exist/, 'missing mount point');
  t.notOk(fs.existsSync(mnt), 'the mount point was not created');
  t.notOk(isMounted(mnt), 'nothing mounted');
  t.notOk(fs.existsSync(stateFileOf(mnt)), 'no state file left');
});

t.test('mount point busy (mounted twice)', async (t) => {
  const mnt = mount(t, good);
  const pid = daemonPid(mnt);
  const r = uniso(['mount', good, mnt]);
  oneLineError(t, r, mnt, /busy|already mounted/, 'second mount on the same mount point');
  t.ok(processAlive(pid), 'the first daemon still runs');
  t.equal(daemonPid(mnt), pid, 'the state file still names the first daemon');
  t.same(fs.readdirSync(mnt).sort(), ['README.txt', 'azure', 'docker', 'gce', 'lxc', 'opennode', 'openstack', 'openvz', 'proxmox', 'raw', 'rootfs', 'vagrant', 'vdi', 'vhd', 'vhdx', 'vm', 'vmdk', 'wsl', 'xen'],
    'the first mount still serves its top directory');
  t.equal(fs.readFileSync(path.join(mnt, 'rootfs/etc/os-release'), 'utf8'), fs.readFileSync(path.join(fx.tree, 'etc/os-release'), 'utf8'),
    'reads through the first mount still work');
});

t.test('mount point not empty', async (t) => {
  const base = tempDir(t, 'uniso-mnt-');
  const mnt = path.join(base, 'mnt');
  fs.mkdirSync(mnt);
  fs.writeFileSync(path.join(mnt, 'precious.txt'), 'keep me\n');
  unmountAtTeardown(t, mnt);
  const r = uniso(['mount', good, mnt]);
  oneLineError(t, r, mnt, /not empty/, 'non-empty mount point');
  t.notOk(isMounted(mnt), 'nothing mounted');
  t.same(fs.readdirSync(mnt), ['precious.txt'], 'the directory is untouched');
  t.equal(fs.readFileSync(path.join(mnt, 'precious.txt'), 'utf8'), 'keep me\n', 'its file is untouched');
  t.notOk(fs.existsSync(stateFileOf(mnt)), 'no state file left');
});

t.test('stale mount left by a killed daemon', async (t) => {
  const mnt = mount(t, good);
  const pid = daemonPid(mnt);
  t.ok(pid > 0 && processAlive(pid), `daemon pid ${pid} is running`);
  process.kill(pid, 'SIGKILL');
  for (let i = 0; i < 100 && processAlive(pid); i++) await new Promise((r) => setTimeout(r, 50));
  t.notOk(processAlive(pid), 'the daemon is gone');
  t.ok(isMounted(mnt), 'the kernel still has the (now stale) mount');
  t.throws(() => fs.readdirSync(mnt), { code: 'ENOTCONN' }, 'the stale mount point answers ENOTCONN');

  const r = uniso(['mount', good, mnt]);
  oneLineError(t, r, mnt, /stale/, 'mount on a stale mount point');
  t.ok(r.stderr.includes(`uniso umount ${mnt}`), `the message prints the fix "uniso umount ${mnt}"`);

  const u = uniso(['umount', mnt]);
  t.equal(u.code, 0, `uniso umount clears the stale mount (${u.stderr.trim()})`);
  t.equal(u.stderr, '', 'quietly');
  t.notOk(isMounted(mnt), 'no longer mounted');
  t.same(fs.readdirSync(mnt), [], 'the mount point is an empty directory again');

  mustUniso(['mount', good, mnt]);
  t.ok(isMounted(mnt), 'a new mount works');
  const pid2 = daemonPid(mnt);
  t.not(pid2, pid, 'served by a new daemon');
  t.ok(processAlive(pid2), 'which is running');
  const viaMount = fs.readFileSync(path.join(mnt, 'README.txt'));
  t.ok(viaMount.equals(mustUniso(['extract', good, 'README.txt', '-o', '-']).out), 'and serves the right bytes');
});

// ---- damaged images ----------------------------------------------------------

t.test('catalog corrupted after the build', async (t) => {
  const dir = outDir();
  const iso = path.join(dir, 'catalog-damaged.iso');
  fs.copyFileSync(good, iso);
  const cat = isoExtent(iso, '/uniso/catalog.sqlite');
  t.equal(readAt(iso, cat.offset, 16).toString('latin1'), 'SQLite format 3\0', 'located the catalog inside the ISO');
  flipByte(iso, cat.offset + Math.floor(cat.size / 2));
  t.not(run('cmp', ['-s', good, iso]).code, 0, 'the copy now differs');
  const damaged = /catalog is (damaged|corrupt)/;

  const v = uniso(['verify', '-q', iso]);
  oneLineError(t, v, iso, damaged, 'verify');
  oneLineError(t, uniso(['ls', iso]), iso, damaged, 'ls');
  oneLineError(t, uniso(['info', iso]), iso, damaged, 'info');
  const out = outDir();
  oneLineError(t, uniso(['extract', iso, PROXMOX, '-o', path.join(out, 'x.tar.gz')]), iso, damaged, 'extract');
  oneLineError(t, uniso(['extract', iso, 'README.txt', '-o', path.join(out, 'README.txt')]), iso, damaged, 'extract README.txt');
  onlyHolds(t, out, [], 'extract');

  const base = tempDir(t, 'uniso-mnt-');
  const mnt = path.join(base, 'mnt');
  fs.mkdirSync(mnt);
  unmountAtTeardown(t, mnt);
  oneLineError(t, uniso(['mount', iso, mnt]), iso, damaged, 'mount');
  t.notOk(isMounted(mnt), 'nothing mounted');
  t.notOk(fs.existsSync(stateFileOf(mnt)), 'no state file left');
});

t.test('the temporary copy of the catalog: left nowhere, and a clear error when it cannot be made', async (t) => {
  // commands open the catalog of an ISO from a copy in TMPDIR, deleted as soon as it is open
  const tmp = tempDir(t, 'uniso-tmpdir-');
  const env = { ...process.env, TMPDIR: tmp };
  const ls = uniso(['ls', good], { env });
  t.equal(ls.code, 0, 'ls works with the copy');
  t.match(ls.stdout, PROXMOX, 'and lists the views');
  const out = outDir();
  t.equal(uniso(['extract', good, 'README.txt', '-o', path.join(out, 'README.txt')], { env }).code, 0, 'extract works');
  t.same(fs.readdirSync(tmp), [], 'nothing left in TMPDIR');
  // a catalog damaged inside the ISO is found while it is copied: still nothing left
  const dir = outDir();
  const iso = path.join(dir, 'catalog-damaged.iso');
  fs.copyFileSync(good, iso);
  const cat = isoExtent(iso, '/uniso/catalog.sqlite');
  flipByte(iso, cat.offset + 100);
  oneLineError(t, uniso(['ls', iso], { env }), iso, /catalog is damaged/, 'damaged catalog');
  t.same(fs.readdirSync(tmp), [], 'nothing left in TMPDIR after the error');
  const missing = path.join(tmp, 'no-such-dir');
  oneLineError(t, uniso(['ls', good], { env: { ...process.env, TMPDIR: missing } }), missing, /cannot make a temporary copy of the catalog/,
    'TMPDIR missing');
});

t.test('pool corrupted after the build', async (t) => {
  const dir = outDir();
  const iso = path.join(dir, 'pool-damaged.iso');
  fs.copyFileSync(good, iso);
  const cat = isoExtent(iso, '/uniso/catalog.sqlite');
  // the pool is the live squashfs, then the side pool: these files' blocks are in the squashfs
  const squash = isoExtent(iso, '/casper/10root.squashfs');
  const catFile = path.join(dir, 'catalog.sqlite');
  fs.writeFileSync(catFile, readAt(iso, cat.offset, cat.size));
  const catalog = new Catalog(catFile, 'catalog');
  const treeId = catalog.views().find((v) => v.path === 'rootfs')!.tree!;
  const table = catalog.blockTable(Number.MAX_SAFE_INTEGER);
  const blockOf = (rel: string) => {
    let row = catalog.rootInode(treeId)!;
    for (const part of rel.split('/')) row = catalog.child(treeId, row.ino, Buffer.from(part))!;
    const id = catalog.content(row.content!).blocks[0];
    return { id, offset: table.offset[id - 1], csize: table.csize[id - 1], flags: table.flags[id - 1], crc32: table.crc32[id - 1] };
  };
  // one incompressible block (stored raw) and one deflated block
  const damagedFiles = ['usr/lib/random-1m.bin', 'usr/share/doc/numbers.txt'];
  const blocks = damagedFiles.map(blockOf);
  catalog.close();
  t.not(blocks[0].flags, blocks[1].flags, 'one raw and one deflated block');
  for (const [i, b] of blocks.entries()) {
    t.ok(b.offset + b.csize <= squash.size, `block ${b.id} lies in the squashfs`);
    const stored = readAt(iso, squash.offset + b.offset, b.csize);
    const bytes = b.flags & 1 ? stored : zlib.inflateRawSync(stored, { finishFlush: zlib.constants.Z_SYNC_FLUSH });
    t.equal(zlib.crc32(bytes) >>> 0, b.crc32 >>> 0, `located block ${b.id} (${damagedFiles[i]}) inside the ISO`);
    flipByte(iso, squash.offset + b.offset + Math.floor(b.csize / 2));
  }

  t.equal(uniso(['verify', '-q', good]).code, 0, 'control: the undamaged image verifies');
  const v = uniso(['verify', '-q', iso]);
  t.not(v.code, 0, 'verify exits non-zero');
  t.not(v.code, 70, 'verify: not an internal error');
  const lines = v.stderr.split('\n');
  t.equal(lines.pop(), '', 'stderr ends with a newline');
  t.ok(lines.every((l) => l.startsWith('uniso: ')), 'every stderr line starts with "uniso: "');
  t.match(lines[lines.length - 1], new RegExp(`^uniso: ${iso.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: verification failed \\(\\d+ problems?\\)$`),
    'the final line names the image and says verification failed');
  for (const b of blocks) t.ok(lines.some((l) => new RegExp(`block ${b.id} is corrupt`).test(l)), `verify reports block ${b.id}`);

  const out = outDir();
  for (const view of [PROXMOX, LXC, 'rootfs/usr/lib/random-1m.bin', 'rootfs/srv/data/copy-of-random.bin', 'rootfs/usr/share/doc/numbers.txt']) {
    const r = uniso(['extract', iso, view, '-o', path.join(out, path.basename(view))]);
    oneLineError(t, r, iso, /corrupt/, `extract ${view}`);
  }
  onlyHolds(t, out, [], 'extract of damaged views');
  const ok = uniso(['extract', iso, 'rootfs/usr/lib/exact-64k.bin', '-o', path.join(out, 'exact-64k.bin')]);
  t.equal(ok.code, 0, `extract of an undamaged file still works (${ok.stderr.trim()})`);
  t.ok(fs.readFileSync(path.join(out, 'exact-64k.bin')).equals(fs.readFileSync(path.join(fx.tree, 'usr/lib/exact-64k.bin'))), 'with the right bytes');

  const mnt = mount(t, iso);
  const pid = daemonPid(mnt);
  const dest = outDir();
  for (const view of [PROXMOX, 'rootfs/usr/lib/random-1m.bin', 'rootfs/usr/share/doc/numbers.txt', PROXMOX]) {
    const r = run('cp', [path.join(mnt, view), path.join(dest, 'copy')]);
    t.not(r.code, 0, `cp ${view} through the mount fails`);
    t.match(r.stderr, /Input\/output error/, `cp ${view}: EIO`);
    t.ok(processAlive(pid), 'the daemon keeps running');
    fs.rmSync(path.join(dest, 'copy'), { force: true });
  }
  let eio = '';
  try {
    fs.readFileSync(path.join(mnt, 'rootfs/usr/lib/random-1m.bin'));
  } catch (e) {
    eio = (e as NodeJS.ErrnoException).code ?? '';
  }
  t.equal(eio, 'EIO', 'read() of the damaged file gives EIO');
  t.ok(fs.readFileSync(path.join(mnt, 'rootfs/usr/lib/exact-64k.bin')).equals(fs.readFileSync(path.join(fx.tree, 'usr/lib/exact-64k.bin'))),
    'a later read of an undamaged file works');
  t.ok(fs.readFileSync(path.join(mnt, 'README.txt')).equals(mustUniso(['extract', good, 'README.txt', '-o', '-']).out),
    'README.txt still reads');
  t.ok(processAlive(pid), 'the daemon is still running');
  t.ok(isMounted(mnt), 'still mounted');
});
