// gzip views spliced from pool blocks: a gzip member whose deflate body is
// the concatenation of (a) literal runs compressed at build time, each ended
// by a sync flush, (b) pool blocks' own deflate segments, byte for byte,
// and (c) precompressed zero runs; then an empty final block and the
// CRC-32/ISIZE trailer, both computed from the pieces. Nothing is
// compressed at read time.
//
// A literal run (a tar header) is compressed with the 32 KiB of the stream
// before it as zlib's preset dictionary: a decoder has exactly those bytes
// in its window there, so the run may refer back to the headers and file
// bytes before it (about 2.5 times smaller than compressed alone). The
// pool blocks among those bytes are inflated for it (`inflated`).

import * as zlib from 'node:zlib';
import { Recipe, RecipeBuilder } from '../recipe/recipe';
import { BlockInfo, DEFLATE_FINAL, deflateSegmentSize } from '../pool/format';
import { BLOCK_SIZE } from '../tree';
import { Piece, piecesCrc } from './pieces';

// ---- gzip (RFC 1952) constants ------------------------------------------
const GZIP_ID1 = 0x1f;
const GZIP_ID2 = 0x8b;
const CM_DEFLATE = 8;
const OS_UNIX = 3;

export function gzipHeader(): Buffer {
  // FLG 0, MTIME 0 (reproducible), XFL 0, OS Unix
  return Buffer.from([GZIP_ID1, GZIP_ID2, CM_DEFLATE, 0, 0, 0, 0, 0, 0, OS_UNIX]);
}

/** The window of deflate: how far back a match may refer. */
const WINDOW = 32768;
/** Literal runs compressed ahead of the one the recipe takes next. */
const AHEAD = 64;

/** Raw deflate of `data`, ended by a sync flush (byte aligned, not final). */
export function deflateSynced(data: Buffer, level = 9): Buffer {
  // zlib returns a view of its 16 KiB output chunk: keep an exact-size copy,
  // or every small header would pin a whole chunk for the life of the recipe
  return Buffer.from(zlib.deflateRawSync(data, { level, finishFlush: zlib.constants.Z_SYNC_FLUSH }));
}

/**
 * deflateSynced on the thread pool; `history`: the bytes the decoder will
 * have output just before (a preset dictionary).
 */
function deflateSyncedAsync(data: Buffer, level: number, history?: Buffer): Promise<Buffer> {
  const opts: zlib.ZlibOptions = { level, finishFlush: zlib.constants.Z_SYNC_FLUSH };
  if (history?.length) opts.dictionary = history;
  return new Promise((resolve, reject) => {
    zlib.deflateRaw(data, opts, (err, out) => (err ? reject(err) : resolve(Buffer.from(out))));
  });
}

export class GzipCompiler {
  private readonly zeroRuns = new Map<number, Buffer>(); // zero-run length -> its deflate segment

  /** `inflated`: a pool block's bytes, for the history of the literal runs after it (none: literals compressed alone). */
  constructor(private readonly blocks: BlockInfo[], private readonly inflated?: (id: number) => Promise<Buffer>) {}

  private zeroSegment(n: number): Buffer {
    let seg = this.zeroRuns.get(n);
    if (seg === undefined) {
      seg = deflateSynced(Buffer.alloc(n));
      this.zeroRuns.set(n, seg);
    }
    return seg;
  }

  /** The last `want` (at most WINDOW) bytes of the stream the pieces before `i` make. */
  private async history(pieces: Piece[], i: number): Promise<Buffer | undefined> {
    if (!this.inflated) return undefined;
    const parts: Buffer[] = [];
    let want = WINDOW;
    for (let k = i - 1; k >= 0 && want > 0; k--) {
      const p = pieces[k];
      const len = p.kind === 'bytes' ? p.data.length : p.kind === 'block' ? p.len : p.kind === 'zeros' ? p.n : p.recipe.size;
      const n = Math.min(want, len);
      if (p.kind === 'bytes') parts.push(p.data.subarray(len - n));
      else if (p.kind === 'zeros') parts.push(Buffer.alloc(n));
      else if (p.kind === 'block') parts.push((await this.inflated(p.id)).subarray(len - n));
      else throw new Error('gzip compiler: embedded recipes must be flattened first');
      want -= n;
    }
    return parts.length ? Buffer.concat(parts.reverse()) : undefined;
  }

  /** The deflate body (no header/trailer) for the pieces. */
  private async body(rb: RecipeBuilder, pieces: Piece[]): Promise<void> {
    // the next literal runs are compressed ahead, on the thread pool (their histories' pool
    // blocks inflate there too), and taken in order
    const literals: number[] = [];
    pieces.forEach((p, i) => { if (p.kind === 'bytes') literals.push(i); });
    const compressed = new Map<number, Promise<Buffer>>();
    let started = 0;
    let used = 0;
    for (const [i, p] of pieces.entries()) {
      switch (p.kind) {
        case 'bytes': {
          for (; started < literals.length && started < used + AHEAD; started++) {
            const k = literals[started];
            const data = (pieces[k] as { data: Buffer }).data;
            const c = this.history(pieces, k).then((h) => deflateSyncedAsync(data, 9, h));
            c.catch(() => { /* reported when awaited */ });
            compressed.set(k, c);
          }
          const lit = await compressed.get(i)!;
          compressed.delete(i);
          used++;
          rb.literal(lit);
          break;
        }
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

  async compile(pieces: Piece[]): Promise<{ recipe: Recipe; crc: number; size: number }> {
    const { crc, size } = piecesCrc(pieces, this.blocks);
    const rb = new RecipeBuilder();
    rb.literal(gzipHeader());
    await this.body(rb, pieces);
    const trailer = Buffer.alloc(DEFLATE_FINAL.length + 8);
    DEFLATE_FINAL.copy(trailer, 0);
    trailer.writeUInt32LE(crc >>> 0, 2);
    trailer.writeUInt32LE(size % 0x100000000, 6);
    rb.literal(trailer);
    return { recipe: rb.build(), crc, size };
  }
}
