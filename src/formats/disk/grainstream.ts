// Grains as compressed streams, spliced: a 64 KiB grain of the disk becomes
// a deflate body made of its pool blocks' own deflate segments (verbatim),
// literals compressed at build time, and precompressed zero runs; with the
// grain's Adler-32 combined from its pieces. VMDK streamOptimized wraps it
// as zlib, qcow2 stores it as a compressed cluster.

import { Recipe, RecipeBuilder } from '../../recipe/recipe';
import { BlockInfo, deflateSegmentSize } from '../../pool/format';
import { adler32, adler32Combine, adler32Zeros } from '../../checksum/adler32';
import { deflateSynced } from '../gzip';
import { DiskImage, DiskPiece, GRAIN } from './diskimage';

/** zlib stream header: deflate, 32 KiB window, default level, no dictionary. */
export const ZLIB_HEADER = Buffer.from([0x78, 0x9c]);

/** One grain of a disk as a deflate body (no stream header or end). */
export interface GrainBody {
  index: number; // grain number on the disk
  body: Recipe; // the deflate body: pool blocks' segments, compressed literals and zero runs
  adler: number; // Adler-32 of the grain's uncompressed bytes
  length: number; // compressed bytes of the body
}

const grainBodies = new WeakMap<DiskImage, GrainBody[]>();

/**
 * The compressed bodies of a disk's non-empty grains, in ascending order;
 * made once per disk image (the streamOptimized VMDK and the qcow2 share them).
 */
export function compressedGrains(image: DiskImage, blocks: BlockInfo[]): GrainBody[] {
  let out = grainBodies.get(image);
  if (!out) {
    const comp = new GrainCompressor(blocks);
    out = [];
    for (const { index, pieces } of image.grains()) {
      if (pieces.length === 0) continue;
      const rb = new RecipeBuilder();
      const { adler, length } = comp.body(rb, pieces);
      out.push({ index, body: rb.build(), adler, length });
    }
    grainBodies.set(image, out);
  }
  return out;
}

class GrainCompressor {
  private readonly zeroRuns = new Map<number, Buffer>();

  constructor(private readonly blocks: BlockInfo[]) {}

  private zeros(n: number): Buffer {
    let z = this.zeroRuns.get(n);
    if (!z) {
      z = deflateSynced(Buffer.alloc(n));
      this.zeroRuns.set(n, z);
    }
    return z;
  }

  /** Append the deflate body of one grain (pieces relative to the grain) to `rb`. */
  body(rb: RecipeBuilder, pieces: DiskPiece[]): { adler: number; length: number } {
    const start = rb.size;
    let adler = 1;
    if (!pieces.some((p) => p.kind === 'pool')) {
      // metadata only: compress the whole grain at once
      const g = Buffer.alloc(GRAIN);
      for (const p of pieces) if (p.kind === 'lit') p.data.copy(g, p.offset);
      rb.literal(deflateSynced(g));
      return { adler: adler32(g), length: rb.size - start };
    }
    let pos = 0;
    const gap = (n: number) => {
      if (n <= 0) return;
      rb.literal(this.zeros(n));
      adler = adler32Combine(adler, adler32Zeros(n), n);
    };
    for (const p of pieces) {
      gap(p.offset - pos);
      if (p.kind === 'lit') {
        rb.literal(deflateSynced(p.data));
        adler = adler32Combine(adler, adler32(p.data), p.data.length);
        pos = p.offset + p.data.length;
      } else {
        const b = this.blocks[p.id - 1];
        if (b.usize !== p.len) throw new Error(`pool block ${p.id}: ${b.usize} bytes, placed as ${p.len}`);
        rb.deflate(p.id, deflateSegmentSize(b));
        adler = adler32Combine(adler, b.adler32, b.usize);
        pos = p.offset + p.len;
      }
    }
    gap(GRAIN - pos);
    return { adler, length: rb.size - start };
  }
}
