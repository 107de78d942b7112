// Pool on-disk conventions shared by the writer and the reader: block size,
// block flags, the stored-bytes check, how a pool block is presented as a
// deflate segment, and how it is framed as a zlib stream (RFC 1950), the
// form a squashfs gzip data block holds it in: a universal ISO's squashfs
// data blocks are pool blocks.

import { XXHash3 } from 'xxhash-addon';

export const POOL_BLOCK = 65536;

/** Block flag: the pool holds the block's raw bytes (deflate did not shrink it). */
export const FLAG_RAW = 1;

/** Largest payload of one deflate stored block, and the size of its header (BFINAL/BTYPE byte, LEN, NLEN). */
export const STORED_MAX = 65535;
export const STORED_HEADER = 5;

/** Pool bytes this far apart are still read as one run, the gap into a scratch buffer (a squashfs pool's zlib framing is 8). */
export const RUN_GAP_MAX = 16;

/** A block's check state in a store (the addon reads and sets the same array: native/pool_format.h). */
export enum Check {
  Unchecked = 0,
  Good = 1,
  Corrupt = 2,
}

/** What the addon's inflateBlocks says of each block. */
export enum InflateStatus {
  Ok = 0,
  StoredBad = 1,
  InflateBad = 2,
  CrcBad = 3,
  Short = 4,
}

/**
 * A compressed block as a zlib stream: a 2-byte header, the block's stored
 * deflate bytes unchanged (non-final blocks ended by a sync flush), an empty
 * final block (fixed Huffman: 03 00) and the Adler-32 of the uncompressed
 * bytes, big-endian.
 */
export const ZLIB_HEADER_LEN = 2;
export const ZLIB_TRAILER_LEN = 6;
export const ZLIB_FRAMING = ZLIB_HEADER_LEN + ZLIB_TRAILER_LEN;
/** An empty final block (fixed Huffman, BFINAL set): ends a deflate stream. */
export const DEFLATE_FINAL = Buffer.from([0x03, 0x00]);

/** The zlib header zlib itself writes for deflate level `level` (CM 8, 32 KiB window, FLEVEL from the level). */
export function zlibHeader(level: number): Buffer {
  const flevel = level < 2 ? 0 : level < 6 ? 1 : level === 6 ? 2 : 3;
  let h = (0x78 << 8) | (flevel << 6);
  h += 31 - (h % 31);
  return Buffer.from([h >> 8, h & 0xff]);
}

/** The end of a block's zlib stream: the empty final block and the Adler-32 (big-endian). */
export function zlibTrailer(adler32: number, out = Buffer.allocUnsafe(ZLIB_TRAILER_LEN), at = 0): Buffer {
  DEFLATE_FINAL.copy(out, at);
  out.writeUInt32BE(adler32 >>> 0, at + DEFLATE_FINAL.length);
  return out;
}

/**
 * The pool keeps a block raw when its zlib-framed form would not be smaller
 * than the block: squashfs then stores it uncompressed (its readers reject a
 * "compressed" block longer than the block).
 */
export function keepsRaw(deflated: number, size: number): boolean {
  return deflated + ZLIB_FRAMING >= size;
}

/** Metadata the catalog keeps for each pool block (id = index + 1). */
export interface BlockInfo {
  offset: number; // byte offset in the pool file
  csize: number; // stored size in the pool (deflate bytes, or raw size if FLAG_RAW)
  usize: number; // uncompressed size
  flags: number;
  sxh: number; // check of the stored bytes: low 32 bits of their XXH3-64 (storedCheck)
  crc32: number; // of the uncompressed bytes
  adler32: number; // of the uncompressed bytes
}

/** Bytes this block occupies framed for squashfs: its zlib stream, or its raw bytes when kept raw. */
export function framedSize(b: Pick<BlockInfo, 'csize' | 'usize' | 'flags'>): number {
  return b.flags & FLAG_RAW ? b.usize : b.csize + ZLIB_FRAMING;
}

/** Bytes this block occupies as a deflate segment in a spliced view. */
export function deflateSegmentSize(b: Pick<BlockInfo, 'csize' | 'usize' | 'flags'>): number {
  if (b.flags & FLAG_RAW) return b.usize + STORED_HEADER * Math.max(1, Math.ceil(b.usize / STORED_MAX));
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
