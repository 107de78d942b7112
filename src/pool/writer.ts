// Pool writer: cuts content into 64 KiB file-relative blocks, deduplicates
// them by XXH128, compresses each new block on the libuv thread pool (both
// cores; libdeflate in the native addon, several blocks per job) as raw
// deflate ended by a sync flush, and appends blocks to the pool file strictly
// in id order so the pool is bit-identical for identical input. Also builds
// per-file Content records (deduplicated by their block lists).

import * as fs from 'node:fs';
import * as zlib from 'node:zlib';
import { XXHash128 } from 'xxhash-addon';
import { crc32 } from '../checksum/crc32';
import { adler32 } from '../checksum/adler32';
import { BlockInfo, FLAG_RAW, keepsRaw, POOL_BLOCK, storedCheck } from './format';
import { nativeIfBuilt } from '../native';
import type { Content } from '../tree';

const ZERO = Buffer.alloc(POOL_BLOCK);
const NO_BUFFER = Buffer.alloc(0);
/** Blocks compressed per thread-pool job, and jobs in flight at once. */
const BATCH = 8;
const MAX_JOBS = 8;
/**
 * Contents' block lists are views of shared slabs of this many ids (a
 * typed array of its own per file costs ~200 bytes; a million small files
 * have a million lists). Longer lists get their own array.
 */
const SLAB_IDS = 1 << 16;
/** Without the addon, zlib compresses: its levels top out at 9 (libdeflate's at 12). */
const ZLIB_LEVEL_MAX = 9;

function isZero(buf: Buffer): boolean {
  return buf.equals(buf.length === POOL_BLOCK ? ZERO : ZERO.subarray(0, buf.length));
}

/** One compressed block: its deflate bytes (undefined: keep it raw) and the checksums of its bytes. */
interface Deflated {
  deflated: Buffer | undefined;
  crc32: number;
  adler32: number;
  sxh: number; // storedCheck of `deflated`
}

/** Compress blocks with the addon (libdeflate), or with node's zlib when the addon is not built. */
function deflateBatch(inputs: Buffer[], level: number): Promise<Deflated[]> {
  const addon = nativeIfBuilt();
  if (!addon) {
    return Promise.all(inputs.map((b) => new Promise<Deflated>((resolve, reject) => {
      zlib.deflateRaw(b, { level: Math.min(level, ZLIB_LEVEL_MAX), finishFlush: zlib.constants.Z_SYNC_FLUSH, chunkSize: POOL_BLOCK + 1024 },
        (err, out) => (err ? reject(err) : resolve({ deflated: out, crc32: crc32(b), adler32: adler32(b), sxh: storedCheck(out) })));
    })));
  }
  return new Promise((resolve, reject) => {
    addon.deflateBlocks(level, inputs, (err, out, meta) => {
      if (err) return reject(err);
      const res: Deflated[] = [];
      let at = 0;
      for (let k = 0; k < inputs.length; k++) {
        const len = meta![5 * k];
        res.push({
          deflated: len ? Buffer.from(out!.buffer, out!.byteOffset + at, len) : undefined,
          crc32: meta![5 * k + 1], adler32: meta![5 * k + 2], sxh: meta![5 * k + 3],
        });
        at += len;
      }
      resolve(res);
    });
  });
}

export interface PoolStats {
  blocksIn: number; // every non-zero block offered
  zeroBlocks: number;
  uniqueBlocks: number;
  bytesIn: number;
  bytesStored: number;
}

export class PoolWriter {
  readonly blocks: BlockInfo[] = [];
  readonly contents: Content[] = [];
  readonly stats: PoolStats = { blocksIn: 0, zeroBlocks: 0, uniqueBlocks: 0, bytesIn: 0, bytesStored: 0 };
  /** dedup indexes: released by finish() (nothing is added after it) */
  private byHash = new Map<string, number>();
  private contentByKey = new Map<string, Content>();
  private slab = new Uint32Array(0);
  private slabUsed = 0;
  private readonly done = new Map<number, Buffer>();
  private readonly inFlight = new Set<Promise<void>>();
  /** blocks waiting to be compressed (the next job) */
  private batch: { id: number; data: Buffer }[] = [];
  private nextWrite = 1;
  private offset = 0;
  private failure: unknown;
  private readonly fd: number;

  constructor(readonly path: string, private readonly level = 10) {
    this.fd = fs.openSync(path, 'w+');
  }

  /** Add one block (<= 64 KiB); returns its id, 0 for an all-zero block. */
  async addBlock(data: Buffer): Promise<number> {
    if (data.length === 0 || data.length > POOL_BLOCK) throw new Error(`bad block size ${data.length}`);
    this.stats.bytesIn += data.length;
    if (isZero(data)) {
      this.stats.zeroBlocks++;
      return 0;
    }
    this.stats.blocksIn++;
    const key = XXHash128.hash(data).toString('latin1');
    const known = this.byHash.get(key);
    if (known !== undefined) return known;
    if (this.failure) throw this.failure;
    // Claim the id before any await, so concurrent callers never store a block twice.
    const id = this.blocks.length + 1;
    this.byHash.set(key, id);
    this.stats.uniqueBlocks++;
    this.blocks.push({ offset: 0, csize: 0, usize: data.length, flags: 0, crc32: 0, adler32: 0, sxh: 0 });
    this.batch.push({ id, data: Buffer.from(data) }); // the caller may reuse its buffer
    if (this.batch.length >= BATCH) await this.submit();
    return id;
  }

  /** Compress the blocks waiting in the batch: one thread-pool job. */
  private async submit(): Promise<void> {
    const batch = this.batch;
    this.batch = [];
    if (!batch.length) return;
    while (this.inFlight.size >= MAX_JOBS) await Promise.race(this.inFlight);
    if (this.failure) throw this.failure;
    const job = deflateBatch(batch.map((b) => b.data), this.level).then(
      (results) => {
        results.forEach((r, k) => {
          const { id, data } = batch[k];
          const info = this.blocks[id - 1];
          let stored = r.deflated;
          if (!stored || keepsRaw(stored.length, data.length)) {
            info.flags |= FLAG_RAW;
            stored = data;
            info.sxh = storedCheck(data);
          } else {
            info.sxh = r.sxh;
          }
          info.csize = stored.length;
          info.crc32 = r.crc32;
          info.adler32 = r.adler32;
          this.done.set(id, stored);
        });
        this.flushInOrder();
      },
      (err) => { this.failure = err; },
    );
    const tracked: Promise<void> = job.finally(() => this.inFlight.delete(tracked));
    this.inFlight.add(tracked);
  }

  private flushInOrder(): void {
    for (;;) {
      const buf = this.done.get(this.nextWrite);
      if (!buf) return;
      this.done.delete(this.nextWrite);
      const info = this.blocks[this.nextWrite - 1];
      info.offset = this.offset;
      let w = 0;
      while (w < buf.length) w += fs.writeSync(this.fd, buf, w, buf.length - w, this.offset + w);
      this.offset += buf.length;
      this.stats.bytesStored += buf.length;
      this.nextWrite++;
    }
  }

  /** Register a file's block list; identical lists share one Content. */
  addContent(size: number, blocks: Uint32Array): Content {
    const keyBuf = Buffer.allocUnsafe(8 + blocks.byteLength);
    keyBuf.writeDoubleLE(size, 0);
    Buffer.from(blocks.buffer, blocks.byteOffset, blocks.byteLength).copy(keyBuf, 8);
    const key = XXHash128.hash(keyBuf).toString('latin1');
    const known = this.contentByKey.get(key);
    if (known) return known;
    const c: Content = { id: this.contents.length + 1, size, blocks: this.keep(blocks) };
    this.contents.push(c);
    this.contentByKey.set(key, c);
    return c;
  }

  /** A copy of a block list: a view of the current slab when it is short. */
  private keep(blocks: Uint32Array): Uint32Array {
    const n = blocks.length;
    if (n > SLAB_IDS / 16) return blocks.slice();
    if (this.slabUsed + n > this.slab.length) {
      this.slab = new Uint32Array(SLAB_IDS);
      this.slabUsed = 0;
    }
    const view = this.slab.subarray(this.slabUsed, this.slabUsed + n);
    view.set(blocks);
    this.slabUsed += n;
    return view;
  }

  /** Start a streaming content writer for one file. */
  file(): ContentWriter {
    return new ContentWriter(this);
  }

  /** Wait until every block added so far is compressed and written. */
  async settle(): Promise<void> {
    await this.submit();
    while (this.inFlight.size) await Promise.race(this.inFlight);
    if (this.failure) throw this.failure;
  }

  /** Read back a content written earlier (for build steps that need file bytes before the pool is finished). */
  async readContent(c: Content): Promise<Buffer> {
    await this.settle();
    const out = Buffer.alloc(c.size);
    for (let k = 0; k < c.blocks.length; k++) {
      const id = c.blocks[k];
      if (id === 0) continue;
      const info = this.blocks[id - 1];
      const stored = Buffer.allocUnsafe(info.csize);
      fs.readSync(this.fd, stored, 0, info.csize, info.offset);
      const raw = info.flags & FLAG_RAW ? stored : zlib.inflateRawSync(stored, { finishFlush: zlib.constants.Z_SYNC_FLUSH });
      raw.copy(out, k * POOL_BLOCK);
    }
    return out;
  }

  /** Wait for every block to be compressed and written; close the file (a build's temporary: not synced). */
  async finish(): Promise<number> {
    await this.settle();
    if (this.nextWrite !== this.blocks.length + 1) throw new Error('pool writer: blocks left unwritten');
    fs.closeSync(this.fd);
    this.byHash = new Map();
    this.contentByKey = new Map();
    this.slab = new Uint32Array(0);
    return this.offset;
  }

  abort(): void {
    try { fs.closeSync(this.fd); } catch { /* closed */ }
  }
}

/**
 * Accepts a file's bytes in order (with optional holes) and turns them into
 * 64 KiB pool blocks. Holes covering a whole block cost nothing.
 */
export class ContentWriter {
  private buf = NO_BUFFER; // allocated when a partial block is first buffered
  private fill = 0; // bytes in buf
  private pos = 0; // logical position of the file
  private ids: number[] = [];

  constructor(private readonly pool: PoolWriter) {}

  get position(): number {
    return this.pos;
  }

  async write(data: Buffer): Promise<void> {
    let off = 0;
    while (off < data.length) {
      if (this.fill === 0 && data.length - off >= POOL_BLOCK) {
        // whole block straight from the caller's buffer
        this.ids.push(await this.pool.addBlock(data.subarray(off, off + POOL_BLOCK)));
        off += POOL_BLOCK;
        this.pos += POOL_BLOCK;
        continue;
      }
      const n = Math.min(POOL_BLOCK - this.fill, data.length - off);
      if (this.buf === NO_BUFFER) this.buf = Buffer.allocUnsafe(POOL_BLOCK);
      data.copy(this.buf, this.fill, off, off + n);
      this.fill += n;
      off += n;
      this.pos += n;
      if (this.fill === POOL_BLOCK) await this.emit();
    }
  }

  /** Advance over `n` bytes of hole (zeros). */
  async skip(n: number): Promise<void> {
    while (n > 0) {
      if (this.fill === 0 && n >= POOL_BLOCK) {
        const whole = Math.floor(n / POOL_BLOCK);
        for (let i = 0; i < whole; i++) this.ids.push(0);
        this.pos += whole * POOL_BLOCK;
        n -= whole * POOL_BLOCK;
        continue;
      }
      const k = Math.min(POOL_BLOCK - this.fill, n);
      if (this.buf === NO_BUFFER) this.buf = Buffer.allocUnsafe(POOL_BLOCK);
      this.buf.fill(0, this.fill, this.fill + k);
      this.fill += k;
      this.pos += k;
      n -= k;
      if (this.fill === POOL_BLOCK) await this.emit();
    }
  }

  private async emit(): Promise<void> {
    this.ids.push(await this.pool.addBlock(this.buf.subarray(0, this.fill)));
    this.fill = 0;
  }

  /** Finish the file at its current position (or pad with holes up to `size`). */
  async end(size = this.pos): Promise<Content> {
    if (size < this.pos) throw new Error(`content longer than its declared size ${size}`);
    await this.skip(size - this.pos);
    if (this.fill > 0) await this.emit();
    return this.pool.addContent(size, Uint32Array.from(this.ids));
  }
}
