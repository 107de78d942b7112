// The recipe reader: a ByteSource over one recipe. pread() binary-searches
// the segment holding the offset, then fills the buffer segment by segment,
// fetching the blocks it needs in parallel from the BlockStore; an include
// segment is read by a reader of the recipe it names (a read inside one
// include, most reads of an OVA, goes straight to that reader). A read of
// literals, zeros and spliced pool bytes that the page cache holds is first
// tried in one call to the addon (BlockStore.nativeSplicer), which does the
// same walk in C. A sequential reader tells the store when it is through
// with a block (every byte its segment gives served, the recipe using the
// block nowhere else), so a stream's blocks do not fill the block cache.

import { ByteSource } from '../io/source';
import { BlockStore, SpliceList } from '../pool/reader';
import { findSegment, Recipe, segmentLength, SegKind } from './recipe';

/** Readahead tops up its window in steps of this many bytes (8 pool blocks). */
const PREFETCH_STEP = 512 * 1024;
/**
 * Spliced views are read straight from the pool file: its bytes are asked
 * of the kernel ahead of the reader in steps of this many view bytes, on
 * the thread pool, so the reads find them in the page cache.
 */
const STORED_STEP = 2 << 20;

/** Partly served segments remembered per reader (see served); more and they are forgotten. */
const SERVED_MAX = 64;
/**
 * A read this far behind where the reads so far ended still counts as
 * sequential: the kernel's readahead keeps a few MiB of reads in flight
 * and they arrive in any order.
 */
const BEHIND_MAX = 8 << 20;

/**
 * Readers of included recipes kept per reader: a stream VMDK or qcow2 of a
 * large disk includes one recipe per grain (~100k for a million files);
 * a reader for each, kept for the whole read, cost ~2.5 KiB apiece.
 */
const SUB_READERS_MAX = 64;

/** Per recipe: the blocks that more than one of its inflated segments use. */
const sharedBlocks = new WeakMap<Recipe, Set<number>>();

function blocksUsedTwice(r: Recipe): Set<number> {
  let shared = sharedBlocks.get(r);
  if (!shared) {
    const seen = new Set<number>();
    shared = new Set<number>();
    for (let i = 0; i < r.count; i++) {
      if ((r.kinds[i] as SegKind) !== SegKind.Raw) continue;
      const id = r.args[i];
      if (seen.has(id)) shared.add(id);
      else seen.add(id);
    }
    sharedBlocks.set(r, shared);
  }
  return shared;
}

export interface ReaderOptions {
  /** Bytes of pool blocks to fetch ahead of a sequential reader (0: none). */
  readahead?: number;
  /** false: never use the addon's spliced read (tests compare both paths) */
  nativeSplice?: boolean;
}

export class RecipeReader implements ByteSource {
  readonly size: number;
  private lastEnd = -1;
  private prefetchedTo = 0;
  private storedTo = 0;
  private readonly readahead: number;
  private readonly splice: ((buf: Buffer, pos: number) => number) | undefined;
  /**
   * Bytes served so far of the inflated segments a sequential reader has
   * read in part (segment index -> bytes): when a segment has been served
   * whole, its block is not needed again by this reader (reads may arrive
   * out of order, so counting, not "the read reached its end").
   */
  private readonly served = new Map<number, number>();
  /** blocks this recipe uses more than once: left in the cache */
  private readonly shared: Set<number>;
  /** readers of the recipes include segments read (made on first use; the SUB_READERS_MAX last used are kept) */
  private readonly subReaders = new Map<number, RecipeReader>();

  constructor(readonly recipe: Recipe, private readonly blocks: BlockStore, private readonly opts: ReaderOptions = {}) {
    this.size = recipe.size;
    this.readahead = opts.readahead ?? 0;
    this.shared = this.readahead > 0 ? blocksUsedTwice(recipe) : new Set();
    const spliced = recipe.kinds.includes(SegKind.Deflate);
    this.splice = spliced && opts.nativeSplice !== false ? blocks.nativeSplicer(recipe) : undefined;
  }

  /**
   * Readahead for a sequential reader at `from`: start inflating (into the
   * block cache) the blocks of [from, to), and have the pool bytes of the
   * spliced blocks up to one or two STORED_STEPs beyond `to` read into the
   * page cache.
   */
  private prefetch(from: number, to: number): void {
    const r = this.recipe;
    // keep the bytes asked for between one and two steps beyond the window
    // a source that wants more (a remote one) is told further ahead, of exactly the blocks read next
    const step = Math.max(STORED_STEP, this.blocks.source.announceAhead ?? 0);
    if (this.storedTo < Math.min(r.size, to + step)) {
      const end = Math.min(r.size, to + 2 * step);
      const spliced: number[] = [];
      for (let i = findSegment(r, Math.max(from, this.storedTo)); i < r.count && r.starts[i] < end; i++) {
        if ((r.kinds[i] as SegKind) === SegKind.Deflate) spliced.push(r.args[i]);
      }
      if (spliced.length) this.blocks.prefetchStored(spliced);
      this.storedTo = end;
    }
    from = Math.max(from, this.prefetchedTo);
    // top the window up in steps of PREFETCH_STEP: a few blocks per thread-pool job
    if (from >= r.size || (to - from < PREFETCH_STEP && to < r.size)) return;
    const ids: number[] = [];
    for (let i = findSegment(r, from); i < r.count && r.starts[i] < to; i++) {
      if ((r.kinds[i] as SegKind) === SegKind.Raw) ids.push(r.args[i]);
    }
    if (ids.length) this.blocks.prefetchInflated(ids);
    this.prefetchedTo = Math.min(to, r.size);
  }

  /**
   * A sequential reader is being served n more bytes of inflated segment
   * i (len bytes long): true when that completes the segment and no other
   * segment of the recipe uses its block.
   */
  private finished(i: number, n: number, len: number): boolean {
    if (this.shared.has(this.recipe.args[i])) return false;
    if (n < len) {
      const got = (this.served.get(i) ?? 0) + n;
      if (got < len) {
        if (this.served.size >= SERVED_MAX && !this.served.has(i)) this.served.clear();
        this.served.set(i, got);
        return false;
      }
      this.served.delete(i);
    }
    return true;
  }

  pread(buf: Buffer, offset: number): Promise<number> {
    try {
      return Promise.resolve(this.preadNow(buf, offset));
    } catch (e) {
      return Promise.reject(e);
    }
  }

  private sub(k: number): RecipeReader {
    let r = this.subReaders.get(k);
    if (r) {
      this.subReaders.delete(k); // most recently used last
    } else {
      r = new RecipeReader(this.recipe.subs[k], this.blocks, this.opts);
      if (this.subReaders.size >= SUB_READERS_MAX) this.subReaders.delete(this.subReaders.keys().next().value!);
    }
    this.subReaders.set(k, r);
    return r;
  }

  /** Read `n` bytes at `off` of included recipe k into buf[dst..]; a wait when not done at once. */
  private readSub(k: number, buf: Buffer, dst: number, off: number, n: number): Promise<void> | undefined {
    const got = this.sub(k).preadNow(buf.subarray(dst, dst + n), off);
    const check = (c: number) => {
      if (c !== n) throw new Error(`included recipe: ${c} of ${n} bytes at ${off}`);
    };
    if (typeof got === 'number') {
      check(got);
      return undefined;
    }
    return got.then(check);
  }

  /** The count at once when every byte came without waiting (the addon's read, the page cache, cached blocks), else a promise of it. */
  preadNow(buf: Buffer, offset: number): number | Promise<number> {
    const r = this.recipe;
    if (offset >= r.size || buf.length === 0) return 0;
    const end = Math.min(r.size, offset + buf.length);
    if (r.subs.length) {
      // a read inside one include segment is that recipe's read
      const i = findSegment(r, offset);
      if ((r.kinds[i] as SegKind) === SegKind.Include && end <= r.starts[i] + segmentLength(r, i)) {
        const n = end - offset;
        return this.sub(r.args[i]).preadNow(n === buf.length ? buf : buf.subarray(0, n), r.offs[i] + offset - r.starts[i]);
      }
    }
    let sequential = false;
    if (this.readahead > 0) {
      // sequential: the kernel keeps several reads in flight and they may
      // arrive out of order, so "near where the reads so far ended" counts
      if (offset - this.lastEnd <= this.readahead && this.lastEnd - offset <= BEHIND_MAX) {
        sequential = true;
        this.lastEnd = Math.max(this.lastEnd, end);
        this.prefetch(this.lastEnd, this.lastEnd + this.readahead);
      } else {
        this.lastEnd = end;
        this.prefetchedTo = end;
        this.storedTo = end;
        this.served.clear();
      }
    }
    if (this.splice) {
      const n = this.splice(end - offset === buf.length ? buf : buf.subarray(0, end - offset), offset);
      if (n >= 0) return n;
    }
    const first = findSegment(r, offset);
    // the blocks to inflate in this range, handed over together: batched thread-pool jobs
    // (what readahead does ahead of sequential readers) instead of one job per block
    const raws: number[] = [];
    for (let k = first; k < r.count && r.starts[k] < end; k++) if ((r.kinds[k] as SegKind) === SegKind.Raw) raws.push(r.args[k]);
    if (raws.length > 1) this.blocks.prefetchInflated(raws);
    const waits: Promise<void>[] = [];
    const splices = new SpliceList();
    let i = first;
    let pos = offset;
    while (pos < end) {
      const segStart = r.starts[i];
      const segLen = segmentLength(r, i);
      const within = pos - segStart;
      const n = Math.min(end - pos, segLen - within);
      const dst = pos - offset;
      const arg = r.args[i];
      const off = r.offs[i] + within;
      switch (r.kinds[i] as SegKind) {
        case SegKind.Zero:
          buf.fill(0, dst, dst + n);
          break;
        case SegKind.Literal:
          r.litData.copy(buf, dst, r.litStart[arg] + off, r.litStart[arg] + off + n);
          break;
        case SegKind.Raw:
        {
          const wait = this.blocks.inflatedInto(arg, off, buf, dst, n, sequential && this.finished(i, n, segLen));
          if (wait) waits.push(wait);
          break;
        }
        case SegKind.Deflate:
          splices.push(arg, off, n, dst);
          break;
        case SegKind.Include: {
          const wait = this.readSub(arg, buf, dst, off, n);
          if (wait) waits.push(wait);
          break;
        }
      }
      pos += n;
      i++;
    }
    if (splices.length) {
      const wait = this.blocks.readDeflatedInto(splices, buf);
      if (wait) waits.push(wait);
    }
    const count = end - offset;
    if (waits.length === 0) return count;
    if (waits.length === 1) return waits[0].then(() => count);
    // Settle every fetch before answering: the caller's buffer must not be
    // written after the read has answered, even when one fetch failed.
    return Promise.allSettled(waits).then((results) => {
      for (const res of results) if (res.status === 'rejected') throw res.reason;
      return count;
    });
  }
}
