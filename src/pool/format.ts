// Pool on-disk conventions shared by the writer and the reader: block size,
// block flags, the stored-bytes check, and how a pool block is presented as
// a deflate segment.

import { XXHash3 } from 'xxhash-addon';

export const POOL_BLOCK = 65536;

/** Block flag: the pool holds the block's raw bytes (deflate did not shrink it). */
export const FLAG_RAW = 1;

/** Largest payload of one deflate stored block. */
export const STORED_MAX = 65535;

/** Metadata the catalog keeps for each pool block (id = index + 1). */
export interface BlockInfo {
  offset: number; // byte offset in the pool file
  csize: number; // stored size in the pool (compressed body, or raw size if FLAG_RAW)
  usize: number; // uncompressed size
  flags: number;
  sxh: number; // check of the stored bytes: low 32 bits of their XXH3-64 (storedCheck)
  crc32: number; // of the uncompressed bytes
  adler32: number; // of the uncompressed bytes
}

/** Bytes this block occupies as a deflate segment in a spliced view. */
export function deflateSegmentSize(b: Pick<BlockInfo, 'csize' | 'usize' | 'flags'>): number {
  if (b.flags & FLAG_RAW) return b.usize + 5 * Math.max(1, Math.ceil(b.usize / STORED_MAX));
  return b.csize;
}

/** The check kept for a block's stored bytes: the low 32 bits of their XXH3-64. */
export function storedCheck(bytes: Buffer): number {
  return XXHash3.hash(bytes).readUInt32BE(4);
}

/** One streaming hasher, reset for each use (seed 0: the same hash as XXHash3.hash). */
let streaming: XXHash3 | undefined;

/** storedCheck of the bytes of `pieces` one after another. */
export function storedCheckOf(pieces: Buffer[]): number {
  if (pieces.length === 1) return storedCheck(pieces[0]);
  const h = (streaming ??= new XXHash3(Buffer.alloc(8)));
  h.reset();
  for (const p of pieces) h.update(p);
  return h.digest().readUInt32BE(4);
}
