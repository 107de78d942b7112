// Pool writer: cuts content into 64 KiB file-relative blocks, deduplicates
// them by XXH128, compresses each new block on the libuv thread pool (both
// cores) as raw deflate ended by a sync flush, and appends blocks to the pool
// file strictly in id order so the pool is bit-identical for identical input.
// Also builds per-file Content records (deduplicated by their block lists).

import * as fs from 'node:fs';
import * as zlib from 'node:zlib';
import { XXHash128 } from 'xxhash-addon';
import { crc32 } from '../checksum/crc32';
import { adler32 } from '../checksum/adler32';
import { BlockInfo, FLAG_RAW, POOL_BLOCK, storedCheck } from './format';
import type { Content } from '../tree';

const ZERO = Buffer.alloc(POOL_BLOCK);
const MAX_IN_FLIGHT = 16;

function isZero(buf: Buffer): boolean {
  return buf.equals(buf.length === POOL_BLOCK ? ZERO : ZERO.subarray(0, buf.length));
}

function deflateAsync(buf: Buffer, level: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    zlib.deflateRaw(buf, { level, finishFlush: zlib.constants.Z_SYNC_FLUSH, chunkSize: POOL_BLOCK + 1024 }, (err, out) =>
      err ? reject(err) : resolve(out));
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
  readonly hashes: Buffer[] = []; // XXH128 of each block, id = index + 1
  private readonly byHash = new Map<string, number>();
  private readonly contentByKey = new Map<string, Content>();
  private readonly done = new Map<number, Buffer>();
  private readonly inFlight = new Set<Promise<void>>();
  private nextWrite = 1;
  private offset = 0;
  private failure: unknown;
  private readonly fd: number;

  constructor(readonly path: string, private readonly level = 6) {
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
    const digest = XXHash128.hash(data);
    const key = digest.toString('latin1');
    const known = this.byHash.get(key);
    if (known !== undefined) return known;
    if (this.failure) throw this.failure;
    // Claim the id before any await, so concurrent callers never store a block twice.
    const id = this.blocks.length + 1;
    this.byHash.set(key, id);
    this.hashes.push(digest);
    this.stats.uniqueBlocks++;
    const own = Buffer.from(data); // the caller may reuse its buffer
    const info: BlockInfo = {
      offset: 0, csize: 0, usize: own.length, flags: 0,
      crc32: crc32(own), adler32: adler32(own), sxh: 0,
    };
    this.blocks.push(info);
    while (this.inFlight.size >= MAX_IN_FLIGHT) await Promise.race(this.inFlight);
    if (this.failure) throw this.failure;
    const job = deflateAsync(own, this.level).then(
      (comp) => {
        let stored = comp;
        if (comp.length >= own.length) {
          info.flags |= FLAG_RAW;
          stored = own;
        }
        info.csize = stored.length;
        info.sxh = storedCheck(stored);
        this.done.set(id, stored);
        this.flushInOrder();
      },
      (err) => { this.failure = err; },
    );
    const tracked: Promise<void> = job.finally(() => this.inFlight.delete(tracked));
    this.inFlight.add(tracked);
    return id;
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
    const c: Content = { id: this.contents.length + 1, size, blocks: blocks.slice() };
    this.contents.push(c);
    this.contentByKey.set(key, c);
    return c;
  }

  /** Start a streaming content writer for one file. */
  file(): ContentWriter {
    return new ContentWriter(this);
  }

  /** Wait until every block added so far is compressed and written. */
  async settle(): Promise<void> {
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

  /** Wait for every block to be compressed and written; close the file. */
  async finish(): Promise<number> {
    await this.settle();
    if (this.nextWrite !== this.blocks.length + 1) throw new Error('pool writer: blocks left unwritten');
    fs.fsyncSync(this.fd);
    fs.closeSync(this.fd);
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
  private buf = Buffer.alloc(POOL_BLOCK);
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
