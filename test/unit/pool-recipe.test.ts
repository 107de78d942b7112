// Pool writer + block store + recipe reader, end to end on a temp pool:
// dedup, zero blocks, raw (incompressible) blocks, deflate segments,
// serialization, random reads, and corruption detection.

import t, { Test } from 'tap';
import { pseudoRandom } from '../lib/fixture';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as zlib from 'node:zlib';
import { PoolWriter } from '../../src/pool/writer';
import { BlockStore, blockTableFrom, BlockCorruptError, SpliceList } from '../../src/pool/reader';
import { Check, FLAG_RAW, InflateStatus, RUN_GAP_MAX, STORED_HEADER, STORED_MAX, deflateSegmentSize } from '../../src/pool/format';
import { FileSource } from '../../src/io/source';
import { RecipeBuilder, SegKind, serializeRecipe, deserializeRecipe, literalCount, literalOf } from '../../src/recipe/recipe';
import { RecipeReader } from '../../src/recipe/reader';
import { nativeIfBuilt } from '../../src/native';

const rand = pseudoRandom;

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'uniso-unit-'));
t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));

const text = Buffer.from(Array.from({ length: 30000 }, (_, i) => `line ${i}\n`).join(''));
const noise = rand(200000, 42);

t.test('pool: dedup, zero blocks, raw blocks, ordered ids', async (t) => {
  const pool = new PoolWriter(path.join(dir, 'pool1'), 6);
  const w1 = pool.file();
  await w1.write(text);
  const c1 = await w1.end();
  const w2 = pool.file();
  await w2.write(text.subarray(0, 100000)); // same first block(s) as text
  await w2.skip(300000); // hole
  await w2.write(noise);
  const c2 = await w2.end();
  const w3 = pool.file();
  await w3.write(text);
  const c3 = await w3.end();
  await pool.finish();
  t.equal(c3, c1, 'identical files share one content record');
  t.equal(c2.blocks[0], c1.blocks[0], 'identical first block deduplicated');
  t.ok([...c2.blocks].some((b) => b === 0), 'hole gives zero blocks');
  t.equal(c2.size, 100000 + 300000 + 200000);
  const rawIds = [...c2.blocks].filter((id) => id && pool.blocks[id - 1].flags & FLAG_RAW);
  t.ok(rawIds.length >= 2, 'incompressible blocks stored raw');
  const poolBytes = fs.readFileSync(path.join(dir, 'pool1'));
  let expectOff = 0;
  pool.blocks.forEach((b, i) => {
    t.equal(b.offset, expectOff, `block ${i + 1} follows the previous one`);
    expectOff += b.csize;
    const stored = poolBytes.subarray(b.offset, b.offset + b.csize);
    if (!(b.flags & FLAG_RAW)) {
      t.same(stored.subarray(-4), Buffer.from([0, 0, 0xff, 0xff]), `block ${i + 1} ends with a sync flush`);
      t.equal(zlib.inflateRawSync(stored, { finishFlush: zlib.constants.Z_SYNC_FLUSH }).length, b.usize, 'inflates');
    }
  });
});

t.test('recipe reader returns the right bytes at any offset', async (t) => {
  const poolPath = path.join(dir, 'pool2');
  const pool = new PoolWriter(poolPath, 6);
  const w = pool.file();
  const data = Buffer.concat([text, Buffer.alloc(131072), noise]);
  await w.write(data);
  const c = await w.end();
  await pool.finish();
  const src = FileSource.open(poolPath);
  t.teardown(() => src.close());
  for (const nativeInflate of [true, false]) {
    await t.test(nativeInflate ? 'native inflate (libdeflate)' : 'node zlib inflate', (t) => readsRight(t, c, data, src, pool, nativeInflate));
  }
});

/** [offset, length] of `count` reads in `size` bytes, at most `maxLen` long (a fixed sequence, so a failure repeats). */
function* randomReads(count: number, size: number, maxLen: number, seed: number): Generator<[number, number]> {
  for (let i = 0; i < count; i++) {
    seed = (seed * 1103515245 + 12345) >>> 0;
    yield [seed % size, 1 + ((seed >>> 8) % maxLen)];
  }
}

async function readsRight(t: Test, c: { blocks: number[]; size: number }, data: Buffer, src: FileSource, pool: PoolWriter, nativeInflate: boolean): Promise<void> {
  const store = new BlockStore(src, blockTableFrom(pool.blocks, src.size), { cacheBytes: 1 << 20, nativeInflate });
  const lit = Buffer.from('<<literal>>');
  const rb = new RecipeBuilder();
  rb.literal(lit);
  for (let i = 0; i < c.blocks.length; i++) rb.raw(c.blocks[i], 0, Math.min(65536, c.size - i * 65536));
  rb.zero(10);
  rb.zero(5);
  rb.literal(Buffer.from('<<literal>>'), 2, 5); // the same literal again: stored once
  const r = deserializeRecipe(serializeRecipe(rb.build()), 'test');
  const expected = Buffer.concat([lit, data, Buffer.alloc(15), lit.subarray(2, 7)]);
  t.equal(r.size, expected.length, 'size');
  t.equal(literalCount(r), 1, 'identical literals are kept once');
  const reader = new RecipeReader(r, store);
  const whole = Buffer.alloc(r.size);
  t.equal(await reader.pread(whole, 0), r.size);
  t.ok(whole.equals(expected), 'whole read');
  for (const [off, len] of randomReads(200, r.size, 150000, 7)) {
    const b = Buffer.alloc(len);
    const n = await reader.pread(b, off);
    const want = expected.subarray(off, off + len);
    if (n !== want.length || !b.subarray(0, n).equals(want)) {
      t.fail(`read ${len} at ${off}`);
      return;
    }
  }
  t.pass('200 random reads');
  // an include past 4 GiB of the recipe it includes (a disk's blocks past 4 GiB in a VHD)
  const big = new RecipeBuilder();
  big.zero(5 * 2 ** 30);
  big.literal(lit);
  big.zero(3);
  const bigR = big.build();
  const inc = new RecipeBuilder();
  inc.include(bigR, 5 * 2 ** 30 - 2, 5 * 2 ** 30 + 4);
  const subs = new Map([[bigR, 7]]);
  const incR = deserializeRecipe(serializeRecipe(inc.build(), (x) => subs.get(x)!), 'test', (id) => {
    if (id !== 7) throw new Error('unexpected sub');
    return deserializeRecipe(serializeRecipe(bigR), 'test');
  });
  t.equal(incR.offs[0], 5 * 2 ** 30 - 2, 'an include offset past 4 GiB survives the catalog');
  const got6 = Buffer.alloc(6);
  t.equal(await new RecipeReader(incR, store).pread(got6, 0), 6);
  t.same([...got6], [0, 0, ...lit.subarray(0, 4)], 'and reads the bytes there');
  // deflate segments concatenate into a valid raw deflate stream
  const rd = new RecipeBuilder();
  for (const id of c.blocks) if (id) rd.deflate(id, deflateSegmentSize(pool.blocks[id - 1]));
  const dr = new RecipeReader(rd.build(), store);
  const body = Buffer.alloc(dr.size);
  await dr.pread(body, 0);
  const inflated = zlib.inflateRawSync(Buffer.concat([body, Buffer.from([3, 0])]));
  const nonZero: Buffer[] = [];
  for (let o = 0; o < data.length; o += 65536) {
    const blk = data.subarray(o, o + 65536);
    if (blk.some((x) => x !== 0)) nonZero.push(blk);
  }
  t.ok(inflated.equals(Buffer.concat(nonZero)), 'spliced deflate segments inflate to the non-zero blocks');
}

t.test('a sequential reader hands back the blocks it is through with; blocks used again stay cached', async (t) => {
  t.ok(nativeIfBuilt(), 'the addon is built (make test builds it)');
  const poolPath = path.join(dir, 'pool6');
  const pool = new PoolWriter(poolPath, 6);
  const w = pool.file();
  await w.write(Buffer.concat([text, noise])); // compressed blocks, then raw ones
  const c = await w.end();
  await pool.finish();
  const src = FileSource.open(poolPath);
  t.teardown(() => src.close());
  const data = Buffer.concat([text, noise]);
  const ids = [...c.blocks];
  t.ok(ids.length >= 6 && ids.every((id) => id !== 0) && new Set(ids).size === ids.length, 'distinct blocks');
  const blockBytes = (k: number) => data.subarray(k * 65536, (k + 1) * 65536);
  // every block once, in order, with literals between; the first block used again at the end
  const rb = new RecipeBuilder();
  const parts: Buffer[] = [];
  const where: number[] = []; // view offset of block k's segment
  let at = 0;
  const lit = (b: Buffer) => { rb.literal(b); parts.push(b); at += b.length; };
  const raw = (k: number) => { where[k] = at; rb.raw(ids[k], 0, blockBytes(k).length); parts.push(blockBytes(k)); at += blockBytes(k).length; };
  ids.forEach((_, k) => { lit(Buffer.from(`<${k}>`)); raw(k); });
  lit(Buffer.from('<again>'));
  const againAt = at;
  rb.raw(ids[0], 0, 65536); parts.push(blockBytes(0)); at += 65536;
  const r = rb.build();
  const expected = Buffer.concat(parts);
  t.equal(r.size, expected.length);
  const store = new BlockStore(src, blockTableFrom(pool.blocks, src.size), { cacheBytes: 8 << 20 });
  // reads of 100,000 bytes: most segments are served by two reads; a readahead too short
  // to prefetch, so blocks are inflated as the reads come and take the buffers handed back
  const seq = new RecipeReader(r, store, { readahead: 65536 });
  const got = Buffer.alloc(r.size);
  for (let off = 0; off < r.size; off += 100000) await seq.pread(got.subarray(off, off + 100000), off);
  t.ok(got.equals(expected), 'sequential read: the right bytes, buffers of finished blocks reused on the way');
  t.equal(store.inflations, ids.length, 'each block inflated once (the first block kept for its second use)');
  // a reader without readahead (random access) finds the shared block cached, the others handed back
  const rnd = new RecipeReader(r, store);
  const one = (k: number) => { const b = Buffer.alloc(blockBytes(k).length); return rnd.pread(b, where[k]).then(() => b); };
  let before = store.inflations;
  t.ok((await one(0)).equals(blockBytes(0)), 'first block');
  t.equal(store.inflations, before, 'used twice by the recipe: still cached');
  t.ok((await one(2)).equals(blockBytes(2)), 'third block');
  t.equal(store.inflations, before + 1, 'used once and read through: inflated again');
  const b0 = Buffer.alloc(65536);
  await rnd.pread(b0, againAt);
  t.ok(b0.equals(blockBytes(0)), 'second use of the first block');
  // out of order: the second half of a segment before the first; handed back only when both are served
  // (the last block: readahead finds nothing after it to inflate, the first block being cached)
  const ooo = new RecipeReader(r, store, { readahead: 1 << 20 });
  const k = ids.length - 1;
  const len = blockBytes(k).length;
  const half = Buffer.alloc(len);
  before = store.inflations;
  await Promise.all([ooo.pread(half.subarray(len >> 1), where[k] + (len >> 1)), ooo.pread(half.subarray(0, len >> 1), where[k])]);
  t.ok(half.equals(blockBytes(k)), 'both halves right');
  t.equal(store.inflations, before + 1, 'one inflation for the two halves');
  t.ok((await one(k)).equals(blockBytes(k)), 'read again');
  t.equal(store.inflations, before + 2, 'handed back once both halves were served');
});

t.test('long zero runs in literals become zero segments; the bytes stay the same', async (t) => {
  // a literal like a tar header: text, a long zero run, text, a short zero run, zeros to the end
  const header = Buffer.alloc(1024);
  header.write('name-of-a-file', 0);
  header.write('ustar', 257);
  header.write('tail', 600);
  header[700] = 1; // 95 zeros between 605 and 700: too short to split
  const other = Buffer.concat([Buffer.alloc(300), Buffer.from('x'), Buffer.alloc(200)]); // starts and ends with zeros
  const rb = new RecipeBuilder();
  rb.literal(header);
  rb.literal(header, 10, 500); // part of the same literal: no new literal
  rb.literal(other);
  rb.literal(Buffer.from(header)); // equal bytes, another Buffer: stored once
  const built = rb.build();
  const expected = Buffer.concat([header, header.subarray(10, 510), other, header]);
  t.equal(built.size, expected.length, 'size');
  const kept = built.litData.length;
  t.equal(literalCount(built), 2, 'one literal per distinct data');
  t.ok(kept < 1024 - 2 * 150, `literals keep ${kept} bytes of ${header.length + other.length}`);
  t.ok([...built.kinds].filter((k) => k === 0).length >= 3, 'zero segments were made');
  const r = deserializeRecipe(serializeRecipe(built), 'test');
  const store = new BlockStore({ size: 0, pread: async () => 0 }, blockTableFrom([], 0));
  const reader = new RecipeReader(r, store);
  const whole = Buffer.alloc(r.size);
  await reader.pread(whole, 0);
  t.ok(whole.equals(expected), 'whole read');
  for (let off = 0; off < r.size; off += 97) {
    const b = Buffer.alloc(131);
    const n = await reader.pread(b, off);
    if (!b.subarray(0, n).equals(expected.subarray(off, off + 131))) return t.fail(`read at ${off}`);
  }
  t.pass('reads at every 97th offset');
  // a recipe made of this one's ranges (as views made of other views are) reads the same
  const again = new RecipeBuilder();
  again.appendRange(r, 5, 1500);
  again.appendRange(r, 1500, r.size);
  const ar = again.build();
  const b2 = Buffer.alloc(ar.size);
  await new RecipeReader(ar, store).pread(b2, 0);
  t.ok(b2.equals(expected.subarray(5)), 'appended ranges read the same bytes');
});

t.test('page-cache reads (preadv2 RWF_NOWAIT) return the file bytes or nothing', async (t) => {
  const file = path.join(dir, 'cached');
  const bytes = rand(300000, 9);
  fs.writeFileSync(file, bytes);
  fs.readFileSync(file); // now in the page cache
  const src = FileSource.open(file);
  t.teardown(() => src.close());
  const a = Buffer.alloc(1000);
  const b = Buffer.alloc(70000);
  const n = src.preadCached([a, b], 12345);
  t.equal(n, 71000, 'a cached range is read at once');
  t.ok(Buffer.concat([a, b]).equals(bytes.subarray(12345, 12345 + 71000)), 'into the buffers in turn');
  t.equal(src.preadCached([Buffer.alloc(10)], bytes.length), 0, 'nothing past the end of the file');
  t.equal(src.preadCached([Buffer.alloc(100)], bytes.length - 40), 0, 'a range past the end is left to pread');
  const addon = nativeIfBuilt()!;
  t.throws(() => addon.readCached(src.fd, [], 0), TypeError, 'no buffers: a TypeError');
  t.throws(() => addon.readCached(-1, [Buffer.alloc(1)], 0), /Bad file descriptor/, 'a bad descriptor: an error, not 0');
});

t.test('a corrupt pool block is an error, never wrong bytes', async (t) => {
  const poolPath = path.join(dir, 'pool3');
  const pool = new PoolWriter(poolPath, 6);
  const w = pool.file();
  await w.write(text);
  await w.end();
  await pool.finish();
  const fd = fs.openSync(poolPath, 'r+');
  const b = Buffer.alloc(1);
  fs.readSync(fd, b, 0, 1, 100);
  b[0] ^= 0x55;
  fs.writeSync(fd, b, 0, 1, 100);
  fs.closeSync(fd);
  const src = FileSource.open(poolPath);
  t.teardown(() => src.close());
  const store = new BlockStore(src, blockTableFrom(pool.blocks, src.size));
  await t.rejects(store.inflated(1), BlockCorruptError, 'inflated read rejects');
  const out = Buffer.alloc(200);
  const list = new SpliceList();
  list.push(1, 10, 200, 0);
  await t.rejects(store.readDeflatedInto(list, out), BlockCorruptError, 'direct spliced read rejects');
  // the whole block is checked, not only the bytes asked for
  const before = new SpliceList();
  before.push(1, 0, 50, 0);
  await t.rejects(new BlockStore(src, blockTableFrom(pool.blocks, src.size)).readDeflatedInto(before, out), /block 1 is corrupt/,
    'a spliced read of good bytes of a corrupt block rejects');
  await t.resolves(store.inflated(2), 'other blocks still read');
  // the same through the JavaScript check (a source that cannot name its file)
  const plain = { size: src.size, pread: (b: Buffer, o: number) => src.pread(b, o) };
  const jsStore = new BlockStore(plain, blockTableFrom(pool.blocks, src.size));
  await t.rejects(jsStore.readDeflatedInto(list, out), BlockCorruptError, 'JS check: direct spliced read rejects');
  await t.resolves(jsStore.inflated(2), 'JS check: other blocks still read');
  await t.rejects(store.checkBlock(1), /block 1 is corrupt/, 'checkBlock names the block');
  await t.rejects(jsStore.inflated(1), BlockCorruptError, 'JS inflate: corrupt block rejects');
  // the catalog's word on the inflated bytes is checked too (size, CRC-32), on both inflate paths
  for (const nativeInflate of [true, false]) {
    const how = nativeInflate ? 'native' : 'zlib';
    const badCrc = blockTableFrom(pool.blocks, src.size);
    badCrc.crc32[1] ^= 1;
    await t.rejects(new BlockStore(src, badCrc, { nativeInflate }).inflated(2), /block 2 is corrupt/, `${how}: CRC-32 mismatch rejects`);
    const badSize = blockTableFrom(pool.blocks, src.size);
    badSize.usize[1] -= 1;
    await t.rejects(new BlockStore(src, badSize, { nativeInflate }).inflated(2), /block 2 is corrupt/, `${how}: wrong size rejects`);
  }
  // a truncated pool: the blocks past the end are errors, not short data
  const short = { size: 150, pread: (b: Buffer, o: number) => src.pread(b.subarray(0, Math.max(0, Math.min(b.length, 150 - o))), o),
    locate: (o: number, n: number) => (o + n <= 150 ? src.locate(o, n) : undefined) };
  await t.rejects(new BlockStore(short, blockTableFrom(pool.blocks, src.size)).inflated(2), BlockCorruptError, 'truncated pool rejects');
  const tail = new SpliceList();
  tail.push(2, 0, 10, 0);
  await t.rejects(new BlockStore(short, blockTableFrom(pool.blocks, src.size)).readDeflatedInto(tail, out), BlockCorruptError,
    'truncated pool: spliced read rejects');
});

t.test("the addon's spliced read gives the JavaScript path's bytes", async (t) => {
  const poolPath = path.join(dir, 'pool4');
  const pool = new PoolWriter(poolPath, 6);
  const w = pool.file();
  await w.write(Buffer.concat([text, noise])); // compressed blocks, then raw ones of 64 KiB (two stored blocks each)
  const c = await w.end();
  await pool.finish();
  fs.readFileSync(poolPath); // into the page cache: the addon reads only what is cached
  const src = FileSource.open(poolPath);
  t.teardown(() => src.close());
  const ids = [...c.blocks].filter((id) => id !== 0);
  const raw = (id: number) => (pool.blocks[id - 1].flags & FLAG_RAW) !== 0;
  t.ok(ids.some(raw) && ids.some((id) => !raw(id)), 'compressed and raw blocks');
  const rb = new RecipeBuilder();
  for (const id of [...ids, ids[0], ids[ids.length - 1]]) { // two blocks used twice
    rb.literal(Buffer.from(`<member ${id}>`));
    rb.zero(300);
    rb.deflate(id, deflateSegmentSize(pool.blocks[id - 1]));
  }
  rb.literal(Buffer.from('<end>'));
  const r = rb.build();
  const expected = Buffer.alloc(r.size);
  const jsStore = new BlockStore(src, blockTableFrom(pool.blocks, src.size), { nativeInflate: false });
  t.equal(await new RecipeReader(r, jsStore, { nativeSplice: false }).pread(expected, 0), r.size, 'JavaScript path');
  t.ok(expected.includes(Buffer.from([0, 0xff, 0xff, 0x00, 0x00])), 'the raw blocks are wrapped in stored blocks of 65535 bytes');
  const splice = new BlockStore(src, blockTableFrom(pool.blocks, src.size)).nativeSplicer(r)!;
  t.ok(splice, 'the addon reads this pool');
  const whole = Buffer.alloc(r.size + 10);
  t.equal(splice(whole, 0), r.size, 'a read past the end is cut at the end');
  t.ok(whole.subarray(0, r.size).equals(expected), 'whole read, every block checked on the way');
  t.equal(splice(Buffer.alloc(10), r.size), 0, 'nothing at the end');
  // a fresh store: first reads of blocks that cover them only in part
  const fresh = new BlockStore(src, blockTableFrom(pool.blocks, src.size)).nativeSplicer(r)!;
  for (const [off, len] of randomReads(400, r.size, 140000, 11)) {
    const b = Buffer.alloc(len);
    const n = fresh(b, off);
    const want = expected.subarray(off, off + len);
    if (n !== want.length || !b.subarray(0, n).equals(want)) return t.fail(`read ${len} at ${off}: ${n}`);
  }
  t.pass('400 random reads');
  const reader = new RecipeReader(r, new BlockStore(src, blockTableFrom(pool.blocks, src.size)));
  const viaReader = Buffer.alloc(r.size);
  t.equal(await reader.pread(viaReader, 0), r.size);
  t.ok(viaReader.equals(expected), 'RecipeReader.pread with the addon');
  // a segment to inflate is left to the JavaScript path, before anything is copied
  const mixed = new RecipeBuilder();
  mixed.literal(Buffer.from('abc'));
  mixed.raw(ids[0], 0, 100);
  const mr = mixed.build();
  const mb = Buffer.alloc(mr.size);
  t.equal(new BlockStore(src, blockTableFrom(pool.blocks, src.size)).nativeSplicer(mr)!(mb, 0), -1, 'a segment to inflate: -1');
  t.ok(mb.equals(Buffer.alloc(mr.size)), 'and nothing written');
  t.throws(() => nativeIfBuilt()!.spliceRead({} as never, mb, 0), TypeError, 'not a context: a TypeError');
});

t.test("the addon's spliced read leaves a corrupt block to the JavaScript path, which rejects", async (t) => {
  const poolPath = path.join(dir, 'pool5');
  const pool = new PoolWriter(poolPath, 6);
  const w = pool.file();
  await w.write(Buffer.concat([text, noise]));
  const c = await w.end();
  await pool.finish();
  const ids = [...c.blocks].filter((id) => id !== 0);
  const rawId = ids.find((id) => pool.blocks[id - 1].flags & FLAG_RAW)!;
  const fd = fs.openSync(poolPath, 'r+');
  for (const id of [1, rawId]) { // a byte in the middle of a compressed and of a raw block
    const at = pool.blocks[id - 1].offset + (pool.blocks[id - 1].csize >> 1);
    const b = Buffer.alloc(1);
    fs.readSync(fd, b, 0, 1, at);
    b[0] ^= 0x55;
    fs.writeSync(fd, b, 0, 1, at);
  }
  fs.closeSync(fd);
  fs.readFileSync(poolPath);
  const src = FileSource.open(poolPath);
  t.teardown(() => src.close());
  for (const id of [1, rawId]) {
    const rb = new RecipeBuilder();
    rb.literal(Buffer.from('head'));
    rb.deflate(id, deflateSegmentSize(pool.blocks[id - 1]));
    const r = rb.build();
    const store = new BlockStore(src, blockTableFrom(pool.blocks, src.size));
    const splice = store.nativeSplicer(r)!;
    t.equal(splice(Buffer.alloc(20), 0), -1, `block ${id}: a read of its first bytes (good ones) is left to JavaScript`);
    t.equal(splice(Buffer.alloc(r.size), 0), -1, `block ${id}: so is a whole read`);
    await t.rejects(new RecipeReader(r, store).pread(Buffer.alloc(r.size), 0), new RegExp(`block ${id} is corrupt`), `block ${id}: the read rejects`);
  }
  // the good blocks still read, through the addon
  const good = ids.find((id) => id !== 1 && id !== rawId)!;
  const rb = new RecipeBuilder();
  rb.deflate(good, deflateSegmentSize(pool.blocks[good - 1]));
  const r = rb.build();
  t.equal(new BlockStore(src, blockTableFrom(pool.blocks, src.size)).nativeSplicer(r)!(Buffer.alloc(r.size), 0), r.size, 'a good block reads');
});

t.test('recipe deserialization rejects damage', async (t) => {
  const rb = new RecipeBuilder();
  rb.zero(100);
  rb.literal(Buffer.alloc(10, 0x61));
  const small = rb.build();
  const blob = serializeRecipe(small);
  t.same(literalOf(deserializeRecipe(blob, 'x'), 0), Buffer.alloc(10, 0x61), 'round trip');
  const big = new RecipeBuilder();
  big.literal(Buffer.alloc(100000, 0x62));
  const packed = serializeRecipe(big.build());
  t.ok(packed.length < 10000, 'a large compressible literal section is stored deflated');
  t.same(literalOf(deserializeRecipe(packed, 'x'), 0), Buffer.alloc(100000, 0x62), 'and read back');
  t.throws(() => deserializeRecipe(blob.subarray(0, blob.length - 1), 'x'), /wrong length/);
  t.throws(() => deserializeRecipe(blob.subarray(0, 30), 'x'), /not a recipe|wrong length/);
  const bad = Buffer.from(blob);
  bad[40] = 9; // kind of segment 0 (the small column section is stored as it is)
  t.throws(() => deserializeRecipe(bad, 'x'), /bad segment kind/);
  const bad2 = Buffer.from(blob);
  bad2.writeUInt32LE(0x12345678, 0);
  t.throws(() => deserializeRecipe(bad2, 'x'), /not a recipe/);
  const bad3 = Buffer.from(packed);
  bad3[bad3.length - 3] ^= 0xff; // inside the deflated literal section
  t.throws(() => deserializeRecipe(bad3, 'x'), /damaged/);
  // includes: by the id the caller gives, and never past the end of the included recipe
  const outer = new RecipeBuilder();
  outer.literal(Buffer.from('head'));
  outer.include(small, 50, 110);
  const o = outer.build();
  t.throws(() => serializeRecipe(o), /serialize it with their ids/, 'includes need ids');
  const ob = serializeRecipe(o, () => 7);
  const back = deserializeRecipe(ob, 'x', (id) => { t.equal(id, 7, 'asked for recipe 7'); return small; });
  t.equal(back.subs[0], small);
  t.same([back.kinds[1], back.offs[1], back.size], [SegKind.Include, 50, 64]);
  const shorter = new RecipeBuilder();
  shorter.zero(100);
  t.throws(() => deserializeRecipe(ob, 'x', () => shorter.build()), /outside the recipe it includes/);
  t.throws(() => deserializeRecipe(ob, 'x'), /cannot be loaded here/);
});

t.test('the addon and the TypeScript say the same of the pool and recipes (native/pool_format.h)', async (t) => {
  const h = fs.readFileSync(path.join(__dirname, '..', '..', 'native', 'pool_format.h'), 'utf8');
  const value = (name: string) => Number(new RegExp(`(?:#define ${name} |\\b${name} = )(\\d+)`).exec(h)?.[1]);
  t.same([value('FLAG_RAW'), value('STORED_MAX'), value('STORED_HEADER'), value('RUN_GAP_MAX')], [FLAG_RAW, STORED_MAX, STORED_HEADER, RUN_GAP_MAX]);
  t.same([value('CHECK_UNCHECKED'), value('CHECK_GOOD'), value('CHECK_CORRUPT')], [Check.Unchecked, Check.Good, Check.Corrupt]);
  t.same([value('SEG_ZERO'), value('SEG_LITERAL'), value('SEG_RAW'), value('SEG_DEFLATE'), value('SEG_INCLUDE')],
    [SegKind.Zero, SegKind.Literal, SegKind.Raw, SegKind.Deflate, SegKind.Include]);
  t.same([value('BLOCK_OK'), value('BLOCK_STORED_BAD'), value('BLOCK_INFLATE_BAD'), value('BLOCK_CRC_BAD'), value('BLOCK_SHORT')],
    [InflateStatus.Ok, InflateStatus.StoredBad, InflateStatus.InflateBad, InflateStatus.CrcBad, InflateStatus.Short]);
});

t.test('a pool laid out like a squashfs: blocks with bytes between them read right on both paths', async (t) => {
  // three blocks as squashfs data blocks: A compressed, B raw (6 bytes), C compressed; the zlib
  // framing (2 + 6 bytes) around A and C, a block written twice and other bytes between them
  const scratchPool = new PoolWriter(path.join(dir, 'sq-pool'), 6);
  const wa = scratchPool.file();
  await wa.write(Buffer.from('aaaa block of text '.repeat(200)));
  const ca = await wa.end();
  const wb = scratchPool.file();
  await wb.write(pseudoRandom(6, 3));
  const cb = await wb.end();
  const wc = scratchPool.file();
  await wc.write(Buffer.from('cccc another block of text '.repeat(150)));
  const cc = await wc.end();
  const wd = scratchPool.file();
  await wd.write(Buffer.from('dddd and one more '.repeat(150)));
  const cd = await wd.end();
  await scratchPool.finish();
  const [a, b, c, d] = [ca.blocks[0], cb.blocks[0], cc.blocks[0], cd.blocks[0]].map((id) => scratchPool.blocks[id - 1]);
  t.same([a.flags & FLAG_RAW, b.flags & FLAG_RAW, c.flags & FLAG_RAW], [0, FLAG_RAW, 0], 'compressed, raw, compressed');
  const stored = (x: typeof a) => readAtFile(scratchPool.path, x.offset, x.csize);
  const parts = [Buffer.alloc(10, 0xee), Buffer.from([0x78, 0xda]), stored(a), Buffer.alloc(6, 0xee), stored(b),
    Buffer.from([0x78, 0xda]), stored(c), Buffer.alloc(6, 0xee), Buffer.from([0x78, 0xda]), stored(d), Buffer.alloc(6, 0xee)];
  const file = path.join(dir, 'sq-layout');
  fs.writeFileSync(file, Buffer.concat(parts));
  const offA = 12;
  const offB = offA + a.csize + 6;
  const offC = offB + b.csize + 2;
  const offD = offC + c.csize + 8;
  const table = blockTableFrom([{ ...a, offset: offA }, { ...b, offset: offB }, { ...c, offset: offC }, { ...d, offset: offD }], fs.statSync(file).size);
  const src = FileSource.open(file);
  t.teardown(() => src.close());
  for (const [how, source] of [['native', src], ['JavaScript', { size: src.size, pread: (x: Buffer, o: number) => src.pread(x, o) }]] as const) {
    const store = new BlockStore(source, table);
    // A, C and D in one read: the bytes between A and C (B among them) are not a gap to read along
    const list = new SpliceList();
    list.push(1, 0, a.csize, 0);
    list.push(3, 0, c.csize, a.csize);
    list.push(4, 0, d.csize, a.csize + c.csize);
    const out = Buffer.alloc(a.csize + c.csize + d.csize);
    await store.readDeflatedInto(list, out);
    t.ok(out.equals(Buffer.concat([stored(a), stored(c), stored(d)])), `${how}: A, C and D as stored`);
    t.ok((await store.inflated(2)).equals(pseudoRandom(6, 3)), `${how}: B, never read along, is not taken for corrupt`);
    // A, B and C: one read along the framing between them
    const all = new SpliceList();
    all.push(1, 0, a.csize, 0);
    all.push(2, 0, deflateSegmentSize(b), a.csize);
    all.push(3, 0, c.csize, a.csize + deflateSegmentSize(b));
    const out2 = Buffer.alloc(a.csize + deflateSegmentSize(b) + c.csize);
    await new BlockStore(source, table).readDeflatedInto(all, out2);
    t.ok(out2.subarray(a.csize + 5, a.csize + 11).equals(pseudoRandom(6, 3)), `${how}: B's bytes behind its stored-block header`);
    t.ok(out2.subarray(a.csize + deflateSegmentSize(b)).equals(stored(c)), `${how}: C after it`);
  }
});

function readAtFile(file: string, pos: number, len: number): Buffer {
  const fd = fs.openSync(file, 'r');
  try {
    const b = Buffer.alloc(len);
    fs.readSync(fd, b, 0, len, pos);
    return b;
  } finally {
    fs.closeSync(fd);
  }
}
