// gzip views spliced from pool blocks: a gzip member whose deflate body is
// the concatenation of (a) literal runs compressed at build time, each ended
// by a sync flush, (b) pool blocks' own deflate segments, byte for byte,
// and (c) precompressed zero runs; then an empty final block and the
// CRC-32/ISIZE trailer, both computed from the pieces. Nothing is
// compressed at read time.

import * as zlib from 'node:zlib';
import { Recipe, RecipeBuilder } from '../recipe/recipe';
import { BlockInfo, deflateSegmentSize } from '../pool/format';
import { BLOCK_SIZE } from '../tree';
import { Piece, piecesCrc } from './pieces';

// ---- gzip (RFC 1952) constants ------------------------------------------
const GZIP_ID1 = 0x1f;
const GZIP_ID2 = 0x8b;
const CM_DEFLATE = 8;
const OS_UNIX = 3;
/** An empty fixed-Huffman block with BFINAL set: ends the deflate stream. */
const DEFLATE_FINAL_EMPTY = Buffer.from([0x03, 0x00]);

export function gzipHeader(): Buffer {
  // FLG 0, MTIME 0 (reproducible), XFL 0, OS Unix
  return Buffer.from([GZIP_ID1, GZIP_ID2, CM_DEFLATE, 0, 0, 0, 0, 0, 0, OS_UNIX]);
}

/** Raw deflate of `data`, ended by a sync flush (byte aligned, not final). */
export function deflateSynced(data: Buffer, level = 9): Buffer {
  // zlib returns a view of its 16 KiB output chunk: keep an exact-size copy,
  // or every small header would pin a whole chunk for the life of the recipe
  return Buffer.from(zlib.deflateRawSync(data, { level, finishFlush: zlib.constants.Z_SYNC_FLUSH }));
}

export class GzipCompiler {
  private readonly zeroRuns = new Map<number, Buffer>(); // zero-run length -> its deflate segment

  constructor(private readonly blocks: BlockInfo[]) {}

  private zeroSegment(n: number): Buffer {
    let seg = this.zeroRuns.get(n);
    if (seg === undefined) {
      seg = deflateSynced(Buffer.alloc(n));
      this.zeroRuns.set(n, seg);
    }
    return seg;
  }

  /** The deflate body (no header/trailer) for the pieces. */
  private body(rb: RecipeBuilder, pieces: Piece[]): void {
    for (const p of pieces) {
      switch (p.kind) {
        case 'bytes':
          rb.literal(deflateSynced(p.data));
          break;
        case 'block':
          rb.deflate(p.id, deflateSegmentSize(this.blocks[p.id - 1]));
          break;
        case 'zeros': {
          let left = p.n;
          while (left > 0) {
            const n = Math.min(left, BLOCK_SIZE);
            rb.literal(this.zeroSegment(n));
            left -= n;
          }
          break;
        }
        case 'recipe':
          throw new Error('gzip compiler: embedded recipes must be flattened first');
      }
    }
  }

  compile(pieces: Piece[]): { recipe: Recipe; crc: number; size: number } {
    const { crc, size } = piecesCrc(pieces, this.blocks);
    const rb = new RecipeBuilder();
    rb.literal(gzipHeader());
    this.body(rb, pieces);
    const trailer = Buffer.alloc(DEFLATE_FINAL_EMPTY.length + 8);
    DEFLATE_FINAL_EMPTY.copy(trailer, 0);
    trailer.writeUInt32LE(crc >>> 0, 2);
    trailer.writeUInt32LE(size % 0x100000000, 6);
    rb.literal(trailer);
    return { recipe: rb.build(), crc, size };
  }
}
