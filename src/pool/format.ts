// Pool on-disk conventions shared by the writer and the reader: block size,
// block flags, the stored-bytes check, and how a pool block is presented as
// a deflate segment.

import { XXHash3 } from 'xxhash-addon';

export const POOL_BLOCK = 65536;

/**
 * Readers verify stored blocks a region of the pool at a time: the first
 * read touching a region reads it once and checks every block in it.
 */
export const CHECK_REGION = 1 << 20;

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
