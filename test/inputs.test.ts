// Every input kind gives the same appliance: the fixture ISO, the fixture
// directory, squashfs images of every compressor mksquashfs has (gzip, xz,
// zstd, lz4, lzo), and tar archives (GNU pax with xattrs and sparse files,
// plain, gzip, xz, zstd and bzip2 compressed; GNU format; bsdtar pax). Each
// build's tar.gz views, extracted with GNU tar, must equal the source tree
// field by field. Then per-family trees: --overlay (added, replaced and
// whited-out files) and --variant, each visible only in its family's views,
// sharing the pool with the base tree.
//
// What an input cannot carry: squashfs inputs are made without the 9 GiB
// sparse file (mksquashfs reads all of its holes, ~20 s per image), so the
// comparisons skip that one path; the GNU-format tar cannot hold xattrs, so
// its comparison skips xattrs. No tar (input or view) can hold a socket: the
// socket test checks that tar views leave it out, with a warning, while the
// directory and squashfs inputs keep it in rootfs/.

import t from 'tap';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { buildUniversal, fixture, FIXTURE_NAME, FIXTURE_TEMPLATE, mount, must, mustUniso, tempDir, uniso, TEST_DISK_SIZE } from './lib/fixture';
import { compareTrees, CompareOptions } from './lib/treecmp';

const fx = fixture();
const dir = tempDir(t, 'uniso-inputs-');
const HUGE = 'srv/data/huge-9g.img';

const OPENVZ = `openvz/${FIXTURE_TEMPLATE}.tar.gz`;
const OPENNODE = `opennode/${FIXTURE_TEMPLATE}.tar.gz`;
const PROXMOX = `proxmox/${FIXTURE_TEMPLATE}.tar.gz`;
const XEN = `xen/${FIXTURE_NAME}-xen.tar.gz`;
const LXC = `lxc/${FIXTURE_NAME}-incus.tar.gz`;
const DOCKER = `docker/${FIXTURE_NAME}-docker.tar`;

let serial = 0;
const fresh = (name: string) => path.join(dir, `${++serial}-${name}`);

/** Build a universal ISO from `input` (named like the fixture, so view paths are known). */
function build(input: string, extra: string[] = []): string {
  const out = fresh('universal.iso');
  mustUniso(['build', input, '-o', out, '-q', '--name', FIXTURE_NAME, '--disk-size', TEST_DISK_SIZE, ...extra]);
  return out;
}

function untar(archive: string, args: string[] = []): string {
  const dest = fresh('x');
  fs.mkdirSync(dest);
  must('tar', ['--numeric-owner', '--xattrs', '--xattrs-include=*', '-xpf', archive, '-C', dest, ...args]);
  return dest;
}

/** Extract a view and unpack it with GNU tar; the directory holding the root file system. */
function viewTree(uni: string, view: string): string {
  const file = fresh(path.basename(view));
  mustUniso(['extract', uni, view, '-o', file]);
  if (view.startsWith('lxc/')) return path.join(untar(file), 'rootfs');
  if (view.startsWith('docker/')) {
    const x = untar(file);
    const manifest = JSON.parse(fs.readFileSync(path.join(x, 'manifest.json'), 'utf8')) as { Layers: string[] }[];
    return untar(path.join(x, manifest[0].Layers[0]));
  }
  return untar(file);
}

function viewSha(uni: string): Map<string, string> {
  const list = JSON.parse(mustUniso(['ls', '--json', uni]).stdout) as { path: string; sha256: string }[];
  return new Map(list.map((v) => [v.path, v.sha256]));
}

interface Info {
  pool: { bytes: number; blocks: number };
  trees: { name: string; entries: number }[];
  families: Record<string, string>;
  warnings: string[];
  input: { kind: string };
}
const info = (uni: string) => JSON.parse(mustUniso(['info', '--json', uni]).stdout) as Info;

/** The container views (proxmox tar.gz, lxc rootfs) equal `expected`; the other tar.gz templates are the same bytes. */
function checkBaseViews(t: tap.Test, uni: string, expected: string, opts: CompareOptions, what: string): void {
  for (const view of [PROXMOX, LXC]) {
    t.same(compareTrees(expected, viewTree(uni, view), opts), [], `${what}: ${view} extracts to the source tree`);
  }
  const sha = viewSha(uni);
  for (const v of [OPENVZ, OPENNODE, XEN]) t.equal(sha.get(v), sha.get(PROXMOX), `${what}: ${v} is the same bytes as ${PROXMOX}`);
  const v = uniso(['verify', '-q', uni]);
  t.equal(v.code, 0, `${what}: uniso verify passes ${v.stderr.trim()}`);
}

// ---- every input kind --------------------------------------------------------

const baseIso = build(fx.tree);

t.test('the fixture directory', async (t) => {
  t.equal(info(baseIso).input.kind, 'directory', 'read as a directory');
  checkBaseViews(t, baseIso, fx.tree, {}, 'directory');
  t.same(compareTrees(fx.tree, viewTree(baseIso, DOCKER), { ignore: [''] }), [], 'docker layer extracts to the source tree');
});

t.test('the fixture ISO', async (t) => {
  const uni = buildUniversal(dir);
  t.equal(info(uni).input.kind, 'iso', 'read as an ISO');
  checkBaseViews(t, uni, fx.tree, {}, 'iso');
});

for (const comp of ['gzip', 'xz', 'zstd', 'lz4', 'lzo']) {
  t.test(`squashfs (${comp})`, async (t) => {
    const sq = fresh(`root-${comp}.squashfs`);
    must('mksquashfs', [fx.tree, sq, '-comp', comp, '-noappend', '-quiet', '-no-progress', '-e', HUGE]);
    const listing = must('unsquashfs', ['-s', sq]).stdout;
    t.match(listing, new RegExp(`Compression ${comp}`), `mksquashfs used ${comp}`);
    const uni = build(sq);
    t.equal(info(uni).input.kind, 'squashfs', 'read as a squashfs image');
    checkBaseViews(t, uni, fx.tree, { ignore: [HUGE] }, `squashfs ${comp}`);
  });
}

const GNU_PAX = ['--format=posix', '--xattrs', '--xattrs-include=*', '--sparse', '--numeric-owner'];

for (const [name, args, opts] of [
  ['tar', [...GNU_PAX], {}],
  ['tar.gz', [...GNU_PAX, '--gzip'], {}],
  ['tar.xz', [...GNU_PAX, '--xz'], {}],
  ['tar.zst', [...GNU_PAX, '--zstd'], {}],
  ['tar.bz2', [...GNU_PAX, '--bzip2'], {}],
  // GNU format: old GNU sparse headers, base-256 ids, no xattrs
  ['gnu.tar', ['--format=gnu', '--sparse', '--numeric-owner'], { xattrs: false }],
] as [string, string[], CompareOptions][]) {
  t.test(`GNU tar archive (${name})`, async (t) => {
    const archive = fresh(`rootfs.${name}`);
    must('tar', [...args, '-C', fx.tree, '-cf', archive, '.']);
    t.ok(fs.statSync(archive).size < 64 << 20, 'the 9 GiB sparse file is stored sparse');
    const uni = build(archive);
    t.equal(info(uni).input.kind, 'tar', 'read as a tar archive');
    checkBaseViews(t, uni, fx.tree, opts, name);
  });
}

t.test('bsdtar pax archive', async (t) => {
  const archive = fresh('rootfs-bsdtar.tar');
  must('bsdtar', ['--format=pax', '--numeric-owner', '--xattrs', '-C', fx.tree, '-cf', archive, '.']);
  t.ok(fs.statSync(archive).size < 64 << 20, 'the 9 GiB sparse file is stored sparse');
  const uni = build(archive);
  checkBaseViews(t, uni, fx.tree, {}, 'bsdtar');
});

t.test('a socket: kept in rootfs/ by directory and squashfs input, left out of tar views with a warning', async (t) => {
  const src = fresh('tree-with-socket');
  must('cp', ['-a', '--sparse=always', fx.tree, src]);
  fs.rmSync(path.join(src, HUGE));
  must('python3', ['-c', 'import socket,sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])', path.join(src, 'var/log/app.sock')]);
  must('touch', ['-h', '-d', '2024-03-01 12:00:00 UTC', path.join(src, 'var/log/app.sock')]);
  for (const d of ['srv/data', 'var/log']) must('touch', ['-r', path.join(fx.tree, d), path.join(src, d)]);
  t.ok(fs.lstatSync(path.join(src, 'var/log/app.sock')).isSocket(), 'the source holds a socket');
  const sq = fresh('with-socket.squashfs');
  must('mksquashfs', [src, sq, '-comp', 'gzip', '-noappend', '-quiet', '-no-progress']);
  for (const [what, input] of [['directory', src], ['squashfs', sq]]) {
    const uni = build(input);
    const warnings = info(uni).warnings;
    t.ok(warnings.some((w) => /socket/.test(w)), `${what}: a warning says the socket was left out (${JSON.stringify(warnings)})`);
    const allowMissing = (rel: string) => rel === 'var/log/app.sock';
    for (const view of [PROXMOX, LXC]) {
      t.same(compareTrees(src, viewTree(uni, view), { allowMissing }), [], `${what}: ${view} equals the source but for the socket`);
    }
    const mnt = mount(t, uni);
    const st = fs.lstatSync(path.join(mnt, 'rootfs/var/log/app.sock'));
    t.ok(st.isSocket(), `${what}: rootfs/ shows the socket`);
    t.equal(st.mode & 0o7777, fs.lstatSync(path.join(src, 'var/log/app.sock')).mode & 0o7777, `${what}: with its mode`);
  }
});

// ---- --overlay and --variant ----------------------------------------------------

t.test('--overlay container=DIR and --variant xen=DIR', async (t) => {
  const FIXED = '2024-06-01 08:00:00 UTC';
  const meta = (rel: string, to: string) => {
    const st = fs.lstatSync(path.join(fx.tree, rel));
    fs.chmodSync(to, st.mode & 0o7777);
    fs.chownSync(to, st.uid, st.gid);
    must('touch', ['-h', '-r', path.join(fx.tree, rel), to]);
  };

  // the overlay: adds /etc/container-only.conf, replaces /etc/motd, deletes
  // "/srv/name with spaces.txt" (".wh." file) and /var/tmp/nobody (overlayfs
  // whiteout: a 0/0 character device). Its directories carry the base tree's
  // metadata, since an overlay directory's metadata replaces the base one's.
  const ov = fresh('overlay');
  for (const d of ['etc', 'srv', 'var/tmp']) fs.mkdirSync(path.join(ov, d), { recursive: true });
  fs.writeFileSync(path.join(ov, 'etc/motd'), 'welcome to the container\n');
  fs.writeFileSync(path.join(ov, 'etc/container-only.conf'), 'added by the container overlay\n');
  fs.chmodSync(path.join(ov, 'etc/container-only.conf'), 0o640);
  fs.writeFileSync(path.join(ov, 'srv/.wh.name with spaces.txt'), '');
  must('mknod', [path.join(ov, 'var/tmp/nobody'), 'c', '0', '0']);
  for (const f of ['etc/motd', 'etc/container-only.conf']) must('touch', ['-d', FIXED, path.join(ov, f)]);
  for (const d of ['etc', 'srv', 'var/tmp', 'var']) meta(d, path.join(ov, d));

  // what the container family should look like
  const expectC = fresh('expect-container');
  must('cp', ['-a', '--sparse=always', fx.tree, expectC]);
  fs.rmSync(path.join(expectC, 'etc/motd'));
  for (const f of ['etc/motd', 'etc/container-only.conf']) must('cp', ['-a', path.join(ov, f), path.join(expectC, f)]);
  fs.rmSync(path.join(expectC, 'srv/name with spaces.txt'));
  fs.rmSync(path.join(expectC, 'var/tmp/nobody'));
  for (const d of ['etc', 'srv', 'var/tmp']) meta(d, path.join(expectC, d));

  // the xen variant: a modified copy of the whole tree
  const xv = fresh('xen-variant');
  must('cp', ['-a', '--sparse=always', fx.tree, xv]);
  fs.writeFileSync(path.join(xv, 'etc/hostname'), 'xen-guest\n');
  fs.writeFileSync(path.join(xv, 'etc/xen-only.conf'), 'extra = "console=hvc0"\n');
  for (const f of ['etc/hostname', 'etc/xen-only.conf']) must('touch', ['-d', FIXED, path.join(xv, f)]);
  meta('etc', path.join(xv, 'etc'));

  const uni = build(fx.tree, ['--overlay', `container=${ov}`, '--variant', `xen=${xv}`]);

  t.test('container views show the overlay', async (t) => {
    for (const view of [PROXMOX, LXC]) t.same(compareTrees(expectC, viewTree(uni, view)), [], `${view} = base + overlay`);
    const sha = viewSha(uni);
    for (const v of [OPENVZ, OPENNODE]) t.equal(sha.get(v), sha.get(PROXMOX), `${v} is the same bytes as ${PROXMOX}`);
    t.not(sha.get(PROXMOX), viewSha(baseIso).get(PROXMOX), 'and differs from the base build\'s');
  });

  t.test('the xen view is the variant tree', async (t) => {
    t.same(compareTrees(xv, viewTree(uni, XEN)), [], `${XEN} = the xen variant`);
  });

  t.test('docker and rootfs/ stay the base tree', async (t) => {
    t.same(compareTrees(fx.tree, viewTree(uni, DOCKER), { ignore: [''] }), [], 'docker layer = base tree');
    t.equal(viewSha(uni).get(DOCKER), viewSha(baseIso).get(DOCKER), 'docker view is the same bytes as in the plain build');
    const read = (p: string) => uniso(['extract', uni, `rootfs/${p}`, '-o', '-']);
    for (const p of ['etc/motd', 'etc/hostname', 'srv/name with spaces.txt', 'var/tmp/nobody']) {
      const r = read(p);
      t.equal(r.code, 0, `rootfs/${p} is there`);
      t.ok(r.out.equals(fs.readFileSync(path.join(fx.tree, p))), `rootfs/${p} has the base bytes`);
    }
    for (const p of ['etc/container-only.conf', 'etc/xen-only.conf']) {
      const r = read(p);
      t.not(r.code, 0, `rootfs/${p} is not there`);
      t.match(r.stderr, /no file/, `rootfs/${p}: "no file"`);
    }
  });

  t.test('variant trees share the pool', async (t) => {
    const a = info(baseIso);
    const b = info(uni);
    t.same(b.families, { vm: 'base', container: 'overlay', xen: 'variant', openstack: 'base', docker: 'base' }, 'families');
    // the vm tree (shared by openstack) is the base tree plus the boot loader, fstab and grub.cfg
    t.same(b.trees.map((x) => x.name).sort(), ['base', 'container', 'vm', 'xen'], 'four trees');
    t.same(a.trees.map((x) => x.name).sort(), ['base', 'vm'], 'without variants: the base tree and the vm tree');
    t.equal(b.trees.find((x) => x.name === 'container')!.entries, a.trees[0].entries + 1 - 2, 'container tree: one added, two deleted');
    t.equal(b.trees.find((x) => x.name === 'xen')!.entries, a.trees[0].entries + 1, 'xen tree: one added');
    // new content: the overlay's motd and conf, the variant's hostname and conf, one block each
    t.equal(b.pool.blocks, a.pool.blocks + 4, `pool blocks ${a.pool.blocks} -> ${b.pool.blocks}: only the 4 new files`);
    t.equal(b.trees.find((x) => x.name === 'vm')!.entries, a.trees.find((x) => x.name === 'vm')!.entries, 'the same vm tree in both builds');
    t.ok(b.pool.bytes - a.pool.bytes < 4096, `pool bytes ${a.pool.bytes} -> ${b.pool.bytes}: barely grows`);
  });
});
