// Loader for uniso's native addon (native/uniso_native.c): squashfs
// decompressors that Node's zlib lacks, SEEK_DATA/SEEK_HOLE, checking and
// inflating pool blocks (libdeflate) on the thread pool, page-cache
// reads and readahead advice for the pool file, the read of a spliced
// view (native/splice_read.c), and pool block compression (native/deflate_blocks.c).

import * as path from 'node:path';

export interface NativeAddon {
  decompress(codec: number, input: Buffer, outSize: number, cb: (err: Error | null, out?: Buffer) => void): void;
  seekData(fd: number, offset: number, hole: boolean): number;
  /**
   * Read, check and inflate pool blocks into `outs` on the thread pool, one
   * job (pos[k]: pool offset; meta[4k..4k+3]: stored size, stored XXH3 low
   * 32 bits, CRC-32, 1 if stored raw). status[k]: 0 good, 1 stored bytes
   * mismatch, 2 does not inflate to its size, 3 CRC-32 mismatch, 4 short read.
   */
  inflateBlocks(fd: number, pos: Float64Array, meta: Uint32Array, outs: Buffer[],
    cb: (err: Error | null, status?: Uint8Array) => void): void;
  /**
   * preadv2(RWF_NOWAIT) into `bufs` at `offset` on this thread: only bytes
   * the page cache holds; 0 when none (or the file cannot be read so).
   */
  readCached(fd: number, bufs: Buffer[], offset: number): number;
  /** posix_fadvise(WILLNEED) on the thread pool: the kernel starts reading the range into the page cache. */
  willNeed(fd: number, offset: number, length: number): void;
  /**
   * A context for spliceRead over one recipe's columns and the pool's block
   * table (referenced, not copied; `state` is the store's per-block check
   * state, updated by spliceRead); `extents` says where the pool's bytes
   * are: [pool offset, fd, file position, length] for each piece.
   */
  spliceContext(extents: Float64Array, size: number, starts: Float64Array, kinds: Uint8Array, args: Uint32Array,
    offs: Uint32Array, litData: Buffer, litStart: Uint32Array, offset: Float64Array, csize: Uint32Array,
    usize: Uint32Array, flags: Uint8Array, sxh: Uint32Array, state: Uint8Array): SpliceContext;
  /**
   * The recipe's bytes at `pos` into `buf` from the page cache, checking
   * blocks on first use: the count, or -1 when the read needs the
   * JavaScript path (a segment to inflate, bytes not cached, a bad block).
   */
  spliceRead(ctx: SpliceContext, buf: Buffer, pos: number): number;
  /**
   * Compress pool blocks (1 to 64, each at most 64 KiB) on the thread pool
   * with libdeflate at `level` (1-12), each into raw deflate ended by a sync
   * flush (never final). `out` holds the results back to back; meta[5k]:
   * result k's length (0: nothing shorter than the input), meta[5k+1..3]:
   * CRC-32 and Adler-32 of input k, low 32 bits of the result's XXH3-64.
   */
  deflateBlocks(level: number, inputs: Buffer[], cb: (err: Error | null, out?: Uint8Array, meta?: Uint32Array) => void): void;
}

/** Opaque: made by spliceContext. */
export type SpliceContext = { readonly __spliceContext: unique symbol };

let addon: NativeAddon | undefined;
/** why loading failed, remembered so that callers asking per read do not retry require() */
let missing: Error | undefined;

export function native(): NativeAddon {
  if (missing) throw missing;
  if (!addon) {
    const file = path.join(__dirname, '..', 'native', 'build', 'Release', 'uniso_native.node');
    try {
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      addon = require(file) as NativeAddon;
    } catch (e) {
      missing = new Error(`uniso's native addon is not built (${file}: ${(e as Error).message}); run "make build"`);
      throw missing;
    }
  }
  return addon;
}

/** The addon, or undefined when it is not built (callers then use a JS path). */
export function nativeIfBuilt(): NativeAddon | undefined {
  try {
    return native();
  } catch {
    return undefined;
  }
}
