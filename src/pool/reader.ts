// Pool reader: fetches a block's stored bytes or its inflated bytes from the
// pool source, with an LRU (lru-cache, capped in bytes) and in-flight
// de-duplication. Every block's checksum is verified the first time it is
// read (stored bytes against ccrc, inflated bytes against crc32); a mismatch
// is a BlockCorruptError, never wrong bytes. Inflation runs on the libuv
// thread pool, so concurrent readers use both cores.

import * as zlib from 'node:zlib';
import { LRUCache } from 'lru-cache';
import { crc32 } from '../checksum/crc32';
import { ByteSource } from '../io/source';
import { BlockInfo, FLAG_RAW, wrapStored } from './format';

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
  offset: Float64Array;
  csize: Uint32Array;
  usize: Uint32Array;
  flags: Uint8Array;
  crc32: Uint32Array;
  adler32: Uint32Array;
  ccrc: Uint32Array;
}

export function blockTableFrom(infos: BlockInfo[]): BlockTable {
  const n = infos.length;
  const t: BlockTable = {
    count: n, offset: new Float64Array(n), csize: new Uint32Array(n), usize: new Uint32Array(n),
    flags: new Uint8Array(n), crc32: new Uint32Array(n), adler32: new Uint32Array(n), ccrc: new Uint32Array(n),
  };
  infos.forEach((b, i) => {
    t.offset[i] = b.offset; t.csize[i] = b.csize; t.usize[i] = b.usize; t.flags[i] = b.flags;
    t.crc32[i] = b.crc32; t.adler32[i] = b.adler32; t.ccrc[i] = b.ccrc;
  });
  return t;
}

function inflateAsync(buf: Buffer, size: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    zlib.inflateRaw(buf, { chunkSize: Math.max(1024, size), finishFlush: zlib.constants.Z_SYNC_FLUSH }, (err, out) =>
      err ? reject(err) : resolve(out));
  });
}

export interface BlockStoreOptions {
  cacheBytes?: number;
  name?: string; // for error messages (the pool file)
}

export class BlockStore {
  private readonly cache: LRUCache<number, Buffer>;
  private readonly pending = new Map<number, Promise<Buffer>>();
  private readonly storedOk: Uint8Array;
  private readonly inflatedOk: Uint8Array;
  readonly name: string;

  constructor(readonly source: ByteSource, readonly table: BlockTable, opts: BlockStoreOptions = {}) {
    this.name = opts.name ?? 'pool';
    this.cache = new LRUCache<number, Buffer>({
      maxSize: Math.max(1 << 20, opts.cacheBytes ?? 64 << 20),
      sizeCalculation: (b) => Math.max(1, b.length),
    });
    this.storedOk = new Uint8Array(table.count + 1);
    this.inflatedOk = new Uint8Array(table.count + 1);
  }

  private check(id: number): void {
    if (!Number.isInteger(id) || id < 1 || id > this.table.count) {
      throw new BlockCorruptError(`${this.name}: reference to block ${id}, which does not exist`);
    }
  }

  /** The block exactly as stored in the pool (verified). */
  stored(id: number): Promise<Buffer> {
    this.check(id);
    return this.cached(id * 2, () => this.loadStored(id));
  }

  /** The block's uncompressed bytes (verified). */
  inflated(id: number): Promise<Buffer> {
    this.check(id);
    const t = this.table;
    if (t.flags[id - 1] & FLAG_RAW) return this.stored(id).then((b) => this.verifyInflated(id, b));
    return this.cached(id * 2 + 1, async () => {
      const comp = await this.loadStored(id);
      let out: Buffer;
      try {
        out = await inflateAsync(comp, t.usize[id - 1]);
      } catch (e) {
        throw new BlockCorruptError(`${this.name}: block ${id} does not inflate (${(e as Error).message})`);
      }
      return this.verifyInflated(id, out);
    });
  }

  /** The block as a deflate segment: its compressed body, or raw bytes wrapped in stored blocks. */
  async deflated(id: number): Promise<Buffer> {
    this.check(id);
    if (this.table.flags[id - 1] & FLAG_RAW) {
      return this.cached(-id, async () => wrapStored(await this.stored(id)));
    }
    return this.stored(id);
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

  private async loadStored(id: number): Promise<Buffer> {
    const t = this.table;
    const len = t.csize[id - 1];
    const buf = Buffer.allocUnsafe(len);
    const n = await this.source.pread(buf, t.offset[id - 1]);
    if (n !== len) throw new BlockCorruptError(`${this.name}: block ${id} lies beyond the end of the pool (truncated?)`);
    if (!this.storedOk[id]) {
      if (crc32(buf) !== t.ccrc[id - 1]) {
        throw new BlockCorruptError(`${this.name}: block ${id} is corrupt (stored checksum mismatch)`);
      }
      this.storedOk[id] = 1;
    }
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
