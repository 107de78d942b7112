// A whole virtual disk as placed pieces: the partition tables and GRUB's
// boot images as literals, then each file system's metadata literals and
// pool blocks at their partitions' offsets. Everything else reads as zero.
// From it come the raw disk recipe and, grain by grain (64 KiB), the pieces
// the compressed formats splice.

import { Recipe, RecipeBuilder } from '../../recipe/recipe';

export const SECTOR = 512;
export const GRAIN = 65536;

export type DiskPiece =
  | { offset: number; kind: 'lit'; data: Buffer }
  | { offset: number; kind: 'pool'; id: number; len: number };

function pieceEnd(p: DiskPiece): number {
  return p.offset + (p.kind === 'lit' ? p.data.length : p.len);
}

export class DiskImage {
  /** ordered, non-overlapping; adjacent literals are merged into one */
  readonly pieces: DiskPiece[] = [];

  constructor(readonly size: number, pieces: DiskPiece[]) {
    if (size % GRAIN !== 0) throw new Error('disk size must be a multiple of 64 KiB');
    const sorted = [...pieces].sort((a, b) => a.offset - b.offset);
    let run: Buffer[] = [];
    let runStart = 0;
    let runEnd = -1;
    const flush = (): void => {
      if (run.length) this.pieces.push({ offset: runStart, kind: 'lit', data: run.length === 1 ? run[0] : Buffer.concat(run) });
      run = [];
      runEnd = -1;
    };
    for (const p of sorted) {
      const last = run.length ? runEnd : this.pieces.length ? pieceEnd(this.pieces[this.pieces.length - 1]) : 0;
      if (p.offset < last) throw new Error(`disk pieces overlap at byte ${p.offset}`);
      if (p.kind === 'lit') {
        if (p.data.length === 0) continue;
        if (run.length && p.offset === runEnd) {
          run.push(p.data);
        } else {
          flush();
          run = [p.data];
          runStart = p.offset;
        }
        runEnd = p.offset + p.data.length;
      } else {
        flush();
        if (Math.floor(p.offset / GRAIN) !== Math.floor((p.offset + p.len - 1) / GRAIN)) {
          throw new Error(`pool block ${p.id} at byte ${p.offset} straddles a 64 KiB grain`);
        }
        this.pieces.push(p);
      }
    }
    flush();
    const last = this.pieces[this.pieces.length - 1];
    if (last && pieceEnd(last) > size) throw new Error('the partitions are larger than the disk');
  }

  /** The uncompressed disk: literals, inflated pool blocks, zeros. */
  rawRecipe(): Recipe {
    const rb = new RecipeBuilder();
    let pos = 0;
    for (const p of this.pieces) {
      rb.zero(p.offset - pos);
      if (p.kind === 'lit') {
        rb.literal(p.data);
        pos = p.offset + p.data.length;
      } else {
        rb.raw(p.id, 0, p.len);
        pos = p.offset + p.len;
      }
    }
    rb.zero(this.size - pos);
    return rb.build();
  }

  /**
   * The non-zero grains in order, each with its pieces clipped to the grain
   * (offsets relative to the grain). A pool block never straddles grains
   * (the file systems place them so; the constructor checks); literals may, and are cut.
   */
  *grains(): Generator<{ index: number; pieces: DiskPiece[] }> {
    let cur: { index: number; pieces: DiskPiece[] } | undefined;
    for (const p of this.pieces) {
      const len = p.kind === 'lit' ? p.data.length : p.len;
      let at = p.offset;
      const end = p.offset + len;
      while (at < end) {
        const g = Math.floor(at / GRAIN);
        const gEnd = Math.min(end, (g + 1) * GRAIN);
        if (p.kind === 'pool' && gEnd !== end) throw new Error(`pool block ${p.id} straddles grain ${g}`);
        if (!cur || cur.index !== g) {
          if (cur) yield cur;
          cur = { index: g, pieces: [] };
        }
        const rel = at - g * GRAIN;
        if (p.kind === 'lit') {
          const part = p.data.subarray(at - p.offset, gEnd - p.offset);
          if (part.some((x) => x !== 0)) cur.pieces.push({ offset: rel, kind: 'lit', data: part });
        } else {
          cur.pieces.push({ offset: rel, kind: 'pool', id: p.id, len: p.len });
        }
        at = gEnd;
      }
    }
    if (cur) yield cur;
  }
}
