// Findings of `make fuzz` (fuzz/), each as a small crafted input: the
// readers refuse it with a one-line UserError, quickly, without sizing a
// buffer from the damaged length field (the inputs are tiny; before the
// fixes these threw RangeErrors or plain Errors, or allocated gigabytes).

import t, { Test } from 'tap';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import { FileSource } from '../src/io/source';
import { IsoImage } from '../src/iso/iso9660';
import { ingest } from '../src/ingest/index';
import { ingestTar } from '../src/ingest/tar';
import { PoolWriter } from '../src/pool/writer';
import { tempDir, must } from './lib/fixture';
import { ce, dirRecord, iso, rrRoot, SECTOR } from './lib/iso-bytes';

// No buffer over 256 MiB while these run: the damaged length fields below
// must be refused before they size one (Buffer.alloc of 4 GiB "works").
const CAP = 256 * 2 ** 20;
const real = { alloc: Buffer.alloc, allocUnsafe: Buffer.allocUnsafe, allocUnsafeSlow: Buffer.allocUnsafeSlow };
for (const k of Object.keys(real) as (keyof typeof real)[]) {
  const f = real[k] as (size: number, ...rest: unknown[]) => Buffer;
  (Buffer as unknown as Record<string, unknown>)[k] = (size: number, ...rest: unknown[]) => {
    if (size > CAP) throw new RangeError(`test cap: a buffer of ${size} bytes`);
    return f.call(Buffer, size, ...rest);
  };
}
t.teardown(() => Object.assign(Buffer, real));

async function openIso(t: Test, bytes: Buffer): Promise<{ img: IsoImage; file: string }> {
  const file = path.join(tempDir(t), 'x.iso');
  fs.writeFileSync(file, bytes);
  const src = FileSource.open(file);
  t.teardown(() => src.close());
  return { img: await IsoImage.open(src, file), file };
}

t.test('ISO: a volume descriptor set cut short is refused (was: a plain short-read Error)', async (t) => {
  const bytes = iso({ sectors: 18, terminator: false }); // PVD at 16, a supplementary VD at 17, then the end
  bytes[17 * SECTOR] = 2;
  bytes.write('CD001', 17 * SECTOR + 1, 'latin1');
  const file = path.join(tempDir(t), 'x.iso');
  fs.writeFileSync(file, bytes);
  const src = FileSource.open(file);
  t.teardown(() => src.close());
  await t.rejects(IsoImage.open(src, file), { name: 'UserError', message: /not an ISO 9660 image/ });
});

t.test('ISO: a directory of 4 GiB in a small image is refused before a buffer is sized by it', async (t) => {
  const { img } = await openIso(t, iso({ rootSize: 0xfffff800, rootDir: rrRoot() }));
  await t.rejects(img.lookup('etc'), { name: 'UserError', message: /beyond the end of the image/ });
});

t.test('ISO: Rock Ridge CE entries too short, or with an area beyond its block or the image, are refused', async (t) => {
  const child = (su: Buffer) => dirRecord(19, 0, 0, Buffer.from('A.;1'), su);
  for (const [what, entry] of [
    ['CE of 4 bytes (was: RangeError)', ce(0, 0, 0, 4)],
    ['CE area of 4 GiB (was: a 4 GiB allocation)', ce(19, 0, 0xffffffff)],
    ['CE area past its block', ce(19, 2000, 100)],
    ['CE area past the image', ce(5000, 0, 10)],
  ] as [string, Buffer][]) {
    const { img } = await openIso(t, iso({ rootDir: rrRoot(child(entry)) }));
    await t.rejects(img.lookup('a'), { name: 'UserError', message: /damaged Rock Ridge continuation entry/ }, what);
  }
  // a sound CE is still followed: the NM name lives in the continuation area
  const bytes = iso({ rootDir: rrRoot(child(ce(19, 16, 9))) });
  Buffer.from([0x4e, 0x4d, 9, 1, 0, 0x6e, 0x61, 0x6d, 0x65]).copy(bytes, 19 * SECTOR + 16); // NM "name"
  const { img } = await openIso(t, bytes);
  t.ok(await img.lookup('name'), 'the name from the CE area');
});

async function ingestBytes(t: Test, bytes: Buffer, name: string): Promise<unknown> {
  const dir = tempDir(t);
  const file = path.join(dir, name);
  fs.writeFileSync(file, bytes);
  const pool = new PoolWriter(path.join(dir, 'pool.bin'));
  try {
    return await ingest(file, pool);
  } finally {
    await pool.finish().catch(() => { /* failed ingest */ });
  }
}

t.test('an empty input file is not a RangeError', async (t) => {
  await t.rejects(ingestBytes(t, Buffer.alloc(0), 'empty'), { name: 'UserError', message: /not an ISO image, squashfs image, directory or tar archive/ });
});

t.test('squashfs: a symlink whose target length says 2 GiB is refused (was: a 2 GiB allocation)', async (t) => {
  const dir = tempDir(t);
  fs.mkdirSync(path.join(dir, 'tree'));
  fs.symlinkSync('prog', path.join(dir, 'tree', 'link'));
  const sq = path.join(dir, 'x.squashfs');
  must('mksquashfs', [path.join(dir, 'tree'), sq, '-noI', '-noD', '-quiet', '-no-progress', '-all-time', '0', '-mkfs-time', '0']);
  const bytes = fs.readFileSync(sq);
  const at = bytes.indexOf(Buffer.from([4, 0, 0, 0, ...Buffer.from('prog')]), Number(bytes.readBigUInt64LE(64)));
  t.ok(at > 0, 'the symlink inode in the uncompressed inode table');
  t.ok(await ingestBytes(t, bytes, 'good.squashfs'), 'the unpatched image ingests');
  bytes.writeUInt32LE(0x7fffffff, at);
  await t.rejects(ingestBytes(t, bytes, 'bad.squashfs'), { name: 'UserError', message: /symlink target of 2147483647 bytes/ });
});

/** A tar header block with a valid checksum; numeric fields as octal text or, when `bin`, base-256. */
function tarHeader(name: string, type: string, size: number, extra: (b: Buffer) => void = () => {}): Buffer {
  const b = Buffer.alloc(512);
  b.write(name, 0, 'latin1');
  b.write('0000644\0', 100, 'latin1');
  b.write('0000000\0', 108, 'latin1');
  b.write('0000000\0', 116, 'latin1');
  b.write(`${size.toString(8).padStart(11, '0')}\0`, 124, 'latin1');
  b.write('14000000000\0', 136, 'latin1');
  b.write(type, 156, 'latin1');
  b.write('ustar  \0', 257, 'latin1'); // GNU
  extra(b);
  b.fill(0x20, 148, 156);
  let sum = 0;
  for (const x of b) sum += x;
  b.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'latin1');
  return b;
}

async function tarOf(t: Test, blocks: Buffer[]): Promise<unknown> {
  const pool = new PoolWriter(path.join(tempDir(t), 'pool.bin'));
  try {
    return await ingestTar(Readable.from([Buffer.concat([...blocks, Buffer.alloc(1024)])]), 'x.tar', pool);
  } finally {
    await pool.finish().catch(() => { /* failed ingest */ });
  }
}

t.test('tar: a GNU sparse file of 2^50 bytes is refused at once (was: a hole of 2^49 bytes made block by block)', async (t) => {
  const start = Date.now();
  const big = (b: Buffer, o: number, v: bigint) => {
    b[o] = 0x80;
    for (let i = 11; i >= 1; i--) { b[o + i] = Number(v & 0xffn); v >>= 8n; }
  };
  const sparse = tarHeader('hole', 'S', 0, (b) => {
    big(b, 386, 2n ** 49n); // region 0: offset
    b.write('00000000000\0', 398, 'latin1'); // region 0: 0 bytes
    big(b, 483, 2n ** 50n); // realsize
  });
  await t.rejects(tarOf(t, [sparse]), { name: 'UserError', message: /sparse file "hole" of 1125899906842624 bytes/ });
  // within the size limit, a map reaching past the file's size is refused before the hole is made
  const past = tarHeader('hole', 'S', 0, (b) => {
    big(b, 386, 2n ** 40n);
    b.write('00000000000\0', 398, 'latin1');
    b.write('00000001000\0', 483, 'latin1'); // realsize 512
  });
  await t.rejects(tarOf(t, [past]), { name: 'UserError', message: /sparse map of "hole" reaches 1099511627776, beyond its size 512/ });
  t.ok(Date.now() - start < 5000, 'at once');
});

t.test('tar: a pax header of 8 GiB is refused before it is read into memory', async (t) => {
  await t.rejects(tarOf(t, [tarHeader('pax', 'x', 2 ** 33 - 1)]), { name: 'UserError', message: /metadata entry of 8589934591 bytes/ });
});

t.test('ISO: a file name with control characters makes a one-line message', async (t) => {
  const child = dirRecord(5000, 10, 0, Buffer.from('A\nB;1')); // extent beyond the image
  const { img } = await openIso(t, iso({ rootDir: Buffer.concat([dirRecord(18, SECTOR, 2, Buffer.from([0])), dirRecord(18, SECTOR, 2, Buffer.from([1])), child]) }));
  const e = await img.lookup('a\nb');
  t.ok(e, 'found by its raw name');
  t.throws(() => img.open(e!), { name: 'UserError', message: /^[^\n]*a\\x0ab extends beyond the end of the image/ });
});

t.test('squashfs: a data block size word with bit 31 set is refused (was: RangeError from a negative size)', async (t) => {
  const dir = tempDir(t);
  fs.mkdirSync(path.join(dir, 'tree'));
  fs.writeFileSync(path.join(dir, 'tree', 'f'), Buffer.alloc(5000, 'x'));
  const sq = path.join(dir, 'x.squashfs');
  must('mksquashfs', [path.join(dir, 'tree'), sq, '-noI', '-no-fragments', '-quiet', '-no-progress', '-all-time', '0', '-mkfs-time', '0']);
  const bytes = fs.readFileSync(sq);
  // the regular file inode: ... fragment (none), offset, file_size 5000, then its one block size word
  const tail = Buffer.alloc(12);
  tail.writeUInt32LE(0xffffffff, 0);
  tail.writeUInt32LE(5000, 8);
  const at = bytes.indexOf(tail, Number(bytes.readBigUInt64LE(64)));
  t.ok(at > 0, 'the file inode in the uncompressed inode table');
  t.ok(await ingestBytes(t, bytes, 'good.squashfs'), 'the unpatched image ingests');
  bytes.writeUInt32LE(0xd2b0c740, at + 12);
  await t.rejects(ingestBytes(t, bytes, 'bad.squashfs'), { name: 'UserError', message: /data block 0 of \d+ bytes on disk/ });
});
