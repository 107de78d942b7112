// The FAT32 writer (src/formats/fat) on its own: file sets of pool-backed
// files (several blocks, a hole, a shorter tail), in-memory files, nested
// directories, long and lower-case names and directories spanning many
// clusters, laid out for partitions of 62, 126 and 300 MiB. Each image is
// materialized here (literals + the fake pool blocks' bytes, zeros
// elsewhere) and checked by dosfstools (fsck.fat -n must find nothing) and by
// mtools (listing and extracting every file, compared byte for byte, with its
// mtime), blkid and file(1) for the type, label and volume id. Also: pool
// blocks only at 64 KiB-aligned offsets, literals sorted and without zero
// sectors, same input -> same image, and the sizes and inputs FAT32 cannot
// take are FatErrors.

import t, { Test } from 'tap';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { buildFat32, FatError, FatFile, FatImage, FatOptions } from '../../src/formats/fat/image';
import { fatGeometry } from '../../src/formats/fat/geometry';
import { Content, BLOCK_SIZE } from '../../src/tree';
import { must, pseudoRandom, run, tempDir } from '../lib/fixture';

const MiB = 1024 * 1024;
const T0 = 1_700_000_000_123_456_789n; // 2023-11-14 22:13:20.123 UTC
const ENV = { ...process.env, TZ: 'UTC', LANG: 'C.UTF-8', LC_ALL: 'C.UTF-8', MTOOLS_SKIP_CHECK: '0' };

/** A fake pool: block ids -> bytes, and Contents made of them (hole blocks where asked). */
class FakePool {
  readonly blocks = new Map<number, Buffer>();
  private nextId = 1;
  private nextContent = 1;

  content(bytes: Buffer, holes: number[] = []): Content {
    const n = Math.ceil(bytes.length / BLOCK_SIZE);
    const ids = new Uint32Array(n);
    for (let i = 0; i < n; i++) {
      const part = bytes.subarray(i * BLOCK_SIZE, (i + 1) * BLOCK_SIZE);
      if (holes.includes(i)) {
        part.fill(0); // the file reads as zeros there
        continue;
      }
      ids[i] = this.nextId++;
      this.blocks.set(ids[i], Buffer.from(part));
    }
    return { id: this.nextContent++, size: bytes.length, blocks: ids };
  }
}

interface Expected {
  path: string;
  bytes: Buffer;
  mtimeNs: bigint;
}

function materialize(img: FatImage, pool: FakePool, file: string): void {
  const fd = fs.openSync(file, 'w');
  try {
    fs.ftruncateSync(fd, img.bytes);
    for (const l of img.literals) fs.writeSync(fd, l.data, 0, l.data.length, l.offset);
    for (const d of img.data) {
      const b = pool.blocks.get(d.id)!;
      if (b.length !== d.len) throw new Error(`block ${d.id}: ${b.length} bytes, placed with len ${d.len}`);
      fs.writeSync(fd, b, 0, d.len, d.offset);
    }
  } finally {
    fs.closeSync(fd);
  }
}

function checkPieces(t: Test, img: FatImage, bytes: number): void {
  t.equal(img.bytes, bytes, 'image size is the partition size');
  t.ok(img.data.every((d) => d.offset % BLOCK_SIZE === 0), 'every pool block starts on a 64 KiB boundary');
  t.ok(img.data.every((d) => d.len > 0 && d.len <= BLOCK_SIZE), 'pool block lengths within 1..65536');
  const spans = [...img.literals.map((l) => [l.offset, l.offset + l.data.length]), ...img.data.map((d) => [d.offset, d.offset + d.len])]
    .sort((a, b) => a[0] - b[0]);
  let overlap = false;
  for (let i = 1; i < spans.length; i++) if (spans[i][0] < spans[i - 1][1]) overlap = true;
  t.notOk(overlap, 'literals and pool blocks do not overlap');
  t.ok(spans.every(([, e]) => e <= bytes), 'everything within the partition');
  t.ok(img.literals.every((l, i) => i === 0 || img.literals[i - 1].offset + img.literals[i - 1].data.length < l.offset),
    'literals sorted, runs merged');
  let zeroSector = false;
  for (const l of img.literals) {
    for (let i = 0; i < l.data.length; i += 512) if (l.data.subarray(i, i + 512).every((b) => b === 0)) zeroSector = true;
  }
  t.notOk(zeroSector, 'no all-zero sector in the literals');
  t.ok(img.data.every((d, i) => i === 0 || img.data[i - 1].offset < d.offset), 'pool blocks sorted');
}

function walk(dir: string, rel = ''): string[] {
  const out: string[] = [];
  for (const n of fs.readdirSync(path.join(dir, rel)).sort()) {
    const r = rel ? `${rel}/${n}` : n;
    out.push(r);
    if (fs.statSync(path.join(dir, r)).isDirectory()) out.push(...walk(dir, r));
  }
  return out;
}

function impliedDirs(paths: string[]): string[] {
  const s = new Set<string>();
  for (const p of paths) {
    const parts = p.split('/');
    for (let i = 1; i < parts.length; i++) s.add(parts.slice(0, i).join('/'));
  }
  return [...s];
}

/** Builds, materializes and checks one image with dosfstools, mtools, blkid and file(1). */
function checkImage(t: Test, name: string, files: FatFile[], pool: FakePool, expected: Expected[], o: FatOptions,
  geo: { clusterBytes: number }): void {
  const dir = tempDir(t, 'uniso-fat-');
  const img = buildFat32(files, o);
  checkPieces(t, img, o.partitionBytes);
  const file = path.join(dir, `${name}.img`);
  materialize(img, pool, file);

  const fsck = run('fsck.fat', ['-n', '-V', file]);
  t.equal(fsck.code, 0, `fsck.fat -n -V exits 0: ${fsck.stdout}${fsck.stderr}`);
  const lines = fsck.stdout.trim().split('\n').filter((l) => !/^fsck\.fat \d/.test(l) && !/^Starting (check|verification)|^Checking/.test(l));
  // fsck.fat counts directories and the volume label too
  const entries = expected.length + impliedDirs(expected.map((e) => e.path)).length + (o.label ? 1 : 0);
  t.match(lines.join('\n'), new RegExp(`^${file.replace(/[.]/g, '\\.')}: ${entries} files, \\d+/\\d+ clusters$`),
    'fsck.fat reports nothing but the summary');
  const verbose = must('fsck.fat', ['-n', '-v', file]).stdout;
  t.match(verbose, /2 FATs, 32 bit entries/, 'fsck.fat -v: FAT32');
  t.match(verbose, new RegExp(`\\b${geo.clusterBytes} bytes per cluster`), `fsck.fat -v: ${geo.clusterBytes}-byte clusters`);
  t.match(verbose, /Media byte 0xf8/, 'media 0xF8');
  const dataStart = Number(/Data area starts at byte (\d+)/.exec(verbose)![1]);
  t.equal(dataStart % BLOCK_SIZE, 0, `data area at ${dataStart}: 64 KiB-aligned`);

  // mtools: the listing and every file's bytes and mtime
  const listing = must('mdir', ['-i', file, '-/', '-b', '::/'], { env: ENV }).stdout.trim().split('\n')
    .map((l) => l.replace(/^::\//, '').replace(/\/$/, '')).sort();
  const want = [...expected.map((e) => e.path), ...impliedDirs(expected.map((e) => e.path))].sort();
  t.same(listing, want, 'mdir lists every file and directory, long names as given');
  const labelOut = must('mlabel', ['-i', file, '-s', '::'], { env: ENV }).stdout;
  t.match(labelOut, o.label ? new RegExp(`Volume label is ${o.label}\\b`) : /has no label/, 'mlabel shows the label');
  const out = path.join(dir, 'out');
  fs.mkdirSync(out);
  must('mcopy', ['-i', file, '-s', '-n', '-m', '::/*', out], { env: ENV });
  t.same(walk(out), want, 'mcopy -s extracts the same tree');
  let same = 0;
  for (const e of expected) {
    const got = fs.readFileSync(path.join(out, e.path));
    if (got.equals(e.bytes)) same++;
    else t.fail(`${e.path}: ${got.length} bytes differ from the ${e.bytes.length} expected`);
    const m = fs.statSync(path.join(out, e.path)).mtimeMs;
    const sec = e.mtimeNs < 315532800n * 1_000_000_000n ? 315532800 : Number(e.mtimeNs / 1_000_000_000n) & ~1; // DOS: 2 s, from 1980
    t.equal(m, sec * 1000, `${e.path}: mtime`);
  }
  t.equal(same, expected.length, 'every file byte for byte');

  // blkid and file(1): vfat, the label, the volume id
  const uuid = `${(o.volumeId >>> 16).toString(16).padStart(4, '0')}-${(o.volumeId & 0xffff).toString(16).padStart(4, '0')}`.toUpperCase();
  const blkid = must('blkid', ['-p', '-o', 'export', file]).stdout;
  t.match(blkid, /^TYPE=vfat$/m, 'blkid: vfat');
  t.match(blkid, /^VERSION=FAT32$/m, 'blkid: FAT32');
  t.match(blkid, new RegExp(`^UUID=${uuid}$`, 'm'), `blkid: volume id ${uuid}`);
  const label = must('blkid', ['-p', '-o', 'value', '-s', 'LABEL', file]).stdout.replace(/\n$/, '');
  t.equal(label, o.label, `blkid: label '${o.label}'`);
  const fileOut = must('file', ['-s', file]).stdout;
  t.match(fileOut, /FAT \(32 bit\)/, 'file -s: FAT (32 bit)');
  t.match(fileOut, new RegExp(`serial number 0x${o.volumeId.toString(16)},`), 'file -s: serial number');

  // reproducible
  const again = buildFat32(files, o);
  t.ok(sameImage(img, again), 'same input twice: identical image');
}

function sameImage(a: FatImage, b: FatImage): boolean {
  return a.bytes === b.bytes && a.literals.length === b.literals.length && a.data.length === b.data.length
    && a.literals.every((l, i) => l.offset === b.literals[i].offset && l.data.equals(b.literals[i].data))
    && a.data.every((d, i) => d.offset === b.data[i].offset && d.id === b.data[i].id && d.len === b.data[i].len);
}

/** Adds a file both to the input and to what must come out. */
function add(files: FatFile[], expected: Expected[], p: string, bytes: Buffer, content: Content | Buffer, mtimeNs = T0): void {
  files.push({ path: p, content, mtimeNs });
  expected.push({ path: p, bytes, mtimeNs });
}

t.test('62 MiB ESP: pool files with a hole and a tail, small files, nested dirs, long and lower-case names', async (t) => {
  const pool = new FakePool();
  const files: FatFile[] = [];
  const expected: Expected[] = [];
  const loader = pseudoRandom(3 * BLOCK_SIZE + 12345, 1);
  add(files, expected, 'EFI/BOOT/BOOTX64.EFI', loader, pool.content(loader, [1])); // 4 blocks, the 2nd a hole, a short tail
  const grub = Buffer.from('search --label root\nconfigfile /boot/grub/grub.cfg\n');
  add(files, expected, 'EFI/BOOT/grub.cfg', grub, grub); // lower-case 8.3: no long name
  const shim = pseudoRandom(2 * BLOCK_SIZE, 2); // exactly two blocks
  add(files, expected, 'EFI/debian/shimx64.efi', shim, pool.content(shim));
  const one = pseudoRandom(1000, 3);
  add(files, expected, 'EFI/debian/A Long File Name With Spaces.txt', one, one, 0n); // 1970: clamps to 1980
  const two = pseudoRandom(777, 4);
  add(files, expected, 'EFI/debian/A Long File Name With Spaces 2.txt', two, two, T0 + 1_000_000_000n); // same alias base, odd second
  const deep = pseudoRandom(BLOCK_SIZE - 1, 5);
  add(files, expected, 'EFI/Ünïcode dir/deep/deeper/file.bin', deep, pool.content(deep));
  add(files, expected, 'EMPTY.TXT', Buffer.alloc(0), Buffer.alloc(0));
  const mixed = Buffer.from('MixedCase\n');
  add(files, expected, 'MixedCase.Cfg', mixed, mixed);
  const dotted = Buffer.from('dots\n');
  add(files, expected, '.hidden.config.d', dotted, dotted);
  const zeros = Buffer.alloc(5000);
  add(files, expected, 'zeros.bin', zeros, zeros); // all zeros: no literal, still its clusters
  for (let i = 0; i < 300; i++) { // a directory of many clusters (16 entries per 512-byte cluster)
    const b = Buffer.from(`file ${i}\n`);
    add(files, expected, `many/entry-number-${String(i).padStart(3, '0')}.txt`, b, b);
  }
  const o: FatOptions = { partitionBytes: 62 * MiB, volumeId: 0x1234abcd, label: 'EFI', timeNs: T0 };
  const geo = fatGeometry(o.partitionBytes);
  t.equal(geo.clusterBytes, 512, '512-byte clusters');
  t.equal(geo.dataStart % BLOCK_SIZE, 0, 'data start aligned');
  checkImage(t, 'esp62', files, pool, expected, o, geo);
  const img = buildFat32(files, o);
  t.equal(img.data.length, 3 + 2 + 1, 'pool blocks placed: 3 of the loader (one hole), 2 of shim, 1 of file.bin');
  t.notOk(img.literals.some((l) => l.data.includes(loader.subarray(0, 64))), 'pool file bytes are not literals');
});

t.test('126 MiB ESP: a 40 MiB pool file, no label', async (t) => {
  const pool = new FakePool();
  const files: FatFile[] = [];
  const expected: Expected[] = [];
  const big = pseudoRandom(40 * MiB + 100, 9);
  add(files, expected, 'big/kernel.img', big, pool.content(big, [7, 8, 300]));
  const small = Buffer.from('small\n');
  add(files, expected, 'big/small', small, small);
  const o: FatOptions = { partitionBytes: 126 * MiB, volumeId: 0xdeadbeef, label: '', timeNs: T0 };
  const geo = fatGeometry(o.partitionBytes);
  t.equal(geo.clusterBytes, 512, '512-byte clusters');
  checkImage(t, 'esp126', files, pool, expected, o, geo);
});

t.test('300 MiB: 4 KiB clusters', async (t) => {
  const pool = new FakePool();
  const files: FatFile[] = [];
  const expected: Expected[] = [];
  for (let i = 0; i < 5; i++) {
    const b = pseudoRandom(i * 70000 + 3, 20 + i);
    add(files, expected, `EFI/Vendor${i}/image${i}.efi`, b, pool.content(b));
  }
  const o: FatOptions = { partitionBytes: 300 * MiB, volumeId: 7, label: 'ESP 2', timeNs: T0 };
  const geo = fatGeometry(o.partitionBytes);
  t.equal(geo.clusterBytes, 4096, '4 KiB clusters');
  checkImage(t, 'esp300', files, pool, expected, o, geo);
});

t.test('the geometry of the ESP sizes', async (t) => {
  for (const mib of [33, 62, 100, 126, 127, 259, 261, 1024]) {
    const g = fatGeometry(mib * MiB);
    t.ok(g.clusters >= 65525, `${mib} MiB: ${g.clusters} clusters of ${g.clusterBytes} B, FAT ${g.fatSz} sectors, data at ${g.dataStart}`);
    t.equal(g.dataStart % BLOCK_SIZE, 0, `${mib} MiB: data start aligned`);
    t.ok(g.fatSz * 128 >= g.clusters + 2, `${mib} MiB: the FAT maps every cluster`);
    t.ok(g.rsvdSecCnt >= 32 && g.rsvdSecCnt < 32 + 128, `${mib} MiB: ${g.rsvdSecCnt} reserved sectors`);
  }
});

t.test('what FAT32 cannot hold is a FatError', async (t) => {
  const o: FatOptions = { partitionBytes: 62 * MiB, volumeId: 1, label: 'EFI', timeNs: T0 };
  const b = Buffer.from('x');
  t.throws(() => buildFat32([], { ...o, partitionBytes: 20 * MiB }), FatError, '20 MiB is too small');
  t.throws(() => buildFat32([], { ...o, partitionBytes: 32 * MiB }), FatError, '32 MiB is too small');
  t.throws(() => buildFat32([], { ...o, partitionBytes: 62 * MiB + 100 }), FatError, 'not a multiple of 512');
  t.throws(() => buildFat32([], { ...o, partitionBytes: 0 }), FatError, 'zero');
  const pool = new FakePool();
  const huge = { id: 1, size: 70 * MiB, blocks: new Uint32Array(70 * 16) }; // all holes: no bytes needed
  t.throws(() => buildFat32([{ path: 'huge', content: huge, mtimeNs: T0 }], o), /do not fit/, 'files larger than the partition');
  t.throws(() => buildFat32([{ path: 'huge', content: huge, mtimeNs: T0 }], o), FatError);
  const half = pool.content(Buffer.alloc(31 * MiB));
  t.throws(() => buildFat32([{ path: 'a', content: half, mtimeNs: T0 }, { path: 'b', content: half, mtimeNs: T0 }], o), FatError,
    'two files that do not fit together');
  t.throws(() => buildFat32([], { ...o, label: 'TOO LONG LABEL' }), FatError, 'label over 11 characters');
  t.throws(() => buildFat32([], { ...o, label: 'efi' }), FatError, 'lower-case label');
  t.throws(() => buildFat32([{ path: 'A.TXT', content: b, mtimeNs: T0 }, { path: 'a.txt', content: b, mtimeNs: T0 }], o), FatError,
    'names equal but for case');
  t.throws(() => buildFat32([{ path: 'a', content: b, mtimeNs: T0 }, { path: 'a/b', content: b, mtimeNs: T0 }], o), FatError,
    'a file used as a directory');
  t.throws(() => buildFat32([{ path: 'a?b', content: b, mtimeNs: T0 }], o), FatError, 'a reserved character');
  t.throws(() => buildFat32([{ path: 'a//b', content: b, mtimeNs: T0 }], o), FatError, 'an empty path component');
  t.throws(() => buildFat32([{ path: 'x'.repeat(256), content: b, mtimeNs: T0 }], o), FatError, 'a 256-character name');
  t.throws(() => buildFat32([], { ...o, volumeId: 2 ** 32 }), FatError, 'volume id over 32 bits');
});
