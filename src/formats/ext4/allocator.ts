// Block allocation laid out for splicing: file data takes whole 64 KiB
// grains (grain-aligned runs, so every 64 KiB pool block fills exactly one
// grain), file tails are packed together into shared grains, and metadata
// (directories, extent tree blocks, xattr blocks, slow symlinks) takes the
// slack after each group's inode table, then grains of its own. Allocation
// is sequential and deterministic.

import { GRAIN_BLOCKS } from './constants';
import { Geometry, groupEnd, groupStart } from './geometry';

export type Run = [start: number, count: number];

export class OutOfSpace extends Error {}

export class BlockAllocator {
  readonly used: Uint32Array; // bitset over all blocks
  private group = 0;
  private cursor = 0; // next candidate block for a grain (grain-aligned)
  private packStart = -1; // current packing grain
  private packUsed = 0;
  private metaGrainStart = -1;
  private metaGrainUsed = 0;
  private readonly slack: Run[] = []; // per-group metadata slack not yet used

  constructor(private readonly geo: Geometry) {
    this.used = new Uint32Array(Math.ceil(geo.blocks / 32));
    for (let g = 0; g < geo.groups; g++) {
      this.mark(groupStart(g), geo.dataStart[g] - groupStart(g));
      const ds = geo.dataStart[g];
      const aligned = Math.min(groupEnd(geo, g), Math.ceil(ds / GRAIN_BLOCKS) * GRAIN_BLOCKS);
      if (aligned > ds) this.slack.push([ds, aligned - ds]);
    }
    this.cursor = Math.ceil(geo.dataStart[0] / GRAIN_BLOCKS) * GRAIN_BLOCKS;
  }

  isUsed(b: number): boolean {
    return (this.used[b >>> 5] & (1 << (b & 31))) !== 0;
  }

  mark(start: number, count: number): void {
    for (let b = start; b < start + count; b++) {
      this.used[b >>> 5] |= 1 << (b & 31);
    }
  }

  /** The next free grain's first block (does not mark it). */
  private nextGrain(): number {
    for (;;) {
      if (this.group >= this.geo.groups) throw new OutOfSpace('no free grain left');
      const end = groupEnd(this.geo, this.group);
      const first = Math.max(this.cursor, Math.ceil(this.geo.dataStart[this.group] / GRAIN_BLOCKS) * GRAIN_BLOCKS);
      if (first + GRAIN_BLOCKS <= end) {
        this.cursor = first;
        return first;
      }
      this.group++;
      this.cursor = groupStart(this.group);
    }
  }

  /** Reserve the next free grain (the caller marks the blocks it really uses). */
  private takeGrain(): number {
    const g = this.nextGrain();
    this.cursor = g + GRAIN_BLOCKS;
    return g;
  }

  /** `n` whole grains for file data: grain-aligned runs, contiguous where the groups allow. */
  grains(n: number): Run[] {
    const runs: Run[] = [];
    while (n > 0) {
      const g = this.takeGrain();
      this.mark(g, GRAIN_BLOCKS);
      const last = runs[runs.length - 1];
      if (last && last[0] + last[1] === g) last[1] += GRAIN_BLOCKS;
      else runs.push([g, GRAIN_BLOCKS]);
      n--;
    }
    return runs;
  }

  /** `k` (<= 16) blocks for a file tail, packed into the current tail grain. */
  packed(k: number): number {
    if (k < 1 || k > GRAIN_BLOCKS) throw new Error(`bad tail size ${k}`);
    if (this.packStart < 0 || this.packUsed + k > GRAIN_BLOCKS) {
      this.packStart = this.takeGrain();
      this.packUsed = 0;
    }
    const at = this.packStart + this.packUsed;
    this.packUsed += k;
    this.mark(at, k);
    return at;
  }

  /** `n` metadata blocks, as contiguous as possible. */
  meta(n: number): Run[] {
    const runs: Run[] = [];
    const push = (start: number, count: number) => {
      const last = runs[runs.length - 1];
      if (last && last[0] + last[1] === start) last[1] += count;
      else runs.push([start, count]);
    };
    // large requests take whole grains at once (a big directory stays contiguous)
    while (n >= GRAIN_BLOCKS) {
      for (const [s, c] of this.grains(Math.floor(n / GRAIN_BLOCKS))) push(s, c);
      n %= GRAIN_BLOCKS;
    }
    while (n > 0) {
      let start: number;
      let take: number;
      if (this.slack.length) {
        const s = this.slack[0];
        take = Math.min(n, s[1]);
        start = s[0];
        s[0] += take;
        s[1] -= take;
        if (s[1] === 0) this.slack.shift();
      } else {
        if (this.metaGrainStart < 0 || this.metaGrainUsed === GRAIN_BLOCKS) {
          this.metaGrainStart = this.takeGrain();
          this.metaGrainUsed = 0;
        }
        take = Math.min(n, GRAIN_BLOCKS - this.metaGrainUsed);
        start = this.metaGrainStart + this.metaGrainUsed;
        this.metaGrainUsed += take;
      }
      this.mark(start, take);
      push(start, take);
      n -= take;
    }
    return runs;
  }
}
