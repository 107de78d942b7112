// The single-copy universal ISO: its live root squashfs is written by uniso
// and its data blocks are the pool. Checked with readers nobody here wrote:
// unsquashfs (-s, -lln listing against the input's own mksquashfs image,
// -d extraction), sqfs2tar (squashfs-tools-ng) and the kernel (loop mount,
// every file read back), each compared with the fixture tree field by field
// (bytes, modes, owners, mtimes, xattrs, hard links, devices). Then: the
// views do not depend on where the pool lives (--keep-squashfs gives the
// same bytes), the rootfs.squashfs view is the ISO's squashfs, checksum
// lists and filesystem.size on the ISO are rewritten for the new squashfs,
// verify catches a damaged squashfs byte that no view reads, info tells the
// sizes, and a tree squashfs cannot hold is refused in one line.

import t from 'tap';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as crypto from 'node:crypto';
import { buildUniversal, fixture, FIXTURE_NAME, FIXTURE_TEMPLATE, must, mustUniso, run, tempDir, uniso, TEST_DISK_SIZE } from './lib/fixture';
import { compareTrees } from './lib/treecmp';
import { Catalog } from '../src/catalog/reader';

const fx = fixture();
const dir = tempDir(t, 'uniso-squashfs-');
const SQUASHFS = '/casper/10root.squashfs';
const ROOTFS_VIEW = `lxc/${FIXTURE_NAME}-incus-rootfs.squashfs`;
const HUGE = 'srv/data/huge-9g.img';

let serial = 0;
const fresh = (name: string) => path.join(dir, `${++serial}-${name}`);
/** A new directory for a build's output. */
const outDir = (name: string) => {
  const d = fresh(name);
  fs.mkdirSync(d);
  return d;
};

/** A file of an ISO, copied out by xorriso. */
function isoFile(iso: string, p: string): string {
  const out = fresh(path.basename(p));
  must('xorriso', ['-osirrox', 'on', '-indev', iso, '-extract', p, out]);
  return out;
}

/** Loop-mount a squashfs read-only (unmounted at teardown). */
function loopMount(tt: typeof t, image: string): string {
  const mnt = fresh('mnt');
  fs.mkdirSync(mnt);
  must('mount', ['-t', 'squashfs', '-o', 'loop,ro', image, mnt]);
  tt.teardown(() => { run('umount', [mnt]); });
  return mnt;
}

/** `unsquashfs -lln` entry lines (mode, owner, size, mtime, path), without its headers. */
function listing(image: string): string[] {
  return must('unsquashfs', ['-lln', image]).stdout.split('\n').filter((l) => /^[-dlcbps][-rwxsStT]{9} /.test(l));
}

const uni = buildUniversal(outDir('a'));
const squash = isoFile(uni, SQUASHFS);
const input = isoFile(fx.iso, SQUASHFS);

t.test('the squashfs superblock: gzip, 64 KiB blocks, no fragments', async (t) => {
  const s = must('unsquashfs', ['-s', squash]).stdout;
  t.match(s, /Found a valid SQUASHFS 4:0 superblock/);
  t.match(s, /^Compression gzip$/m);
  t.match(s, /^Block size 65536$/m);
  t.match(s, /^Number of fragments 0$/m);
  t.match(s, /^Filesystem is exportable via NFS$/m);
  t.equal(fs.statSync(squash).size % 4096, 0, 'padded to 4 KiB');
});

t.test('unsquashfs -lln lists exactly what mksquashfs listed for the input', async (t) => {
  const ours = listing(squash);
  t.ok(ours.length > 300, `${ours.length} entries`);
  t.same(ours, listing(input), 'same modes, owners, sizes (directory sizes too), mtimes, names, link targets, devices');
});

t.test('unsquashfs -d extracts the input tree', async (t) => {
  const out = fresh('unsquashfs');
  must('unsquashfs', ['-q', '-n', '-d', out, squash]);
  t.same(compareTrees(fx.tree, out), [], 'bytes, modes, owners, mtimes, xattrs, hard links, devices');
});

t.test('the kernel mounts it and reads every file back equal', async (t) => {
  const mnt = loopMount(t, squash);
  t.same(compareTrees(fx.tree, mnt), [], 'field by field, every byte read through the kernel (the 9 GiB sparse file too)');
  const cap = must('getfattr', ['-n', 'security.capability', '-e', 'hex', '--absolute-names', path.join(mnt, 'usr/bin/ping')]).stdout;
  t.match(cap, /security\.capability=0x0100000200200000/, 'file capability as the kernel reports it');
});

t.test('sqfs2tar (squashfs-tools-ng) turns it into the input tree', async (t) => {
  // a directory input without the 9 GiB sparse file: sqfs2tar writes every hole of it into the tar
  const tree = fresh('tree');
  must('cp', ['-a', fx.tree, tree]);
  fs.rmSync(path.join(tree, HUGE));
  const u = buildUniversal(outDir('dir'), tree, ['--name', FIXTURE_NAME]);
  const sq = isoFile(u, '/uniso/rootfs.squashfs');
  const tar = fresh('sqfs2tar.tar');
  must('sh', ['-c', 'sqfs2tar --root-becomes . "$1" > "$2"', 'sh', sq, tar]);
  const out = fresh('x');
  fs.mkdirSync(out);
  must('tar', ['--numeric-owner', '--xattrs', '--xattrs-include=*', '-xpf', tar, '-C', out]);
  t.same(compareTrees(tree, out), [], 'field by field');
  t.equal(mustUniso(['extract', u, ROOTFS_VIEW, '-o', '-']).out.equals(fs.readFileSync(sq)), true,
    'a directory input gets its squashfs in /uniso/, and the view is it');
});

t.test('the views do not depend on where the pool lives', async (t) => {
  const kept = buildUniversal(outDir('keep'), fx.iso, ['--keep-squashfs']);
  const a = JSON.parse(mustUniso(['ls', '--json', uni]).stdout) as unknown[];
  const b = JSON.parse(mustUniso(['ls', '--json', kept]).stdout) as unknown[];
  t.same(a, b, 'same paths, sizes and SHA-256 with --keep-squashfs');
  t.ok(fs.readFileSync(isoFile(kept, SQUASHFS)).equals(fs.readFileSync(input)), '--keep-squashfs keeps the input squashfs byte for byte');
  mustUniso(['verify', '-q', kept]);
  t.pass('the kept layout verifies');
});

t.test('the rootfs.squashfs view is the ISO\'s squashfs, read from its bytes', async (t) => {
  const view = mustUniso(['extract', uni, ROOTFS_VIEW, '-o', '-']).out;
  t.ok(view.equals(fs.readFileSync(squash)), 'extract of the view equals the file on the ISO');
  const meta = mustUniso(['extract', uni, `lxc/${FIXTURE_NAME}-incus-metadata.tar.gz`, '-o', '-']).out;
  t.same(must('tar', ['-tzf', '-'], { input: meta }).stdout.split('\n').filter(Boolean), ['metadata.yaml'], 'metadata tarball beside it');
  // a container overlay: the split image's squashfs is the container tree's, not the live one
  const overlay = fresh('overlay');
  fs.mkdirSync(path.join(overlay, 'etc'), { recursive: true });
  fs.writeFileSync(path.join(overlay, 'etc/container-only'), 'from the overlay\n');
  const u = buildUniversal(outDir('ov'), fx.iso, ['--overlay', `container=${overlay}`]);
  const v = fresh('container.squashfs');
  mustUniso(['extract', u, ROOTFS_VIEW, '-o', v]);
  const mnt = loopMount(t, v);
  t.equal(fs.readFileSync(path.join(mnt, 'etc/container-only'), 'utf8'), 'from the overlay\n', 'the overlay file is in it');
  t.notOk(listing(isoFile(u, SQUASHFS)).some((l) => l.endsWith('/etc/container-only')), 'and not in the live squashfs');
});

t.test('checksum lists and filesystem.size on the ISO follow the new squashfs', async (t) => {
  const stage = fresh('stage');
  fs.mkdirSync(path.join(stage, 'casper'), { recursive: true });
  const md5 = (b: Buffer) => crypto.createHash('md5').update(b).digest('hex');
  const sha = (b: Buffer) => crypto.createHash('sha256').update(b).digest('hex');
  const cfg = fs.readFileSync(isoFile(fx.iso, '/isolinux/isolinux.cfg'));
  const old = fs.readFileSync(input);
  fs.writeFileSync(path.join(stage, 'md5sum.txt'), `${md5(cfg)}  ./isolinux/isolinux.cfg\n${md5(old)}  ./casper/10root.squashfs\n`);
  fs.writeFileSync(path.join(stage, 'SHA256SUMS'), `${sha(old)} *casper/10root.squashfs\n${sha(cfg)}  isolinux/isolinux.cfg\n`);
  fs.writeFileSync(path.join(stage, 'casper/filesystem.size'), `${old.length}\n`);
  fs.writeFileSync(path.join(stage, 'casper/filesystem.manifest'), 'busybox 1.35\n');
  const iso = fresh('with-lists.iso');
  must('xorriso', ['-indev', fx.iso, '-outdev', iso, '-boot_image', 'any', 'replay', '-map', stage, '/', '-commit']);
  const u = buildUniversal(outDir('lists'), iso);
  const x = fresh('iso-x');
  must('xorriso', ['-osirrox', 'on', '-indev', u, '-extract', '/', x]);
  const newSq = fs.readFileSync(path.join(x, 'casper/10root.squashfs'));
  t.notOk(newSq.equals(old), 'the squashfs was replaced');
  t.equal(must('md5sum', ['-c', 'md5sum.txt'], { cwd: x }).code, 0, 'md5sum -c md5sum.txt passes');
  t.equal(must('sha256sum', ['-c', 'SHA256SUMS'], { cwd: x }).code, 0, 'sha256sum -c SHA256SUMS passes');
  t.equal(fs.readFileSync(path.join(x, 'md5sum.txt'), 'utf8'), `${md5(cfg)}  ./isolinux/isolinux.cfg\n${md5(newSq)}  ./casper/10root.squashfs\n`,
    'only the squashfs line changed, in its own format');
  t.equal(fs.readFileSync(path.join(x, 'SHA256SUMS'), 'utf8'), `${sha(newSq)} *casper/10root.squashfs\n${sha(cfg)}  isolinux/isolinux.cfg\n`);
  t.equal(fs.readFileSync(path.join(x, 'casper/filesystem.size'), 'utf8'), `${newSq.length}\n`, 'filesystem.size held the squashfs size: rewritten');
  t.equal(fs.readFileSync(path.join(x, 'casper/filesystem.manifest'), 'utf8'), 'busybox 1.35\n', 'other files kept');
  // casper's own convention: filesystem.size is the unpacked tree's size, which does not change
  fs.writeFileSync(path.join(stage, 'casper/filesystem.size'), '123456789\n');
  const iso2 = fresh('unpacked-size.iso');
  must('xorriso', ['-indev', fx.iso, '-outdev', iso2, '-boot_image', 'any', 'replay', '-map', stage, '/', '-commit']);
  const u2 = buildUniversal(outDir('lists2'), iso2);
  t.equal(fs.readFileSync(isoFile(u2, '/casper/filesystem.size'), 'utf8'), '123456789\n', 'the unpacked size is kept');
});

t.test('uniso info tells the squashfs and side pool sizes', async (t) => {
  const i = JSON.parse(mustUniso(['info', '--json', uni]).stdout) as {
    pool: { bytes: number; squashfs: { path: string; bytes: number; inodes: number }; sidePool: { path: string; bytes: number } };
  };
  t.equal(i.pool.squashfs.path, SQUASHFS);
  t.equal(i.pool.squashfs.bytes, fs.statSync(squash).size, 'squashfs bytes = its file on the ISO');
  t.equal(i.pool.squashfs.inodes, Number(/^Number of inodes (\d+)$/m.exec(must('unsquashfs', ['-s', squash]).stdout)![1]),
    'inodes as unsquashfs -s counts them');
  t.equal(i.pool.sidePool.path, '/uniso/pool.bin');
  t.equal(i.pool.sidePool.bytes, fs.statSync(isoFile(uni, '/uniso/pool.bin')).size);
  t.equal(i.pool.bytes, i.pool.squashfs.bytes + i.pool.sidePool.bytes, 'the pool is the two files');
  t.ok(i.pool.sidePool.bytes > 0, 'the vm family\'s GRUB files are in the side pool');
  const text = mustUniso(['info', uni]).stdout;
  t.match(text, /^squashfs: +\/casper\/10root\.squashfs, /m);
  t.match(text, /^side pool: +\/uniso\/pool\.bin, /m);
});

t.test('verify reads the whole squashfs: a damaged byte no view reads is caught', async (t) => {
  const bad = fresh('damaged.iso');
  fs.copyFileSync(uni, bad);
  // the zlib header of a compressed data block: the kernel reads it, no view does
  const lba = must('xorriso', ['-indev', bad, '-find', SQUASHFS, '-exec', 'report_lba', '--']).stdout;
  const m = /File data lba:\s*\d+\s*,\s*(\d+)\s*,/.exec(lba);
  t.ok(m, 'squashfs located on the ISO');
  const cat = new Catalog(isoFile(uni, '/uniso/catalog.sqlite'), 'catalog');
  const table = cat.blockTable(Number.MAX_SAFE_INTEGER);
  cat.close();
  let at = -1;
  for (let i = 0; i < table.count && at < 0; i++) if (!(table.flags[i] & 1) && table.offset[i] >= 2) at = table.offset[i] - 2;
  t.ok(at > 0, 'a compressed block');
  const fd = fs.openSync(bad, 'r+');
  const b = Buffer.alloc(1);
  fs.readSync(fd, b, 0, 1, Number(m![1]) * 2048 + at);
  t.equal(b[0], 0x78, 'its zlib header');
  fs.writeSync(fd, Buffer.from([0x79]), 0, 1, Number(m![1]) * 2048 + at);
  fs.closeSync(fd);
  const r = uniso(['verify', '-q', bad]);
  t.not(r.code, 0, 'verify fails');
  t.match(r.stderr, /\/casper\/10root\.squashfs: SHA-256 [0-9a-f]+ does not match/, 'naming the squashfs');
  t.equal(uniso(['extract', bad, `openvz/${FIXTURE_TEMPLATE}.tar.gz`, '-o', '/dev/null']).code, 0,
    'the views (which read the deflate bytes only) still serve');
});

t.test('a tree squashfs cannot hold: one line naming the path, no output', async (t) => {
  // a tar (pax) with a 300-byte name, which no Linux file system can hold either
  const long = 'n'.repeat(300);
  const src = fresh('long');
  fs.mkdirSync(src);
  fs.writeFileSync(path.join(src, 'short'), 'x');
  const tar = fresh('long.tar');
  must('python3', ['-c', `
import tarfile, io, sys
with tarfile.open(sys.argv[1], 'w', format=tarfile.PAX_FORMAT) as tf:
    d = tarfile.TarInfo('dir'); d.type = tarfile.DIRTYPE; d.mode = 0o755; tf.addfile(d)
    f = tarfile.TarInfo('dir/' + sys.argv[2]); f.size = 2; tf.addfile(f, io.BytesIO(b'hi'))
`, tar, long]);
  const out = fresh('never.iso');
  const r = uniso(['build', tar, '-o', out, '-q', '--disk-size', TEST_DISK_SIZE]);
  t.not(r.code, 0, 'non-zero exit');
  const lines = r.stderr.trim().split('\n');
  t.equal(lines.length, 1, 'one line');
  t.match(lines[0], new RegExp(`^uniso: .*long\\.tar: /dir/${long} cannot be stored in squashfs: its name is 300 bytes long \\(at most 256\\)$`));
  t.notOk(fs.existsSync(out), 'no output');
  t.same(fs.readdirSync(path.dirname(out)).filter((n) => n.startsWith('.')), [], 'no temp files left');
  const k = uniso(['build', fx.tree, '-o', out, '-q', '--keep-squashfs']);
  t.match(k.stderr, /--keep-squashfs: the input is not an ISO, so it has no squashfs to keep/, '--keep-squashfs needs an ISO');
  t.notOk(fs.existsSync(out), 'no output');
});

t.test('POSIX ACLs: a warning naming the files; the tarball views keep them', async (t) => {
  const tree = fresh('acl-tree');
  fs.mkdirSync(tree);
  fs.writeFileSync(path.join(tree, 'shared'), 'x\n');
  must('setfacl', ['-m', 'u:1234:rw', path.join(tree, 'shared')]);
  const u = buildUniversal(outDir('acl'), tree, ['--name', FIXTURE_NAME]);
  const i = JSON.parse(mustUniso(['info', '--json', u]).stdout) as { warnings: string[] };
  t.ok(i.warnings.some((w) => /squashfs holds only user\., trusted\. and security\. xattrs/.test(w) && w.includes('/shared (system.posix_acl_access)')),
    'the warning names the file and the attribute');
  const tgz = mustUniso(['extract', u, `openvz/${FIXTURE_TEMPLATE}.tar.gz`, '-o', '-']).out;
  const x = fresh('acl-x');
  fs.mkdirSync(x);
  must('tar', ['--xattrs', '--xattrs-include=*', '-xzf', '-', '-C', x], { input: tgz }); // (SCHILY.xattr.system.posix_acl_access)
  t.match(must('getfacl', ['-n', path.join(x, 'shared')]).stdout, /user:1234:rw-/, 'the tar.gz view keeps the ACL');
  const mnt = loopMount(t, isoFile(u, '/uniso/rootfs.squashfs'));
  t.notMatch(must('getfacl', ['-n', path.join(mnt, 'shared')]).stdout, /user:1234/, 'the squashfs does not hold it');
});
