// A byte stream described as pieces (literal bytes, pool blocks, zero
// runs), the common currency of the format writers. Compilers turn a piece
// list into a recipe: plain (raw segments) here, gzip in gzip.ts.

import { Content, BLOCK_SIZE } from '../tree';
import { Recipe, RecipeBuilder } from '../recipe/recipe';
import { Crc32Accumulator } from '../checksum/crc32';
import type { BlockInfo } from '../pool/format';

export type Piece =
  | { kind: 'bytes'; data: Buffer }
  | { kind: 'block'; id: number; len: number }
  | { kind: 'zeros'; n: number }
  | { kind: 'recipe'; recipe: Recipe; crc: number }; // an already compiled plain recipe, embedded

/** Literal runs longer than this are split, so no literal gets huge. */
const MAX_LITERAL = 1 << 20;

export class PieceList {
  readonly pieces: Piece[] = [];
  private pending: Buffer[] = [];
  private pendingLen = 0;
  size = 0;

  bytes(b: Buffer): void {
    if (b.length === 0) return;
    this.pending.push(b);
    this.pendingLen += b.length;
    this.size += b.length;
  }

  zeros(n: number): void {
    if (n <= 0) return;
    this.flush();
    const last = this.pieces[this.pieces.length - 1];
    if (last && last.kind === 'zeros') last.n += n;
    else this.pieces.push({ kind: 'zeros', n });
    this.size += n;
  }

  block(id: number, len: number): void {
    if (id === 0) return this.zeros(len);
    this.flush();
    this.pieces.push({ kind: 'block', id, len });
    this.size += len;
  }

  /** A file's content, block by block (holes as zero runs). */
  content(c: Content, fromBlock = 0, toBlock = c.blocks.length): void {
    for (let i = fromBlock; i < toBlock; i++) this.block(c.blocks[i], Math.min(BLOCK_SIZE, c.size - i * BLOCK_SIZE));
  }

  /** Embed another stream given as a compiled plain recipe (with its CRC). */
  recipe(r: Recipe, crc: number): void {
    this.flush();
    this.pieces.push({ kind: 'recipe', recipe: r, crc });
    this.size += r.size;
  }

  flush(): void {
    if (!this.pendingLen) return;
    const all = Buffer.concat(this.pending, this.pendingLen);
    for (let o = 0; o < all.length; o += MAX_LITERAL) {
      this.pieces.push({ kind: 'bytes', data: all.subarray(o, Math.min(all.length, o + MAX_LITERAL)) });
    }
    this.pending = [];
    this.pendingLen = 0;
  }

  done(): Piece[] {
    this.flush();
    return this.pieces;
  }
}

/** CRC-32 and length of the byte stream the pieces describe (no data is read). */
export function piecesCrc(pieces: Piece[], blocks: BlockInfo[]): { crc: number; size: number } {
  const acc = new Crc32Accumulator();
  for (const p of pieces) {
    switch (p.kind) {
      case 'bytes': acc.addBytes(p.data); break;
      case 'block': {
        const b = blocks[p.id - 1];
        if (b.usize !== p.len) throw new Error(`block ${p.id} has ${b.usize} bytes, piece wants ${p.len}`);
        acc.addCrc(b.crc32, p.len);
        break;
      }
      case 'zeros': acc.addZeros(p.n); break;
      case 'recipe': acc.addCrc(p.crc, p.recipe.size); break;
    }
  }
  return { crc: acc.crc, size: acc.length };
}

/** Compile to an uncompressed recipe: literals, raw block segments, zero runs, embedded recipes by reference. */
export function compilePlain(pieces: Piece[]): Recipe {
  const rb = new RecipeBuilder();
  for (const p of pieces) {
    switch (p.kind) {
      case 'bytes': rb.literal(p.data); break;
      case 'block': rb.raw(p.id, 0, p.len); break;
      case 'zeros': rb.zero(p.n); break;
      case 'recipe': rb.include(p.recipe); break;
    }
  }
  return rb.build();
}
