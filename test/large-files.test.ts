// Files of 4 GiB and more (issue 14): ISO 9660 directory records hold a
// 32-bit extent length, so such a file is several directory records, the
// multi-extent flag set on all but the last (ECMA-119 9.1.6); xorriso
// (libisofs) cuts extents of 4 GiB - 2 KiB. Checked here, cheaply (sparse
// files, generated streams):
// - the ISO writer (src/iso/writer.ts) with a 4.25 GiB file in /uniso:
//   xorriso's listing and extents, bytes across the extent boundary as
//   xorriso (-extract_cut) reads them, uniso's ISO reader (one entry, its
//   extents and bytes; on a local file and on a byte-range source); the
//   kernel's isofs reads a multi-extent file in make test-large's live boot
//   (the host's kernel may have no isofs);
// - the ISO reader on hand-made records: sections joined by their ISO 9660
//   name, the Rock Ridge name on the first only;
// - the addon's spliced read of a view with an include offset past 4 GiB;
// - tar input: a dense member over 8 GiB with a GNU base-256 size field, one
//   with a pax size record (read from generated streams, no disk);
// - the tar writer's header for a member over 8 GiB (pax size, base-256
//   ustar field) as GNU tar and bsdtar list it;
// - a tree with a 5 GiB sparse file holding incompressible data past 4 GiB
//   (and across the 4 GiB mark) through build: rootfs/, the docker layer tar,
//   the lxc squashfs view and the ISO's own squashfs (unsquashfs, kernel), the
//   raw disk view's ext4 (debugfs, e2fsck, kernel), uniso verify.
// A universal ISO that is itself over 4 GiB (its squashfs a multi-extent
// file) takes minutes: `make test-large` (vm-images/large-test.sh).

import t, { Test } from 'tap';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as zlib from 'node:zlib';
import { spawn } from 'node:child_process';
import { Readable } from 'node:stream';
import { writeUniversalIso } from '../src/iso/writer';
import { IsoImage } from '../src/iso/iso9660';
import { ByteSource, FileSource } from '../src/io/source';
import { ingestTar } from '../src/ingest/tar';
import { PoolWriter } from '../src/pool/writer';
import { BlockStore, blockTableFrom } from '../src/pool/reader';
import { deflateSegmentSize, FLAG_RAW } from '../src/pool/format';
import { RecipeBuilder } from '../src/recipe/recipe';
import { RecipeReader } from '../src/recipe/reader';
import { tarHeader } from '../src/formats/tar';
import { EntryType } from '../src/tree';
import { must, mustUniso, mount, pseudoRandom, readAt, tempDir } from './lib/fixture';
import { dirRecord, iso as isoBytes, nm, rrRoot, SECTOR } from './lib/iso-bytes';

const GiB = 2 ** 30;
const MiB = 2 ** 20;
/** The longest extent libisofs writes: 4 GiB less one 2 KiB block. */
const ISO_EXTENT_MAX = 2 ** 32 - 2048;
const EPOCH = 1709294400;

/** A sparse file of `size` bytes holding `data` at the given offsets. */
function sparseFile(file: string, size: number, data: [number, Buffer][]): void {
  const fd = fs.openSync(file, 'w');
  try {
    fs.ftruncateSync(fd, size);
    for (const [off, b] of data) fs.writeSync(fd, b, 0, b.length, off);
  } finally {
    fs.closeSync(fd);
  }
}

/** A kernel mount (`args`: type and options), unmounted at teardown whatever happens. */
function kernelMount(t: Test, image: string, args: string[]): string {
  const mnt = path.join(tempDir(t, 'bigiso-kmnt-'), 'mnt');
  fs.mkdirSync(mnt);
  must('mount', [...args, image, mnt]);
  t.teardown(() => { must('umount', [mnt]); }); // (teardowns run last first: before the directory is removed)
  return mnt;
}

/** A read-only loop device over bytes [offset, offset + size) of `file`, detached at teardown. */
function loopDevice(t: Test, file: string, offset: number, size: number): string {
  const dev = must('losetup', ['-r', '-f', '--show', '-o', String(offset), '--sizelimit', String(size), file]).stdout.trim();
  t.teardown(() => { must('losetup', ['-d', dev]); });
  return dev;
}

/** xorriso's extents of a file (report_lba: each extent's first block and block count, and the file's size). */
function xorrisoExtents(iso: string, isoPath: string): { offset: number; blocks: number; fileSize: number }[] {
  const out: { offset: number; blocks: number; fileSize: number }[] = [];
  for (const l of must('xorriso', ['-indev', iso, '-find', isoPath, '-exec', 'report_lba', '--']).stdout.split('\n')) {
    const m = /^File data lba:\s*(\d+)\s*,\s*(\d+)\s*,\s*(\d+)\s*,\s*(\d+)\s*,\s*'(.*)'\s*$/.exec(l);
    if (m && m[5] === isoPath) out.push({ offset: Number(m[2]) * 2048, blocks: Number(m[3]), fileSize: Number(m[4]) });
  }
  return out;
}

t.test('the ISO writer: a 4.25 GiB file is two extents; xorriso and uniso read it', async (t) => {
  const dir = tempDir(t, 'bigiso-');
  const add = path.join(dir, 'add');
  fs.mkdirSync(add);
  const SIZE = 4 * GiB + 256 * MiB + 4321;
  // data across the first extent boundary, past 4 GiB, and the file's last bytes
  const across = pseudoRandom(3 * MiB, 7);
  const past = pseudoRandom(MiB + 17, 8);
  const tail = pseudoRandom(4321, 9);
  const data: [number, Buffer][] = [[ISO_EXTENT_MAX - MiB - 123, across], [4 * GiB + 128 * MiB + 5, past], [SIZE - 4321, tail]];
  const src = path.join(add, 'Big-File.bin');
  sparseFile(src, SIZE, data);
  fs.writeFileSync(path.join(add, 'small.txt'), 'after the big file\n');
  // xorriso writes into a FIFO, dd makes the image a sparse file: 4 GiB pass, few are stored
  const iso = path.join(dir, 'big.iso');
  const fifo = path.join(dir, 'iso.fifo');
  must('mkfifo', [fifo]);
  const dd = spawn('dd', [`if=${fifo}`, `of=${iso}`, 'bs=1M', 'iflag=fullblock', 'conv=sparse', 'status=none'], { stdio: 'ignore' });
  const ddDone = new Promise<number | null>((resolve) => dd.on('close', resolve));
  t.teardown(() => { if (dd.exitCode === null) dd.kill(); });
  await writeUniversalIso({ addDir: add, output: fifo, volumeId: 'BIGISO', epochSec: EPOCH });
  t.equal(await ddDone, 0, 'the ISO written');

  // the ranges compared: each data piece, the bytes around it, and the extent boundary itself
  const ranges: [number, number][] = [[0, 4096], [ISO_EXTENT_MAX - 4096, 8192], [4 * GiB - 10, 20], [SIZE - 8192, 8192]];
  for (const [off, b] of data) ranges.push([off - 100, Math.min(b.length + 200, SIZE - off + 100)]);

  const xt = xorrisoExtents(iso, '/uniso/Big-File.bin');
  t.equal(xt.length, 2, 'xorriso: two extents');
  t.ok(xt.every((e) => e.fileSize === SIZE), 'xorriso: the file\'s size');
  t.equal(xt[0].blocks * 2048, ISO_EXTENT_MAX, 'xorriso: the first extent is 4 GiB - 2 KiB');
  t.equal(xt[1].blocks, Math.ceil((SIZE - ISO_EXTENT_MAX) / 2048), 'xorriso: the second extent holds the rest');
  // the extents as [byte offset, bytes]: whole blocks but for the last
  const ext = xt.map((e, i): [number, number] => [e.offset, i < xt.length - 1 ? e.blocks * 2048 : SIZE - ISO_EXTENT_MAX * i]);
  t.match(must('xorriso', ['-indev', iso, '-lsl', '/uniso/Big-File.bin']).stdout, new RegExp(`\\s${SIZE}\\s.*'/uniso/Big-File.bin'`), 'xorriso -lsl: its size');

  // other readers (the kernel's isofs reads it in make test-large's live boot: this host's kernel may have no isofs)
  const cut = path.join(dir, 'cut');
  for (const [off, len] of ranges) {
    must('xorriso', ['-osirrox', 'on', '-indev', iso, '-extract_cut', '/uniso/Big-File.bin', String(off), String(len), cut]);
    t.ok(fs.readFileSync(cut).equals(readAt(src, off, len)), `xorriso -extract_cut: bytes at ${off} (+${len})`);
    fs.rmSync(cut);
  }

  // uniso's reader: on the local file, and on a plain source (byte ranges, as for an image read over HTTP)
  const file = FileSource.open(iso);
  t.teardown(() => file.close());
  const plain: ByteSource = { size: file.size, pread: (b, o) => file.pread(b, o) };
  for (const [how, s] of [['local file', file], ['byte-range source', plain]] as const) {
    const img = await IsoImage.open(s, iso);
    t.same((await img.readdir((await img.lookup('uniso'))!)).map((x) => x.name).sort(), ['Big-File.bin', 'small.txt'],
      `${how}: one entry for the file of several extents, by its Rock Ridge name`);
    const e = await img.lookup('uniso/Big-File.bin');
    t.ok(e && !e.isDir, `${how}: found`);
    t.equal(e!.size, SIZE, `${how}: its size`);
    t.same(e!.extents, ext, `${how}: the extents xorriso reports`);
    const f = img.open(e!);
    for (const [off, len] of ranges) {
      const b = Buffer.alloc(len);
      t.equal(await f.pread(b, off), len, `${how}: read at ${off}`);
      t.ok(b.equals(readAt(src, off, len)), `${how}: bytes at ${off} (+${len})`);
    }
    const small = await img.lookup('uniso/small.txt');
    t.equal(small?.size, 19, `${how}: the file after it`);
  }
});

t.test('the ISO reader: a file of several extents is the records with its ISO 9660 name; its Rock Ridge name is the first\'s', async (t) => {
  // three sections (out of block order), the Rock Ridge name on the first only, then another file
  const name = Buffer.from('BIG_FILE.BIN;1');
  const root = rrRoot(
    dirRecord(20, SECTOR, 0x80, name, nm('Big-File.bin')),
    dirRecord(22, SECTOR, 0x80, name),
    dirRecord(21, 100, 0, name),
    dirRecord(23, 5, 0, Buffer.from('OTHER.TXT;1'), nm('other.txt')));
  const bytes = isoBytes({ sectors: 24, rootDir: root });
  for (const s of [20, 21, 22]) bytes.fill(s, s * SECTOR, (s + 1) * SECTOR);
  bytes.write('hello', 23 * SECTOR, 'latin1');
  const file = path.join(tempDir(t, 'bigiso-'), 'x.iso');
  fs.writeFileSync(file, bytes);
  const src = FileSource.open(file);
  t.teardown(() => src.close());
  const img = await IsoImage.open(src, file);
  const kids = await img.readdir((await img.lookup(''))!);
  t.same(kids.map((k) => [k.name, k.size, k.extents]), [
    ['Big-File.bin', 2 * SECTOR + 100, [[20 * SECTOR, SECTOR], [22 * SECTOR, SECTOR], [21 * SECTOR, 100]]],
    ['other.txt', 5, [[23 * SECTOR, 5]]],
  ], 'one entry of three extents, in record order, then the other file');
  const b = Buffer.alloc(2 * SECTOR + 100);
  t.equal(await img.open(kids[0]).pread(b, 0), b.length, 'read whole');
  t.ok(b.equals(Buffer.concat([Buffer.alloc(SECTOR, 20), Buffer.alloc(SECTOR, 22), Buffer.alloc(100, 21)])), 'its bytes: the sections in turn');
});

t.test('the addon\'s spliced read of a view that includes bytes past 4 GiB of another (a range of a large disk)', async (t) => {
  const dir = tempDir(t, 'bigiso-');
  const pool = new PoolWriter(path.join(dir, 'pool.bin'), 6);
  const w = pool.file();
  await w.write(Buffer.concat([Buffer.from('a line of text\n'.repeat(5000)), pseudoRandom(70000, 6)]));
  const c = await w.end();
  await pool.finish();
  fs.readFileSync(pool.path); // into the page cache: the addon reads only what is cached
  const src = FileSource.open(pool.path);
  t.teardown(() => src.close());
  const disk = new RecipeBuilder(); // 6 GiB, a few bytes past 5 GiB
  disk.zero(5 * GiB);
  disk.literal(Buffer.from('past 5 GiB'));
  disk.zero(GiB);
  const sub = disk.build();
  const rb = new RecipeBuilder();
  rb.literal(Buffer.from('<head>'));
  for (const id of c.blocks) rb.deflate(id, deflateSegmentSize(pool.blocks[id - 1]));
  rb.include(sub, 5 * GiB - 3, 5 * GiB + 13);
  rb.literal(Buffer.from('<end>'));
  const r = rb.build();
  const store = () => new BlockStore(src, blockTableFrom(pool.blocks, src.size));
  const expected = Buffer.alloc(r.size);
  t.equal(await new RecipeReader(r, store(), { nativeSplice: false }).pread(expected, 0), r.size, 'JavaScript path');
  t.ok(expected.includes(Buffer.from('\0\0\0past 5 GiB\0\0\0<end>')), 'the included bytes');
  const splice = store().nativeSplicer(r);
  t.ok(splice, 'the addon takes the view (was: none for a view with an offset past 4 GiB anywhere)');
  const incAt = r.size - 16 - 5;
  const head = Buffer.alloc(incAt);
  t.equal(splice!(head, 0), incAt, 'a read before the include: the addon\'s');
  t.ok(head.equals(expected.subarray(0, incAt)), 'its bytes');
  t.equal(splice!(Buffer.alloc(30), incAt - 10), -1, 'a read touching the include: left to the JavaScript path');
  const viaReader = Buffer.alloc(r.size);
  t.equal(await new RecipeReader(r, store()).pread(viaReader, 0), r.size, 'RecipeReader with the addon');
  t.ok(viaReader.equals(expected), 'the same bytes');
});

/** The stored bytes of a pool block, inflated. */
function blockBytes(pool: PoolWriter, id: number): Buffer {
  const info = pool.blocks[id - 1];
  const stored = Buffer.alloc(info.csize);
  const fd = fs.openSync(pool.path, 'r');
  try {
    fs.readSync(fd, stored, 0, info.csize, info.offset);
  } finally {
    fs.closeSync(fd);
  }
  return info.flags & FLAG_RAW ? stored : zlib.inflateRawSync(stored, { finishFlush: zlib.constants.Z_SYNC_FLUSH });
}

/** A GNU/ustar header block; the size as GNU base-256 when `base256`, else left to `pax`. */
function rawTarHeader(name: string, type: string, size: number, base256: boolean): Buffer {
  const b = Buffer.alloc(512);
  b.write(name, 0, 'latin1');
  b.write('0000644\0', 100, 'latin1');
  b.write('0000000\0', 108, 'latin1');
  b.write('0000000\0', 116, 'latin1');
  if (base256) {
    let v = BigInt(size);
    for (let i = 11; i >= 1; i--) { b[124 + i] = Number(v & 0xffn); v >>= 8n; }
    b[124] = 0x80;
  } else {
    b.write(`${Math.min(size, 0o77777777777).toString(8).padStart(11, '0')}\0`, 124, 'latin1');
  }
  b.write('14000000000\0', 136, 'latin1');
  b.write(type, 156, 'latin1');
  b.write(base256 ? 'ustar  \0' : 'ustar\x0000', 257, 'latin1');
  b.fill(0x20, 148, 156);
  let sum = 0;
  for (const x of b) sum += x;
  b.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'latin1');
  return b;
}

/** A tar archive as a stream: `head`, then `size` data bytes (zeros but `marks`), padding, the end. */
async function* tarStream(head: Buffer[], size: number, marks: [number, Buffer][]): AsyncGenerator<Buffer> {
  for (const h of head) yield h;
  const zeros = Buffer.alloc(4 * MiB);
  let pos = 0;
  for (const [off, b] of [...marks, [size, Buffer.alloc(0)] as [number, Buffer]]) {
    for (; pos < off;) {
      const n = Math.min(zeros.length, off - pos);
      yield zeros.subarray(0, n);
      pos += n;
    }
    if (b.length) yield b;
    pos += b.length;
  }
  yield Buffer.alloc((512 - (size % 512)) % 512 + 1024);
}

t.test('tar input: dense members over 8 GiB (GNU base-256 size, pax size) keep their bytes past 4 and 8 GiB', async (t) => {
  const SIZE = 8 * GiB + 65536 + 99;
  const marks: [number, Buffer][] = [[4 * GiB - 5, pseudoRandom(70000, 1)], [8 * GiB + 3, pseudoRandom(65536 + 50, 2)]];
  const pax = (key: string, v: string) => {
    const body = ` ${key}=${v}\n`;
    let len = body.length + 2;
    while (String(len).length + body.length !== len) len++;
    return `${len}${body}`;
  };
  const paxData = Buffer.from(pax('size', String(SIZE)));
  const cases: [string, Buffer[]][] = [
    ['GNU base-256 size', [rawTarHeader('big.bin', '0', SIZE, true)]],
    ['pax size', [rawTarHeader('PaxHeaders/big.bin', 'x', paxData.length, false), Buffer.concat([paxData, Buffer.alloc(512 - paxData.length)]),
      rawTarHeader('big.bin', '0', SIZE, false)]],
  ];
  for (const [how, head] of cases) {
    const pool = new PoolWriter(path.join(tempDir(t, 'bigiso-'), 'pool.bin'), 1);
    try {
      const { tree } = await ingestTar(Readable.from(tarStream(head, SIZE, marks)), `${how}.tar`, pool);
      await pool.settle();
      const ino = tree.lookup('big.bin');
      t.equal(ino?.type, EntryType.File, `${how}: a file`);
      const c = ino!.content!;
      t.equal(c.size, SIZE, `${how}: its size`);
      t.equal(c.blocks.length, Math.ceil(SIZE / 65536), `${how}: one block id per 64 KiB`);
      // every block holding marked bytes, rebuilt from the pool and compared
      for (const [off, b] of marks) {
        for (let k = Math.floor(off / 65536); k * 65536 < off + b.length; k++) {
          const at = k * 65536;
          const want = Buffer.alloc(Math.min(65536, SIZE - at));
          for (const [o2, b2] of marks) {
            const from = Math.max(at, o2);
            const to = Math.min(at + want.length, o2 + b2.length);
            if (from < to) b2.copy(want, from - at, from - o2, to - o2);
          }
          t.not(c.blocks[k], 0, `${how}: block ${k} (at ${k * 65536}) is data`);
          t.ok(blockBytes(pool, c.blocks[k]).equals(want), `${how}: block ${k} (at ${k * 65536}) holds its bytes`);
        }
      }
      t.equal(c.blocks.filter((id) => id !== 0).length, 5, `${how}: the other blocks are holes`);
    } finally {
      await pool.finish();
    }
  }
});

t.test('tar writer: a member over 8 GiB gets a pax size record and a base-256 size field; GNU tar and bsdtar list it', async (t) => {
  const dir = tempDir(t, 'bigiso-');
  const SIZE = 9 * GiB + 12345;
  const h = tarHeader({ path: 'big.bin', type: '0', mode: 0o644, uid: 0, gid: 0, size: SIZE, mtimeSec: BigInt(EPOCH) });
  t.match(h.toString('latin1'), new RegExp(` size=${SIZE}\n`), 'a pax size record');
  const main = h.subarray(h.length - 512);
  t.equal(main[124], 0x80, 'the ustar size field is base-256');
  // the archive: the big member (its data a hole), then a small one, which readers find only by the big one's size
  const after = tarHeader({ path: 'after.txt', type: '0', mode: 0o644, uid: 0, gid: 0, size: 6, mtimeSec: BigInt(EPOCH) });
  const archive = path.join(dir, 'big.tar');
  const next = h.length + SIZE + ((512 - (SIZE % 512)) % 512);
  sparseFile(archive, next + 512 + 512 + 1024, [[0, h], [next, after], [next + 512, Buffer.from('after\n')]]);
  const env = { ...process.env, TZ: 'UTC' };
  t.match(must('tar', ['--numeric-owner', '-tvf', archive], { env }).stdout,
    new RegExp(`^-rw-r--r-- 0/0 +${SIZE} 2024-03-01 12:00 big\\.bin\\n-rw-r--r-- 0/0 +6 2024-03-01 12:00 after\\.txt\\n$`), 'GNU tar lists its size and the member after it');
  t.match(must('bsdtar', ['-tvf', archive], { env }).stdout, new RegExp(`\\s${SIZE}\\s.*big\\.bin\\n.*\\s6\\s.*after\\.txt\\n$`), 'bsdtar lists its size and the member after it');
});

t.test('a 5 GiB sparse file with incompressible data past 4 GiB: build, mount, every kind of view', async (t) => {
  const dir = tempDir(t, 'bigiso-');
  const tree = path.join(dir, 'tree');
  fs.mkdirSync(path.join(tree, 'srv'), { recursive: true });
  fs.mkdirSync(path.join(tree, 'etc'));
  fs.writeFileSync(path.join(tree, 'etc', 'hostname'), 'big\n');
  const SIZE = 5 * GiB + 999;
  const data: [number, Buffer][] = [[4 * GiB - 3 * 65536 - 11, pseudoRandom(6 * 65536, 3)], [4.5 * GiB + 77, pseudoRandom(2 * MiB, 4)], [SIZE - 999, pseudoRandom(999, 5)]];
  const src = path.join(tree, 'srv', 'big.img');
  sparseFile(src, SIZE, data);
  const ranges: [number, number][] = [[0, 4096], ...data.map(([o, b]): [number, number] => [o - 50, Math.min(b.length + 100, SIZE - o + 50)])];
  const uni = path.join(dir, 'big-universal.iso');
  mustUniso(['build', tree, '-o', uni, '-q', '--name', 'turnkey-big-1.0-bookworm-amd64', '--disk-size', '8G', '--formats', 'raw,docker,lxc']);
  const sameRanges = (file: string, how: string) => {
    for (const [off, len] of ranges) t.ok(readAt(file, off, len).equals(readAt(src, off, len)), `${how}: bytes at ${off} (+${len})`);
  };
  const mnt = mount(t, uni);

  t.test('rootfs/', async (t) => {
    const f = path.join(mnt, 'rootfs', 'srv', 'big.img');
    t.equal(fs.statSync(f).size, SIZE, 'its size');
    sameRanges(f, 'rootfs/');
  });

  t.test('the docker layer tar', async (t) => {
    const docker = path.join(mnt, 'docker', 'turnkey-big-1.0-bookworm-amd64-docker.tar');
    const layer = must('tar', ['-tvf', docker]).stdout.trim().split('\n').map((l) => l.trim().split(/\s+/))
      .sort((a, b) => Number(b[2]) - Number(a[2]))[0][5];
    const sh = (cmd: string) => must('sh', ['-c', cmd, 'sh', docker, layer]).stdout;
    t.match(sh('tar -xOf "$1" "$2" | tar -tvf - srv/big.img'), new RegExp(`\\s${SIZE}\\s.*srv/big\\.img\\n$`), 'tar -tv: its size');
    // extracted (GNU tar makes the sparse member a sparse file): its size and bytes
    const x = path.join(dir, 'x');
    fs.mkdirSync(x);
    must('sh', ['-c', 'tar -xOf "$1" "$2" | tar -xf - -C "$3" srv/big.img', 'sh', docker, layer, x]);
    const f = path.join(x, 'srv', 'big.img');
    t.equal(fs.statSync(f).size, SIZE, 'extracted: its size');
    sameRanges(f, 'extracted');
  });

  t.test('the squashfs views: lxc rootfs, the ISO\'s own squashfs', async (t) => {
    const lxc = path.join(mnt, 'lxc', 'turnkey-big-1.0-bookworm-amd64-incus-rootfs.squashfs');
    const own = path.join(dir, 'rootfs.squashfs');
    must('xorriso', ['-osirrox', 'on', '-indev', uni, '-extract', '/uniso/rootfs.squashfs', own]);
    for (const [how, sq] of [['lxc view', lxc], ['the ISO\'s squashfs', own]]) {
      t.match(must('unsquashfs', ['-lls', sq, 'srv/big.img']).stdout, new RegExp(`\\s${SIZE}\\s.*srv/big\\.img\\n`), `${how}: unsquashfs -lls: its size`);
      const m = kernelMount(t, sq, ['-t', 'squashfs', '-o', 'loop,ro']);
      const f = path.join(m, 'srv', 'big.img');
      t.equal(fs.statSync(f).size, SIZE, `${how}: kernel: its size`);
      sameRanges(f, `${how}: kernel`);
    }
  });

  t.test('the raw disk view\'s ext4', async (t) => {
    const raw = path.join(mnt, 'raw', 'turnkey-big-1.0-bookworm-amd64.img');
    const p = (JSON.parse(must('sfdisk', ['--json', raw]).stdout) as { partitiontable: { partitions: { start: number; size: number; name?: string }[] } })
      .partitiontable.partitions.find((x) => x.name === 'root')!;
    const part = loopDevice(t, raw, p.start * 512, p.size * 512);
    must('e2fsck', ['-fn', part]);
    t.pass('e2fsck -fn: clean');
    t.match(must('debugfs', ['-R', 'stat /srv/big.img', part]).stdout, new RegExp(`Size: ${SIZE}\\n`), 'debugfs stat: its size');
    const m = kernelMount(t, part, ['-t', 'ext4', '-o', 'ro,noload']);
    const f = path.join(m, 'srv', 'big.img');
    t.equal(fs.statSync(f).size, SIZE, 'kernel ext4: its size');
    sameRanges(f, 'kernel ext4');
  });

  t.test('uniso verify', async (t) => {
    t.match(mustUniso(['verify', uni]).stderr, /verified/, 'every block and view checksum');
  });
});
