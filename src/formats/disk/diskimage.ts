// A whole virtual disk as placed pieces: the MBR and GRUB's core.img as
// literals, then the ext4 partition (its metadata literals and pool blocks)
// at 1 MiB. Everything else reads as zero. From it come the raw disk recipe
// and, grain by grain (64 KiB), the pieces the compressed formats splice.

import { Recipe, RecipeBuilder } from '../../recipe/recipe';
import { Ext4Image } from '../ext4/image';
import { BLOCK_SIZE as FS_BLOCK } from '../ext4/constants';

export const SECTOR = 512;
export const GRAIN = 65536;
export const PARTITION_OFFSET = 1 << 20; // LBA 2048

export type DiskPiece =
  | { offset: number; kind: 'lit'; data: Buffer }
  | { offset: number; kind: 'pool'; id: number; len: number };

export class DiskImage {
  readonly pieces: DiskPiece[] = [];

  constructor(readonly size: number, mbr: Buffer, coreImg: Buffer, fs: Ext4Image) {
    if (size % GRAIN !== 0) throw new Error('disk size must be a multiple of 64 KiB');
    if (SECTOR + coreImg.length > PARTITION_OFFSET) throw new Error('core.img does not fit before the partition');
    this.pieces.push({ offset: 0, kind: 'lit', data: Buffer.concat([mbr, coreImg]) });
    // merge the file system's literal blocks and pool blocks into ordered pieces
    const lits = [...fs.literals.keys()].sort((a, b) => a - b);
    let li = 0;
    let di = 0;
    const base = PARTITION_OFFSET;
    while (li < lits.length || di < fs.data.length) {
      const nextLit = li < lits.length ? lits[li] : Infinity;
      const nextData = di < fs.data.length ? fs.data[di].block : Infinity;
      if (nextLit < nextData) {
        // a run of consecutive literal blocks becomes one piece
        let end = li;
        while (end + 1 < lits.length && lits[end + 1] === lits[end] + 1 && lits[end + 1] < nextData) end++;
        const bufs = lits.slice(li, end + 1).map((b) => fs.literals.get(b)!);
        this.pieces.push({ offset: base + nextLit * FS_BLOCK, kind: 'lit', data: Buffer.concat(bufs) });
        li = end + 1;
      } else {
        const d = fs.data[di++];
        this.pieces.push({ offset: base + d.block * FS_BLOCK, kind: 'pool', id: d.id, len: d.len });
      }
    }
    const last = this.pieces[this.pieces.length - 1];
    const end = last.offset + (last.kind === 'lit' ? last.data.length : last.len);
    if (end > size) throw new Error('file system larger than the disk');
    for (let i = 1; i < this.pieces.length; i++) {
      const p = this.pieces[i - 1];
      if (p.offset + (p.kind === 'lit' ? p.data.length : p.len) > this.pieces[i].offset) throw new Error('disk pieces overlap');
    }
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
   * (the ext4 layout guarantees it); literals may, and are cut.
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
