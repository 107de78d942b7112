// Pool reader. Spliced (deflate) segments are read straight from the pool
// file into the caller's buffer, contiguous pool bytes in one scatter read:
// what the page cache holds at once on the event loop's thread (the pool
// bytes ahead of a sequential reader are asked of the kernel in the
// background, see prefetchStored), the rest on the thread pool. Inflated
// blocks come from an LRU (lru-cache, capped in retained bytes) with
// in-flight de-duplication; inflation runs on the libuv thread pool (the
// native addon's libdeflate: read, check and inflate in one job; node's
// zlib when the addon is missing), so concurrent readers use both cores.
// A block a sequential reader is through with (inflatedInto's `done`)
// leaves the cache at once and its buffer takes the next inflation.
//
// Nothing unverified is ever returned: each block's stored bytes are
// checked (XXH3, from the catalog) on the bytes of its first read, which
// is widened to the whole block when it reads only part of it; every
// inflated block is also checked against its CRC-32. A mismatch is a
// BlockCorruptError naming the block (EIO at the mount), never wrong
// bytes, and it does not spoil the other blocks.

import * as zlib from 'node:zlib';
import { LRUCache } from 'lru-cache';
import { crc32 } from '../checksum/crc32';
import { ByteSource, preadEach } from '../io/source';
import { lastAtOrBefore } from '../util/search';
import { NativeAddon, nativeIfBuilt } from '../native';
import { SegKind } from '../recipe/recipe';
import { blockDigest, DIGEST_BYTES } from './digests';
import {
  BlockInfo, Check, deflateSegmentSize, FLAG_RAW, InflateStatus, POOL_BLOCK, RUN_GAP_MAX, STORED_HEADER, STORED_MAX, storedCheck, storedCheckOf,
} from './format';

/** Buffers of evicted blocks kept for reuse (at most this many, POOL_BLOCK bytes each). */
const SPARE_BUFFERS = 64;
/** Blocks whose stored bytes lie at most this far apart are read ahead as one range. */
const PREFETCH_GAP = 256 * 1024;
/** Blocks inflated per thread-pool job (fewer hand-offs and completions; both cores still busy). */
const INFLATE_BATCH = 8;
/** Where the bytes between runs read as one go (RUN_GAP_MAX). */
const GAP = Buffer.alloc(RUN_GAP_MAX);

/** The cache holds a block's stored bytes under an even key, its inflated bytes under the odd one after. */
const storedKey = (id: number) => id * 2;
const inflatedKey = (id: number) => id * 2 + 1;
const isInflatedKey = (key: number) => (key & 1) === 1;

/** A caller waiting for a block being inflated: for a copy of part of it, or (whole) for its buffer. */
interface InflateWaiter {
  dst?: Buffer;
  /** the caller is through with the block after this copy (see inflatedInto) */
  done?: boolean;
  dstOff: number;
  srcOff: number;
  n: number;
  resolve: (b: Buffer) => void;
  reject: (e: Error) => void;
}

export class BlockCorruptError extends Error {
  readonly code = 'EUNISO_CORRUPT';
  constructor(message: string) {
    super(message);
    this.name = 'BlockCorruptError';
  }
}

/** Column arrays of the catalog's block table (id = index + 1). */
export interface BlockTable {
  count: number;
  offset: Float64Array; // ascending in id order, blocks never overlap (gaps between them hold other bytes)
  csize: Uint32Array;
  usize: Uint32Array;
  flags: Uint8Array;
  sxh: Uint32Array;
  crc32: Uint32Array;
  poolBytes: number;
}

export function blockTableFrom(infos: BlockInfo[], poolBytes: number): BlockTable {
  const n = infos.length;
  const t: BlockTable = {
    count: n, offset: new Float64Array(n), csize: new Uint32Array(n), usize: new Uint32Array(n),
    flags: new Uint8Array(n), sxh: new Uint32Array(n), crc32: new Uint32Array(n), poolBytes,
  };
  infos.forEach((b, i) => {
    t.offset[i] = b.offset; t.csize[i] = b.csize; t.usize[i] = b.usize; t.flags[i] = b.flags;
    t.sxh[i] = b.sxh; t.crc32[i] = b.crc32;
  });
  return t;
}

function inflateAsync(buf: Buffer, size: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    zlib.inflateRaw(buf, { chunkSize: Math.max(1024, size), finishFlush: zlib.constants.Z_SYNC_FLUSH }, (err, out) =>
      err ? reject(err) : resolve(out));
  });
}

/** Parts of blocks' deflate segments wanted in a caller's buffer (parallel arrays). */
export class SpliceList {
  readonly id: number[] = [];
  readonly within: number[] = []; // offset inside the block's deflate segment
  readonly n: number[] = [];
  readonly dst: number[] = [];

  push(id: number, within: number, n: number, dst: number): void {
    this.id.push(id);
    this.within.push(within);
    this.n.push(n);
    this.dst.push(dst);
  }

  get length(): number {
    return this.id.length;
  }
}

/** Bytes a cached buffer really keeps alive (a slice may pin a larger ArrayBuffer). */
function retained(b: Buffer): number {
  return Math.max(1, b.buffer.byteLength);
}

/** An exact-size copy when `b` is a small view of a larger allocation. */
function compact(b: Buffer): Buffer {
  if (b.buffer.byteLength <= b.length + (b.length >> 3)) return b;
  const c = Buffer.allocUnsafeSlow(b.length);
  b.copy(c);
  return c;
}

/** The columns of a recipe that spliceRead walks (src/recipe/recipe.ts Recipe has them). */
export interface SpliceColumns {
  size: number;
  starts: Float64Array;
  kinds: Uint8Array;
  args: Uint32Array;
  offs: Float64Array;
  litData: Buffer;
  litStart: Uint32Array;
}

export interface BlockStoreOptions {
  cacheBytes?: number;
  /** each block's digest (src/pool/digests.ts), checked besides its 32-bit check: a signed image under --trust */
  digests?: Buffer;
  name?: string; // for error messages (the pool file)
  nativeInflate?: boolean; // false: inflate with node's zlib (tests compare both paths)
}

export class BlockStore {
  private readonly cache: LRUCache<number, Buffer>;
  private readonly pending = new Map<number, Promise<Buffer>>();
  /** per block (by id): Check.Unchecked, Good or Corrupt; the addon's spliced read updates it too */
  private readonly storedState: Uint8Array;
  private readonly inflatedOk: Uint8Array;
  /** blocks being inflated by the addon */
  private readonly inflating = new Set<number>();
  /** callers waiting for a block being inflated by the addon (inflatedInto, inflated) */
  private readonly waiters = new Map<number, InflateWaiter[]>();
  /** buffers for readRun's partly read blocks, for reuse */
  private readonly scratch: Buffer[] = [];
  /** the largest stored size of a block */
  private readonly maxStored: number;
  /** POOL_BLOCK-byte buffers of evicted blocks, for the next inflations */
  private readonly spare: Buffer[] = [];
  /** buffers handed out by inflated(): never reused */
  private readonly escaped = new WeakSet<Buffer>();
  readonly name: string;
  /** blocks inflated so far (each inflation counts, also of a block inflated before) */
  inflations = 0;
  private readonly digests: Buffer | undefined;
  /** the addon's inflateBlock, when built and the source is a plain file */
  private readonly nativeInflate: NativeAddon | undefined;

  constructor(readonly source: ByteSource, readonly table: BlockTable, opts: BlockStoreOptions = {}) {
    this.name = opts.name ?? 'pool';
    // the addon checks only the 32-bit check: with digests every block goes through checkRun
    this.digests = opts.digests;
    this.nativeInflate = source.locate && opts.nativeInflate !== false && !opts.digests ? nativeIfBuilt() : undefined;
    this.cache = new LRUCache<number, Buffer>({
      maxSize: Math.max(1 << 20, opts.cacheBytes ?? 64 << 20),
      sizeCalculation: retained,
      dispose: (b, key) => {
        // an inflated block's buffer that never left the store: reuse it
        if (isInflatedKey(key) && !this.escaped.has(b)) this.keepSpare(b);
      },
    });
    this.storedState = new Uint8Array(table.count + 1);
    this.maxStored = table.csize.reduce((m, c) => Math.max(m, c), 1);
    this.inflatedOk = new Uint8Array(table.count + 1);
  }

  private check(id: number): void {
    if (!Number.isInteger(id) || id < 1 || id > this.table.count) {
      throw new BlockCorruptError(`${this.name}: reference to block ${id}, which does not exist`);
    }
  }

  /** Id of the last block starting at or before pool byte `pos` (blocks lie in id order, not always back to back). */
  private blockAt(pos: number): number {
    return lastAtOrBefore(this.table.offset, pos, 0, this.table.count - 1) + 1;
  }

  private corrupt(id: number): BlockCorruptError {
    return new BlockCorruptError(`${this.name}: block ${id} is corrupt (stored checksum mismatch)`);
  }

  /**
   * Check one block on its own, bypassing the cache: its stored bytes must
   * match their check, and inflate to its size and CRC-32 (uniso verify).
   */
  async checkBlock(id: number): Promise<void> {
    this.check(id);
    const t = this.table;
    const i = id - 1;
    const comp = Buffer.allocUnsafe(t.csize[i]);
    if ((await this.source.pread(comp, t.offset[i])) !== comp.length) {
      throw new BlockCorruptError(`${this.name}: block ${id} lies beyond the end of the pool (truncated?)`);
    }
    if (storedCheck(comp) !== t.sxh[i] || !this.digestMatches(id, [comp])) throw this.corrupt(id);
    let out: Buffer;
    try {
      out = t.flags[i] & FLAG_RAW ? comp : await inflateAsync(comp, t.usize[i]);
    } catch (e) {
      throw new BlockCorruptError(`${this.name}: block ${id} is corrupt (does not inflate: ${(e as Error).message})`);
    }
    if (out.length !== t.usize[i] || crc32(out) !== t.crc32[i]) {
      throw new BlockCorruptError(`${this.name}: block ${id} is corrupt (checksum mismatch)`);
    }
  }

  /** The block exactly as stored in the pool (verified). */
  stored(id: number): Promise<Buffer> {
    this.check(id);
    return this.cached(storedKey(id), () => this.loadStored(id));
  }

  /** The block's uncompressed bytes (verified). The buffer is the caller's to keep. */
  inflated(id: number): Promise<Buffer> {
    this.check(id);
    const t = this.table;
    const raw = (t.flags[id - 1] & FLAG_RAW) !== 0;
    if (this.nativeLocation(id)) {
      const hit = this.cache.get(inflatedKey(id));
      if (hit) {
        this.escaped.add(hit);
        return Promise.resolve(hit);
      }
      if (this.storedState[id] === Check.Corrupt) return Promise.reject(this.corrupt(id));
      return new Promise((resolve, reject) => this.wait(id, { dstOff: 0, srcOff: 0, n: 0, resolve, reject }));
    }
    if (raw) return this.stored(id).then((b) => this.verifyInflated(id, b));
    return this.cached(inflatedKey(id), async () => {
      const comp = await this.loadStored(id);
      let out: Buffer;
      try {
        out = await inflateAsync(comp, t.usize[id - 1]);
      } catch (e) {
        throw new BlockCorruptError(`${this.name}: block ${id} does not inflate (${(e as Error).message})`);
      }
      this.inflations++;
      return this.verifyInflated(id, compact(out));
    });
  }

  /**
   * Copy bytes [srcOff, srcOff + n) of the block's uncompressed bytes to
   * `dst` at `dstOff`: at once from the cache (no promise), else as soon as
   * the block is inflated, before anything else can happen to its buffer.
   * `done`: the caller (a sequential reader) is through with the block, so
   * its buffer is reused for the next inflation rather than kept in the
   * cache: a stream's blocks then cycle through a few warm buffers instead
   * of the whole cache, which stays for blocks read again.
   */
  inflatedInto(id: number, srcOff: number, dst: Buffer, dstOff: number, n: number, done = false): Promise<void> | undefined {
    this.check(id);
    if (srcOff < 0 || srcOff + n > this.table.usize[id - 1]) {
      return Promise.reject(new BlockCorruptError(`${this.name}: block ${id} is shorter than the recipe expects`));
    }
    if (!this.nativeLocation(id)) return this.inflated(id).then((b) => void b.copy(dst, dstOff, srcOff, srcOff + n));
    const hit = this.cache.get(inflatedKey(id));
    if (hit) {
      hit.copy(dst, dstOff, srcOff, srcOff + n);
      if (done) this.cache.delete(inflatedKey(id)); // dispose keeps the buffer for reuse
      return undefined;
    }
    if (this.storedState[id] === Check.Corrupt) return Promise.reject(this.corrupt(id));
    return new Promise((resolve, reject) => this.wait(id, { dst, dstOff, srcOff, n, done, resolve: () => resolve(), reject }));
  }

  /** Have `w` told when block `id` is inflated by the addon, starting the inflation if need be. */
  private wait(id: number, w: InflateWaiter): void {
    let list = this.waiters.get(id);
    if (!list) this.waiters.set(id, (list = []));
    list.push(w);
    if (!this.inflating.has(id)) this.inflateNative([id]);
  }

  /** Start inflating blocks into the cache (readahead); errors are left for whoever reads them. */
  prefetchInflated(ids: number[]): void {
    const todo: number[] = [];
    const seen = new Set<number>(); // a recipe may use a block more than once
    for (const id of ids) {
      if (!Number.isInteger(id) || id < 1 || id > this.table.count || this.storedState[id] === Check.Corrupt || seen.has(id)) continue;
      seen.add(id);
      const key = inflatedKey(id);
      if (this.cache.has(key) || this.pending.has(key) || this.inflating.has(id)) continue;
      if (this.nativeLocation(id)) todo.push(id);
      else this.inflated(id).catch(() => { /* reported when read */ });
    }
    if (todo.length) this.inflateNative(todo);
  }

  /**
   * The addon's reader of a recipe's spliced reads (native/splice_read.c):
   * reads that take only literals, zeros and spliced pool bytes, all in the
   * page cache, are done in one call on this thread, checking blocks as
   * readRun does; it answers -1 for any other read, which the caller then
   * does the usual way. Undefined without the addon or when the source
   * cannot say which files hold the pool.
   */
  nativeSplicer(r: SpliceColumns): ((buf: Buffer, pos: number) => number) | undefined {
    const addon = this.nativeInflate;
    const t = this.table;
    const ext = addon && t.count > 0 ? this.source.extents?.() : undefined;
    if (!addon || !ext) return undefined;
    const extents = new Float64Array(4 * ext.length);
    ext.forEach((e, i) => extents.set([e.at, e.fd, e.pos, e.len], 4 * i));
    // the addon splices only zero, literal and deflate segments (it answers -1 for a read that
    // touches another), whose offsets fit 32 bits; an include's offset (which may pass 4 GiB: a
    // tar of a large disk) is never read there, and goes as 0
    const offs = new Uint32Array(r.kinds.length);
    for (let i = 0; i < offs.length; i++) {
      if (r.kinds[i] === SegKind.Literal || r.kinds[i] === SegKind.Deflate) {
        if (r.offs[i] > 0xffffffff) return undefined;
        offs[i] = r.offs[i];
      }
    }
    const ctx = addon.spliceContext(extents, r.size, r.starts, r.kinds, r.args, offs, r.litData, r.litStart,
      t.offset, t.csize, t.usize, t.flags, t.sxh, this.storedState);
    return (buf, pos) => addon.spliceRead(ctx, buf, pos);
  }

  /**
   * Have the stored bytes of these blocks read into the page cache in the
   * background (readahead for spliced reads), a run of nearby blocks at a time.
   */
  prefetchStored(ids: number[]): void {
    const src = this.source;
    if (!src.willNeed) return;
    const t = this.table;
    let start = -1;
    let end = -1;
    for (const id of ids) {
      if (!Number.isInteger(id) || id < 1 || id > t.count) continue;
      const s = t.offset[id - 1];
      const e = s + t.csize[id - 1];
      if (start >= 0 && s >= start && s <= end + PREFETCH_GAP) {
        end = Math.max(end, e);
        continue;
      }
      if (start >= 0) src.willNeed(start, end - start);
      start = s;
      end = e;
    }
    if (start >= 0) src.willNeed(start, end - start);
  }

  private nativeLocation(id: number): { fd: number; pos: number } | undefined {
    return this.nativeInflate ? this.source.locate?.(this.table.offset[id - 1], this.table.csize[id - 1]) : undefined;
  }

  /**
   * Read, check and inflate blocks (none cached or in flight, all in the
   * pool file) on the thread pool with the native addon (libdeflate), up
   * to INFLATE_BATCH blocks per job: the stored bytes are checked against
   * their XXH3 and the result against its CRC-32 on the way. Callers that
   * need a block meanwhile wait for it (wait); on completion their copies
   * are made first, then the block goes into the cache.
   * Output buffers of evicted blocks that never left the store are reused,
   * so a steady read allocates nothing.
   */
  private inflateNative(ids: number[]): void {
    const t = this.table;
    for (let a = 0; a < ids.length;) {
      const batch: number[] = [];
      const outs: Buffer[] = [];
      const pos = new Float64Array(Math.min(INFLATE_BATCH, ids.length - a));
      const meta = new Uint32Array(pos.length * 4);
      let fd = -1;
      for (; a < ids.length && batch.length < INFLATE_BATCH; a++) {
        const id = ids[a];
        const where = this.nativeLocation(id)!;
        if (fd !== -1 && where.fd !== fd) break;
        fd = where.fd;
        const i = id - 1;
        const k = batch.length;
        batch.push(id);
        pos[k] = where.pos;
        meta[4 * k] = t.csize[i];
        meta[4 * k + 1] = t.sxh[i];
        meta[4 * k + 2] = t.crc32[i];
        meta[4 * k + 3] = t.flags[i] & FLAG_RAW ? 1 : 0;
        outs.push(this.outputBuffer(t.usize[i]));
        this.inflating.add(id);
      }
      const n = batch.length;
      this.nativeInflate!.inflateBlocks(fd, n === pos.length ? pos : pos.subarray(0, n), n * 4 === meta.length ? meta : meta.subarray(0, n * 4), outs,
        (err, status) => {
          for (let k = 0; k < n; k++) this.inflateDone(batch[k], outs[k], err ? -1 : status![k], err);
        });
    }
  }

  /**
   * A buffer of exactly `size` bytes for an inflated block: a spare one for
   * a full block (most of them), else a new one of its own size.
   */
  private outputBuffer(size: number): Buffer {
    return size === POOL_BLOCK && this.spare.length ? this.spare.pop()! : Buffer.allocUnsafeSlow(size);
  }

  /** Keep `b` (a whole block's buffer that never left the store) for reuse. */
  private keepSpare(b: Buffer): void {
    if (b.length === POOL_BLOCK && b.buffer.byteLength === POOL_BLOCK && this.spare.length < SPARE_BUFFERS) this.spare.push(b);
  }

  private inflateDone(id: number, out: Buffer, status: number, err: Error | null): void {
    this.inflating.delete(id);
    const waiting = this.waiters.get(id);
    this.waiters.delete(id);
    let error: BlockCorruptError | undefined;
    if (status === InflateStatus.Ok) {
      this.inflations++;
      this.storedState[id] = Check.Good;
      this.inflatedOk[id] = 1;
      let done = false;
      if (waiting) {
        for (const w of waiting) {
          if (w.dst) out.copy(w.dst, w.dstOff, w.srcOff, w.srcOff + w.n);
          else this.escaped.add(out); // handed out whole (inflated): never reused
          done ||= w.done === true;
          w.resolve(out);
        }
      }
      if (done && !this.escaped.has(out)) this.keepSpare(out);
      else this.cache.set(inflatedKey(id), out);
      return;
    }
    if (status === InflateStatus.StoredBad) {
      this.storedState[id] = Check.Corrupt;
      error = this.corrupt(id);
    } else if (status === InflateStatus.InflateBad || status === InflateStatus.CrcBad) {
      error = new BlockCorruptError(`${this.name}: block ${id} is corrupt (${status === InflateStatus.InflateBad ? 'does not inflate to its size' : 'checksum mismatch after inflate'})`);
    } else if (status === InflateStatus.Short) {
      error = new BlockCorruptError(`${this.name}: block ${id} lies beyond the end of the pool (truncated?)`);
    } else {
      error = new BlockCorruptError(`${this.name}: block ${id} is unreadable (${err?.message ?? 'unknown error'})`);
    }
    this.keepSpare(out);
    if (waiting) for (const w of waiting) w.reject(error);
  }

  /**
   * Fill `buf` with parts of blocks' deflate segments, reading the pool
   * straight into `buf`: each run of contiguous pool bytes is one scatter
   * read (see readRun). Undefined when done at once (every byte came from
   * the page cache), else a promise; never throws.
   */
  readDeflatedInto(list: SpliceList, buf: Buffer): Promise<void> | undefined {
    try {
      return this.spliceInto(list, buf);
    } catch (e) {
      return Promise.reject(e);
    }
  }

  private spliceInto(list: SpliceList, buf: Buffer): Promise<void> | undefined {
    const t = this.table;
    // runs of contiguous pool bytes; each run's parts are [dst, len] pairs in `buf`
    const runPos: number[] = [];
    const runLen: number[] = [];
    const runParts: number[][] = [];
    // a gap is read along only between a block and the next one (ids follow pool offsets, so no
    // block's bytes lie in it: checkRun hashes only bytes read into the caller's buffer or scratch)
    let lastId = -1;
    const add = (id: number, pos: number, dst: number, len: number) => {
      if (len === 0) return;
      const r = runPos.length - 1;
      const gap = r >= 0 ? pos - (runPos[r] + runLen[r]) : -1;
      const adjacent = id === lastId || id === lastId + 1;
      lastId = id;
      if (gap === 0 || (gap > 0 && gap <= RUN_GAP_MAX && adjacent)) {
        const parts = runParts[r];
        runLen[r] += gap + len;
        if (gap > 0) parts.push(-1, gap); // dst -1: into GAP
        else if (parts[parts.length - 2] >= 0 && parts[parts.length - 2] + parts[parts.length - 1] === dst) {
          parts[parts.length - 1] += len;
          return;
        }
        parts.push(dst, len);
      } else {
        runPos.push(pos);
        runLen.push(len);
        runParts.push([dst, len]);
      }
    };
    for (let k = 0; k < list.length; k++) {
      const id = list.id[k];
      const within = list.within[k];
      const n = list.n[k];
      const dst = list.dst[k];
      this.check(id);
      const i = id - 1;
      const raw = (t.flags[i] & FLAG_RAW) !== 0;
      const segLen = deflateSegmentSize({ csize: t.csize[i], usize: t.usize[i], flags: t.flags[i] });
      if (within + n > segLen) throw new BlockCorruptError(`${this.name}: block ${id} is shorter than the recipe expects`);
      if (!raw) {
        add(id, t.offset[i] + within, dst, n);
        continue;
      }
      // raw bytes wrapped in stored blocks: 5-byte headers made here, data read in place
      const end = within + n;
      for (let c = 0, cs = 0; cs < end; c++, cs += STORED_MAX + STORED_HEADER) {
        const clen = Math.min(STORED_MAX, t.usize[i] - c * STORED_MAX);
        for (let b = Math.max(cs, within); b < Math.min(cs + STORED_HEADER, end); b++) {
          const h = b - cs; // header byte: 00, LEN lo, LEN hi, NLEN lo, NLEN hi
          buf[dst + b - within] = h === 0 ? 0 : h === 1 ? clen & 0xff : h === 2 ? clen >> 8 : h === 3 ? ~clen & 0xff : (~clen >> 8) & 0xff;
        }
        const ds = Math.max(cs + STORED_HEADER, within);
        const de = Math.min(cs + STORED_HEADER + clen, end);
        if (de > ds) add(id, t.offset[i] + c * STORED_MAX + (ds - cs - STORED_HEADER), dst + ds - within, de - ds);
      }
    }
    let reads: Promise<void>[] | undefined;
    for (let r = 0; r < runPos.length; r++) {
      let p: Promise<void> | undefined;
      try {
        p = this.readRun(runPos[r], runLen[r], runParts[r], buf);
      } catch (e) {
        p = Promise.reject(e); // settled with the others: no read may still be writing to buf
      }
      if (p) (reads ??= []).push(p);
    }
    if (!reads) return undefined;
    if (reads.length === 1) return reads[0];
    return Promise.allSettled(reads).then((settled) => {
      for (const res of settled) if (res.status === 'rejected') throw res.reason;
    });
  }

  /**
   * Read pool bytes [pos, pos + len) into the parts ([dst, len] pairs; dst
   * -1 for bytes between blocks, which are dropped) of `buf` with one
   * scatter read. Blocks the run touches that are not yet
   * checked are checked on the bytes just read: the read is widened to
   * their whole stored bytes (the parts outside the run go to small scratch
   * buffers), so the first read of a block checks it without reading the
   * pool twice, and nothing is handed back before its blocks are good.
   */
  private readRun(pos: number, len: number, parts: number[], buf: Buffer): Promise<void> | undefined {
    const t = this.table;
    if (pos < 0 || pos + len > t.poolBytes) {
      throw new BlockCorruptError(`${this.name}: read at ${pos}+${len} beyond the end of the pool`);
    }
    const a = this.blockAt(pos);
    const b = this.blockAt(pos + len - 1);
    let unchecked = false;
    for (let id = a; id <= b; id++) {
      const st = this.storedState[id];
      if (st === Check.Corrupt) throw this.corrupt(id);
      if (st === Check.Unchecked) unchecked = true;
    }
    // the run's bytes, and (when checking) the rest of its first and last blocks
    const head = unchecked && this.storedState[a] === Check.Unchecked ? pos - t.offset[a - 1] : 0;
    const tail = unchecked && this.storedState[b] === Check.Unchecked ? t.offset[b - 1] + t.csize[b - 1] - (pos + len) : 0;
    const bufs: Buffer[] = [];
    const scratch = head > 0 || tail > 0 ? this.takeScratch() : undefined;
    if (head > 0) bufs.push(scratch!.subarray(0, head));
    for (let q = 0; q < parts.length; q += 2) {
      bufs.push(parts[q] < 0 ? GAP.subarray(0, parts[q + 1]) : buf.subarray(parts[q], parts[q] + parts[q + 1]));
    }
    if (tail > 0) bufs.push(scratch!.subarray(head, head + tail));
    const from = pos - head;
    const want = head + len + tail;
    // what the page cache holds is read at once on this thread (sequential
    // readers find the kernel's readahead there), the rest on the thread pool
    const got = this.source.preadCached ? this.source.preadCached(bufs, from) : 0;
    if (got === want) {
      try {
        if (unchecked) this.checkRun(bufs, from, a, b);
      } finally {
        if (scratch) this.scratch.push(scratch);
      }
      return undefined;
    }
    return this.readRest(bufs, from, want, got).then(() => {
      if (unchecked) this.checkRun(bufs, from, a, b);
    }).finally(() => {
      if (scratch) this.scratch.push(scratch);
    });
  }

  /** A buffer for the parts of a run's first and last blocks outside the run (two blocks' worth). */
  private takeScratch(): Buffer {
    return this.scratch.pop() ?? Buffer.allocUnsafeSlow(2 * this.maxStored);
  }

  /** Read the rest of `bufs` (pool bytes [pos, pos + want), the first `got` already read) on the thread pool. */
  private async readRest(bufs: Buffer[], pos: number, want: number, got: number): Promise<void> {
    if (got > 0) {
      let skip = got;
      let k = 0;
      while (skip >= bufs[k].length) skip -= bufs[k++].length;
      bufs = [bufs[k].subarray(skip), ...bufs.slice(k + 1)];
    }
    const src = this.source;
    const at = pos + got;
    const n = bufs.length === 1 ? await src.pread(bufs[0], at)
      : src.preadv ? await src.preadv(bufs, at) : await preadEach(src, bufs, at);
    if (got + n !== want) throw new BlockCorruptError(`${this.name}: pool read at ${pos} beyond the end of the pool (truncated?)`);
  }

  /**
   * Check blocks `a`..`b` not yet checked whose stored bytes lie wholly in
   * `bufs` (pool bytes from `from`, back to back); throws if any of `a`..`b`
   * is corrupt.
   */
  private checkRun(bufs: Buffer[], from: number, a: number, b: number): void {
    const t = this.table;
    let k = 0;
    let kStart = from; // pool position of bufs[k]
    const end = from + bufs.reduce((n, x) => n + x.length, 0);
    for (let id = a; id <= b; id++) {
      const bs = t.offset[id - 1];
      const be = bs + t.csize[id - 1];
      if (this.storedState[id] !== Check.Unchecked || bs < from || be > end) continue;
      while (kStart + bufs[k].length <= bs) kStart += bufs[k++].length;
      const pieces: Buffer[] = [];
      for (let j = k, js = kStart; js < be; js += bufs[j++].length) {
        pieces.push(bufs[j].subarray(Math.max(0, bs - js), Math.min(bufs[j].length, be - js)));
      }
      this.storedState[id] = storedCheckOf(pieces) === t.sxh[id - 1] && this.digestMatches(id, pieces) ? Check.Good : Check.Corrupt;
    }
    for (let id = a; id <= b; id++) if (this.storedState[id] !== Check.Good) throw this.corrupt(id);
  }

  /** The block's stored bytes match its digest (always true without digests). */
  private digestMatches(id: number, pieces: Buffer[]): boolean {
    if (!this.digests) return true;
    const want = this.digests.subarray((id - 1) * DIGEST_BYTES, id * DIGEST_BYTES);
    return blockDigest(pieces).equals(want);
  }

  private verifyInflated(id: number, out: Buffer): Buffer {
    if (this.inflatedOk[id]) return out;
    const t = this.table;
    if (out.length !== t.usize[id - 1] || crc32(out) !== t.crc32[id - 1]) {
      throw new BlockCorruptError(`${this.name}: block ${id} is corrupt (checksum mismatch after inflate)`);
    }
    this.inflatedOk[id] = 1;
    return out;
  }

  /** The block's stored bytes, checked on the bytes read when not checked yet. */
  private async loadStored(id: number): Promise<Buffer> {
    const t = this.table;
    if (this.storedState[id] === Check.Corrupt) throw this.corrupt(id);
    const buf = Buffer.allocUnsafe(t.csize[id - 1]);
    const n = await this.source.pread(buf, t.offset[id - 1]);
    if (n !== buf.length) throw new BlockCorruptError(`${this.name}: block ${id} lies beyond the end of the pool (truncated?)`);
    this.checkRun([buf], t.offset[id - 1], id, id);
    return buf;
  }

  private cached(key: number, load: () => Promise<Buffer>): Promise<Buffer> {
    const hit = this.cache.get(key);
    if (hit) return Promise.resolve(hit);
    let p = this.pending.get(key);
    if (!p) {
      p = load().then(
        (b) => { this.pending.delete(key); this.cache.set(key, b); return b; },
        (e) => { this.pending.delete(key); throw e; },
      );
      this.pending.set(key, p);
    }
    return p;
  }
}
