// The squashfs writer on trees the fixture does not have: a directory of
// 70,000 entries (its listing over 64 KiB: an extended directory inode;
// directory headers split at 256 entries and at inode metadata block
// changes), a directory whose entries' inode numbers lie more than 32767
// apart (beyond a header's signed 16-bit delta: inodes are written in number
// order, so such entries always lie in other inode blocks, and the block
// change starts their header), a 256-byte name, a file
// of pool blocks of each kind (compressed, raw, sparse, and a shorter tail).
// Checked by unsquashfs and the kernel. Plus what squashfs cannot hold: a
// 257-byte name and a device number out of range are errors naming the
// path; system.* xattrs and mtimes outside 1970..2106 are warnings.

import t from 'tap';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { PoolWriter } from '../../src/pool/writer';
import { zlibHeader } from '../../src/pool/format';
import { layoutSquashfs, writeImage } from '../../src/formats/squashfs/writer';
import { EntryType, Inode, ROOT_INO, Tree } from '../../src/tree';
import { pseudoRandom } from '../lib/fixture';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'uniso-sqw-'));
t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));

const T0 = 1_700_000_000_000_000_000n;
const base = { mode: 0o644, uid: 0, gid: 0, mtimeNs: T0, rdevMajor: 0, rdevMinor: 0, xattrs: [], sparse: false };

function file(tree: Tree, parent: number, name: string, fields: Partial<Inode> = {}): Inode {
  const i = tree.newInode({ ...base, type: EntryType.File, ...fields });
  tree.link(parent, name, i.ino);
  return i;
}

function mkdir(tree: Tree, parent: number, name: string): number {
  const d = tree.newInode({ ...base, mode: 0o755, type: EntryType.Dir });
  tree.link(parent, name, d.ino);
  return d.ino;
}

function sh(cmd: string, args: string[]): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 1 << 28 });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

t.test('big directories, far inode numbers, a 256-byte name, every kind of data block', async (t) => {
  const pool = new PoolWriter(path.join(dir, 'pool'), 6);
  const text = Buffer.from('squashfs '.repeat(20000)); // compressible: 180,000 bytes, a shorter tail
  const random = pseudoRandom(65536, 7); // incompressible: kept raw
  const w = pool.file();
  await w.write(text.subarray(0, 65536));
  await w.write(random);
  await w.skip(65536); // a sparse block
  await w.write(text.subarray(65536));
  const mixed = await w.end();
  await pool.finish();

  const tree = new Tree();
  file(tree, ROOT_INO, 'a-first');
  const wide = mkdir(tree, ROOT_INO, 'b-wide');
  for (let k = 0; k < 70000; k++) file(tree, wide, `entry-${String(k).padStart(6, '0')}`);
  file(tree, ROOT_INO, 'c-after-the-wide-dir');
  file(tree, ROOT_INO, 'L'.repeat(256));
  file(tree, ROOT_INO, 'mixed', { content: mixed, sparse: true });
  const image = layoutSquashfs(tree, pool.blocks, { name: 'test', zlibHeader: zlibHeader(6), mkfsTime: 1_700_000_000 });
  t.same(image.warnings, []);
  const out = path.join(dir, 'big.sqfs');
  const fd = fs.openSync(out, 'w');
  const poolFd = fs.openSync(pool.path, 'r');
  writeImage(image, fd, pool.blocks, (id) => {
    const b = pool.blocks[id - 1];
    const buf = Buffer.alloc(b.csize);
    fs.readSync(poolFd, buf, 0, b.csize, b.offset);
    return buf;
  });
  fs.closeSync(fd);
  fs.closeSync(poolFd);
  const kinds = new Set(Array.from(mixed.blocks, (id) => (id === 0 ? 'sparse' : pool.blocks[id - 1].flags & 1 ? 'raw' : 'compressed')));
  t.same([...kinds].sort(), ['compressed', 'raw', 'sparse'], 'the file has blocks of each kind');

  const list = sh('unsquashfs', ['-lln', out]).split('\n').filter((l) => /^[-d]/.test(l));
  t.equal(list.length, 1 + 4 + 1 + 70000, 'unsquashfs lists every entry');
  t.ok(list.some((l) => l.endsWith(`/${'L'.repeat(256)}`)), 'the 256-byte name');
  const mnt = path.join(dir, 'mnt');
  fs.mkdirSync(mnt);
  sh('mount', ['-t', 'squashfs', '-o', 'loop,ro', out, mnt]);
  t.teardown(() => { spawnSync('umount', [mnt]); });
  t.same(fs.readdirSync(mnt).sort(), ['L'.repeat(256), 'a-first', 'b-wide', 'c-after-the-wide-dir', 'mixed'], 'the kernel reads the root (entries > 32767 apart)');
  const names = fs.readdirSync(path.join(mnt, 'b-wide'));
  t.equal(names.length, 70000, 'and the 70,000-entry directory');
  t.equal(names.sort()[69999], 'entry-069999');
  t.ok(fs.statSync(path.join(mnt, 'b-wide/entry-035000')).isFile(), 'a lookup in its middle');
  const want = Buffer.concat([text.subarray(0, 65536), random, Buffer.alloc(65536), text.subarray(65536)]);
  t.ok(fs.readFileSync(path.join(mnt, 'mixed')).equals(want), 'the file reads back through the kernel');
  t.match(sh('unsquashfs', ['-s', out]), /Number of inodes 70006/);
});

t.test('what squashfs cannot hold', async (t) => {
  const tree = new Tree();
  const d = mkdir(tree, ROOT_INO, 'etc');
  file(tree, d, 'N'.repeat(257));
  t.throws(() => layoutSquashfs(tree, [], { name: 'in.tar', zlibHeader: zlibHeader(6), mkfsTime: 0 }),
    { message: `in.tar: /etc/${'N'.repeat(257)} cannot be stored in squashfs: its name is 257 bytes long (at most 256)` });

  const dev = new Tree();
  const i = dev.newInode({ ...base, type: EntryType.CharDev, rdevMajor: 4096, rdevMinor: 1 });
  dev.link(ROOT_INO, 'odd', i.ino);
  t.throws(() => layoutSquashfs(dev, [], { name: 'in.tar', zlibHeader: zlibHeader(6), mkfsTime: 0 }),
    { message: 'in.tar: /odd cannot be stored in squashfs: device 4096:1 is out of range (major <= 4095, minor <= 1048575)' });

  const warn = new Tree();
  file(warn, ROOT_INO, 'acl', { xattrs: [{ name: 'system.posix_acl_access', value: Buffer.from([2, 0, 0, 0]) }, { name: 'user.kept', value: Buffer.from('y') }] });
  file(warn, ROOT_INO, 'old', { mtimeNs: -5_000_000_000n });
  const image = layoutSquashfs(warn, [], { name: 'in.tar', zlibHeader: zlibHeader(6), mkfsTime: 0 });
  t.equal(image.warnings.length, 2);
  t.match(image.warnings[0], /left out of the squashfs \(kept in the tarball and disk views\) on 1 file\(s\): \/acl \(system\.posix_acl_access\)$/);
  t.match(image.warnings[1], /mtimes from 1970 to 2106 only; clamped .* on 1 file\(s\): \/old$/);
});
