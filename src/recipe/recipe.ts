// Recipes: a view's bytes as an ordered list of segments over the pool.
//
//   kind     arg            off                    bytes
//   zero     -              -                      n zero bytes
//   literal  literal index  offset in the literal  the recipe's own literal
//                                                  bytes (tar headers, JSON,
//                                                  XML, precompressed glue:
//                                                  made at build time)
//   raw      block id       offset in the block    inflated pool bytes
//   deflate  block id       -                      the block's deflate segment
//                                                  exactly as stored
//   include  index in subs  offset in that recipe  bytes of another recipe
//                                                  (the OVA holds its VMDK, the
//                                                  VHD the raw disk's blocks)
//
// A recipe carries its literals, so loading one is a single catalog read
// (and one for each recipe it includes, which the catalog stores once).
// In memory it is columnar (kinds, starts, args, offs: typed arrays the
// reader binary-searches). Serialized, the columns are packed (segment
// lengths, argument deltas per kind, offsets where a kind has them, as
// varints) and deflated, and so is the literal section: a tar.gz view's
// columns shrink about 8 times.

import { XXHash128 } from 'xxhash-addon';
import { lastAtOrBefore } from '../util/search';
import { ByteReader, ByteWriter, deflatePacked, inflatePacked } from '../catalog/pack';

/** Segment kinds (the addon's spliced read knows them too: native/pool_format.h). */
export enum SegKind {
  Zero = 0,
  Literal = 1,
  Raw = 2,
  Deflate = 3,
  Include = 4,
}

export interface Recipe {
  size: number;
  count: number;
  kinds: Uint8Array;
  starts: Float64Array; // view offset where segment i starts
  args: Uint32Array; // literal index or block id
  offs: Float64Array; // offset inside the literal / inflated block / included recipe (which may pass 4 GiB)
  /** the literals' bytes back to back: literal k is litData[litStart[k], litStart[k + 1]) */
  litData: Buffer;
  litStart: Uint32Array; // literal count + 1 entries
  /** the recipes include segments read from */
  subs: Recipe[];
}

/** How many literals the recipe has. */
export function literalCount(r: Recipe): number {
  return r.litStart.length - 1;
}

/** Views of recipes' literals, made once per literal (callers look literals up by identity). */
const literalViews = new WeakMap<Recipe, Buffer[]>();

/** Literal k of a recipe. */
export function literalOf(r: Recipe, k: number): Buffer {
  let views = literalViews.get(r);
  if (!views) literalViews.set(r, (views = []));
  return (views[k] ??= r.litData.subarray(r.litStart[k], r.litStart[k + 1]));
}

const MAGIC = 0x50435255; // "URCP"
const VERSION = 3;
/** u32 magic, version, count, literal count; f64 size; u32 column bytes, stored; u32 literal bytes, stored */
const HEADER = 40;
/**
 * Zero runs at least this long inside literal data become zero segments,
 * and the literal keeps only the bytes around them (tar headers and ext4
 * metadata are largely zeros; an open view holds its literals in memory).
 */
const LITERAL_ZERO_RUN = 128;

/**
 * Literal data with its long zero runs taken out: `kept` holds the other
 * bytes in order; `runs` maps the data onto it as [start, end, keptOffset]
 * triples over the data, keptOffset -1 for a zero run.
 */
interface CompactLiteral {
  kept: Buffer;
  runs: number[];
}

function compactLiteral(data: Buffer): CompactLiteral {
  const runs: number[] = [];
  const pieces: Buffer[] = [];
  let kept = 0;
  let pieceStart = 0;
  for (let i = 0; i < data.length;) {
    if (data[i] !== 0) {
      i++;
      continue;
    }
    let j = i + 1;
    while (j < data.length && data[j] === 0) j++;
    if (j - i >= LITERAL_ZERO_RUN) {
      if (i > pieceStart) {
        runs.push(pieceStart, i, kept);
        pieces.push(data.subarray(pieceStart, i));
        kept += i - pieceStart;
      }
      runs.push(i, j, -1);
      pieceStart = j;
    }
    i = j;
  }
  if (pieceStart === 0) return { kept: data, runs: [0, data.length, 0] };
  if (data.length > pieceStart) {
    runs.push(pieceStart, data.length, kept);
    pieces.push(data.subarray(pieceStart));
  }
  return { kept: Buffer.concat(pieces), runs };
}

/** Segments a builder has room for at first; the columns double as they fill. */
const FIRST_ROOM = 64;

export class RecipeBuilder {
  // the columns being built, typed from the start (a tarball of a million files has millions of segments)
  private kinds = new Uint8Array(FIRST_ROOM);
  private starts = new Float64Array(FIRST_ROOM);
  private args = new Uint32Array(FIRST_ROOM);
  private offs = new Float64Array(FIRST_ROOM);
  private count = 0;
  private readonly literals: Buffer[] = [];
  private readonly literalIndex = new Map<string, number>();
  /** literal data by identity: the same Buffer again (append, slices) is not scanned or hashed again */
  private readonly literalByBuffer = new Map<Buffer, { k: number; runs: number[] }>();
  private readonly subs: Recipe[] = [];
  private readonly subIndex = new Map<Recipe, number>();
  size = 0;

  private push(kind: SegKind, len: number, arg: number, off: number): void {
    if (len <= 0) return;
    if (!Number.isSafeInteger(this.size + len)) throw new RangeError('view larger than 2^53 bytes');
    if (this.count === this.kinds.length) this.grow();
    const i = this.count++;
    this.kinds[i] = kind;
    this.starts[i] = this.size;
    this.args[i] = arg;
    this.offs[i] = off;
    this.size += len;
  }

  private grow(): void {
    const n = this.kinds.length * 2;
    const more = <T extends Uint8Array | Uint32Array | Float64Array>(a: T, b: T): T => {
      b.set(a);
      return b;
    };
    this.kinds = more(this.kinds, new Uint8Array(n));
    this.starts = more(this.starts, new Float64Array(n));
    this.args = more(this.args, new Uint32Array(n));
    this.offs = more(this.offs, new Float64Array(n));
  }

  zero(n: number): void {
    if (n <= 0) return;
    const last = this.count - 1;
    if (last >= 0 && this.kinds[last] === SegKind.Zero) {
      this.size += n; // extend the previous zero run
      return;
    }
    this.push(SegKind.Zero, n, 0, 0);
  }

  /** Index of `data` among this recipe's literals (identical literals are kept once). */
  private literalIdx(data: Buffer): number {
    const key = XXHash128.hash(data).toString('latin1') + data.length;
    let k = this.literalIndex.get(key);
    if (k === undefined) {
      k = this.literals.length;
      this.literals.push(data);
      this.literalIndex.set(key, k);
    }
    return k;
  }

  /** `len` bytes of `data` from `off` (all of it by default); long zero runs become zero segments. */
  literal(data: Buffer, off = 0, len = data.length - off): void {
    if (len <= 0) return;
    let lit = this.literalByBuffer.get(data);
    if (!lit) {
      const c = compactLiteral(data);
      lit = { k: c.kept.length ? this.literalIdx(c.kept) : -1, runs: c.runs }; // all zeros: no literal
      this.literalByBuffer.set(data, lit);
    }
    const { k, runs } = lit;
    const end = off + len;
    // the run holding `off` (runs are sorted and back to back)
    let lo = 0;
    let hi = runs.length / 3 - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >>> 1;
      if (runs[3 * mid] <= off) lo = mid;
      else hi = mid - 1;
    }
    let r = 3 * lo;
    for (let pos = off; pos < end; r += 3) {
      const n = Math.min(end, runs[r + 1]) - pos;
      if (runs[r + 2] < 0) this.zero(n);
      else this.push(SegKind.Literal, n, k, runs[r + 2] + pos - runs[r]);
      pos += n;
    }
  }

  raw(block: number, off: number, len: number): void {
    if (block === 0) this.zero(len);
    else this.push(SegKind.Raw, len, block, off);
  }

  deflate(block: number, len: number): void {
    this.push(SegKind.Deflate, len, block, 0);
  }

  /** Append every segment of another recipe (a copy: see include). */
  append(r: Recipe): void {
    this.appendRange(r, 0, r.size);
  }

  /**
   * Bytes [from, to) of another recipe, by reference: the catalog stores
   * that recipe once, however many recipes include it.
   */
  include(r: Recipe, from = 0, to = r.size): void {
    if (from < 0 || to > r.size || from > to) throw new RangeError(`include of bytes ${from}..${to} of a ${r.size}-byte recipe`);
    let k = this.subIndex.get(r);
    if (k === undefined) {
      k = this.subs.length;
      this.subs.push(r);
      this.subIndex.set(r, k);
    }
    this.push(SegKind.Include, to - from, k, from);
  }

  /** Append bytes [from, to) of another recipe (a deflate segment cannot be cut). */
  appendRange(r: Recipe, from: number, to: number): void {
    if (from >= to) return;
    for (let i = findSegment(r, from); i < r.count && r.starts[i] < to; i++) {
      const s = Math.max(from, r.starts[i]);
      const e = Math.min(to, r.starts[i] + segmentLength(r, i));
      const within = s - r.starts[i];
      switch (r.kinds[i] as SegKind) {
        case SegKind.Zero: this.zero(e - s); break;
        case SegKind.Literal: this.literal(literalOf(r, r.args[i]), r.offs[i] + within, e - s); break;
        case SegKind.Raw: this.raw(r.args[i], r.offs[i] + within, e - s); break;
        case SegKind.Deflate:
          if (within !== 0 || e - s !== segmentLength(r, i)) throw new Error('cannot cut a deflate segment');
          this.deflate(r.args[i], e - s);
          break;
        case SegKind.Include: this.include(r.subs[r.args[i]], r.offs[i] + within, r.offs[i] + within + e - s); break;
      }
    }
  }

  build(): Recipe {
    const litStart = new Uint32Array(this.literals.length + 1);
    this.literals.forEach((l, k) => { litStart[k + 1] = litStart[k] + l.length; });
    return {
      size: this.size,
      count: this.count,
      kinds: this.kinds.slice(0, this.count),
      starts: this.starts.slice(0, this.count),
      args: this.args.slice(0, this.count),
      offs: this.offs.slice(0, this.count),
      litData: Buffer.concat(this.literals),
      litStart,
      subs: [...this.subs],
    };
  }
}

export function segmentLength(r: Recipe, i: number): number {
  return (i + 1 < r.count ? r.starts[i + 1] : r.size) - r.starts[i];
}

/** Index of the segment containing view offset `pos` (pos < size). */
export function findSegment(r: Recipe, pos: number): number {
  return lastAtOrBefore(r.starts, pos, 0, r.count - 1);
}

/** Serialized recipes without includes, by identity: a build serializes each view's recipe for hashing and again for the catalog. */
const serialized = new WeakMap<Recipe, Buffer>();

/**
 * The stored form of a recipe; `subId` names each recipe it includes
 * (the catalog's recipe ids).
 */
export function serializeRecipe(r: Recipe, subId: (sub: Recipe) => number = noSubs): Buffer {
  if (r.subs.length) return serializeRecipeOnce(r, subId);
  let data = serialized.get(r);
  if (!data) serialized.set(r, (data = serializeRecipeOnce(r, subId)));
  return data;
}

function noSubs(): number {
  throw new Error('recipe includes others: serialize it with their ids');
}

/** A section as stored: deflated, or as it is when that is not smaller. */
function storeSection(b: Buffer): Buffer {
  const d = b.length > 32 ? deflatePacked(b) : b;
  return d.length < b.length ? d : b;
}

function loadSection(b: Buffer, size: number, what: string): Buffer {
  return b.length === size ? b : inflatePacked(b, size, what);
}

/** Whether a segment kind keeps an argument (literal index, block id, recipe id) and an offset. */
const HAS_ARG = [false, true, true, true, true];
const HAS_OFF = [false, true, true, false, true];
/** Arguments are coded as deltas from the previous one of the same family: literal indexes, block ids, recipe ids. */
const ARG_FAMILY = [0, 0, 1, 1, 2];

function serializeRecipeOnce(r: Recipe, subId: (sub: Recipe) => number): Buffer {
  const n = r.count;
  const cols = new ByteWriter();
  for (let i = 0; i < n; i++) cols.u8(r.kinds[i]);
  for (let i = 0; i < n; i++) cols.uvarint((i + 1 < n ? r.starts[i + 1] : r.size) - r.starts[i]);
  const prev = [0, 0, 0];
  const ids = r.subs.map(subId);
  for (let i = 0; i < n; i++) {
    const k = r.kinds[i];
    if (!HAS_ARG[k]) continue;
    const arg = k === SegKind.Include ? ids[r.args[i]] : r.args[i];
    cols.svarint(arg - prev[ARG_FAMILY[k]]);
    prev[ARG_FAMILY[k]] = arg;
  }
  for (let i = 0; i < n; i++) if (HAS_OFF[r.kinds[i]]) cols.uvarint(r.offs[i]);
  const count = literalCount(r);
  const lits = new ByteWriter();
  for (let k = 0; k < count; k++) lits.uvarint(r.litStart[k + 1] - r.litStart[k]);
  lits.bytes(r.litData.subarray(0, r.litStart[count]));
  const colRaw = cols.done();
  const litRaw = lits.done();
  const colStored = storeSection(colRaw);
  const litStored = storeSection(litRaw);
  const head = Buffer.alloc(HEADER);
  head.writeUInt32LE(MAGIC, 0);
  head.writeUInt32LE(VERSION, 4);
  head.writeUInt32LE(n, 8);
  head.writeUInt32LE(count, 12);
  head.writeDoubleLE(r.size, 16);
  head.writeUInt32LE(colRaw.length, 24);
  head.writeUInt32LE(colStored.length, 28);
  head.writeUInt32LE(litRaw.length, 32);
  head.writeUInt32LE(litStored.length, 36);
  return Buffer.concat([head, colStored, litStored]);
}

/**
 * A stored recipe back; `sub` gives the recipe an include segment names
 * (by the id serializeRecipe wrote), or throws.
 */
export function deserializeRecipe(buf: Buffer, what: string, sub: (id: number) => Recipe = noSub): Recipe {
  if (buf.length < HEADER || buf.readUInt32LE(0) !== MAGIC) throw new Error(`${what}: not a recipe`);
  if (buf.readUInt32LE(4) !== VERSION) throw new Error(`${what}: unsupported recipe version ${buf.readUInt32LE(4)}`);
  const n = buf.readUInt32LE(8);
  const litCount = buf.readUInt32LE(12);
  const size = buf.readDoubleLE(16);
  const colStoredLen = buf.readUInt32LE(28);
  const litStoredLen = buf.readUInt32LE(36);
  if (buf.length !== HEADER + colStoredLen + litStoredLen) throw new Error(`${what}: recipe has the wrong length`);
  if (!Number.isSafeInteger(size)) throw new Error(`${what}: bad size`);
  const cols = new ByteReader(loadSection(buf.subarray(HEADER, HEADER + colStoredLen), buf.readUInt32LE(24), what), what);
  const lits = new ByteReader(loadSection(buf.subarray(HEADER + colStoredLen), buf.readUInt32LE(32), what), what);
  const kinds = Uint8Array.from(cols.bytes(n));
  const starts = new Float64Array(n);
  const args = new Uint32Array(n);
  const offs = new Float64Array(n);
  let pos = 0;
  for (let i = 0; i < n; i++) {
    if (kinds[i] > SegKind.Include) throw new Error(`${what}: bad segment kind ${kinds[i]}`);
    starts[i] = pos;
    const len = cols.uvarint();
    if (len === 0) throw new Error(`${what}: segments out of order`);
    pos += len;
  }
  if (pos !== size && n > 0) throw new Error(`${what}: segments do not add up to its size`);
  const prev = [0, 0, 0];
  const subs: Recipe[] = [];
  const subAt = new Map<number, number>();
  for (let i = 0; i < n; i++) {
    const k = kinds[i];
    if (!HAS_ARG[k]) continue;
    const v = prev[ARG_FAMILY[k]] + cols.svarint();
    if (v < 0 || v > 0xffffffff) throw new Error(`${what}: segment ${i} has a bad argument`);
    prev[ARG_FAMILY[k]] = v;
    if (k !== SegKind.Include) {
      args[i] = v;
      continue;
    }
    let idx = subAt.get(v);
    if (idx === undefined) {
      idx = subs.length;
      subs.push(sub(v));
      subAt.set(v, idx);
    }
    args[i] = idx;
  }
  for (let i = 0; i < n; i++) {
    if (!HAS_OFF[kinds[i]]) continue;
    const v = cols.uvarint(); // a safe integer
    if (kinds[i] !== SegKind.Include && v > 0xffffffff) throw new Error(`${what}: segment ${i} has a bad offset`);
    offs[i] = v;
  }
  if (!cols.atEnd) throw new Error(`${what}: recipe columns are damaged`);
  const litStart = new Uint32Array(litCount + 1);
  for (let k = 0; k < litCount; k++) {
    const v = litStart[k] + lits.uvarint();
    if (v > 0xffffffff) throw new Error(`${what}: recipe literals are damaged`);
    litStart[k + 1] = v;
  }
  const litData = lits.bytes(litStart[litCount]);
  if (!lits.atEnd) throw new Error(`${what}: recipe literals are damaged`);
  for (let i = 0; i < n; i++) {
    const end = i + 1 < n ? starts[i + 1] : size;
    if (kinds[i] === SegKind.Literal && (args[i] >= litCount || offs[i] + (end - starts[i]) > litStart[args[i] + 1] - litStart[args[i]])) {
      throw new Error(`${what}: segment ${i} is outside its literal`);
    }
    if (kinds[i] === SegKind.Include && offs[i] + (end - starts[i]) > subs[args[i]].size) {
      throw new Error(`${what}: segment ${i} is outside the recipe it includes`);
    }
  }
  return { size, count: n, kinds, starts, args, offs, litData, litStart, subs };
}

function noSub(id: number): Recipe {
  throw new Error(`recipe ${id}: included recipes cannot be loaded here`);
}
