// Recipes: a view's bytes as an ordered list of segments over the pool.
//   zero(n)               n zero bytes
//   literal(k, off, n)    bytes of the recipe's own literal k (tar headers,
//                         JSON, XML, precompressed glue: made at build time)
//   raw(block, off, n)    inflated pool bytes
//   deflate(block)        the block's deflate segment exactly as stored
// A recipe carries its literals, so loading one is a single catalog read.
// The serialized form is columnar (kinds, starts, args, offs), so the reader
// binary-searches typed arrays, followed by the literal section (deflated
// when that pays).

import * as os from 'node:os';
import * as zlib from 'node:zlib';
import { XXHash128 } from 'xxhash-addon';
import { lastAtOrBefore } from '../util/search';

export enum SegKind {
  Zero = 0,
  Literal = 1,
  Raw = 2,
  Deflate = 3,
}

export interface Recipe {
  size: number;
  count: number;
  kinds: Uint8Array;
  starts: Float64Array; // view offset where segment i starts
  args: Uint32Array; // literal index or block id
  offs: Uint32Array; // offset inside the literal / inflated block
  /** the literals' bytes back to back: literal k is litData[litStart[k], litStart[k + 1]) */
  litData: Buffer;
  litStart: Uint32Array; // literal count + 1 entries
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
const VERSION = 2;
const HEADER = 24;
const LIT_HEADER = 12; // u32 count, u32 packed flag, u32 unpacked section length
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

export class RecipeBuilder {
  private kinds: number[] = [];
  private starts: number[] = [];
  private args: number[] = [];
  private offs: number[] = [];
  private readonly literals: Buffer[] = [];
  private readonly literalIndex = new Map<string, number>();
  /** literal data by identity: the same Buffer again (append, slices) is not scanned or hashed again */
  private readonly literalByBuffer = new Map<Buffer, { k: number; runs: number[] }>();
  size = 0;

  private push(kind: SegKind, len: number, arg: number, off: number): void {
    if (len <= 0) return;
    if (!Number.isSafeInteger(this.size + len)) throw new RangeError('view larger than 2^53 bytes');
    this.kinds.push(kind);
    this.starts.push(this.size);
    this.args.push(arg);
    this.offs.push(off);
    this.size += len;
  }

  zero(n: number): void {
    if (n <= 0) return;
    const last = this.kinds.length - 1;
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

  /** Append every segment of another recipe. */
  append(r: Recipe): void {
    this.appendRange(r, 0, r.size);
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
      }
    }
  }

  build(): Recipe {
    const litStart = new Uint32Array(this.literals.length + 1);
    this.literals.forEach((l, k) => { litStart[k + 1] = litStart[k] + l.length; });
    return {
      size: this.size,
      count: this.kinds.length,
      kinds: Uint8Array.from(this.kinds),
      starts: Float64Array.from(this.starts),
      args: Uint32Array.from(this.args),
      offs: Uint32Array.from(this.offs),
      litData: Buffer.concat(this.literals),
      litStart,
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

/** Serialized recipes by identity: a build serializes each view's recipe for hashing and again for the catalog. */
const serialized = new WeakMap<Recipe, Buffer>();

export function serializeRecipe(r: Recipe): Buffer {
  let data = serialized.get(r);
  if (!data) serialized.set(r, (data = serializeRecipeOnce(r)));
  return data;
}

function serializeRecipeOnce(r: Recipe): Buffer {
  const n = r.count;
  const kindsPad = (n + 7) & ~7;
  const head = Buffer.alloc(HEADER + kindsPad + n * 16);
  head.writeUInt32LE(MAGIC, 0);
  head.writeUInt32LE(VERSION, 4);
  head.writeUInt32LE(n, 8);
  head.writeDoubleLE(r.size, 16);
  let o = HEADER;
  Buffer.from(r.kinds.buffer, r.kinds.byteOffset, n).copy(head, o);
  o += kindsPad;
  for (let i = 0; i < n; i++, o += 8) head.writeDoubleLE(r.starts[i], o);
  for (let i = 0; i < n; i++, o += 4) head.writeUInt32LE(r.args[i], o);
  for (let i = 0; i < n; i++, o += 4) head.writeUInt32LE(r.offs[i], o);
  // literal section: u32 offsets[count + 1], then the bytes
  const count = literalCount(r);
  const table = Buffer.alloc(4 * (count + 1));
  for (let k = 0; k <= count; k++) table.writeUInt32LE(r.litStart[k], 4 * k);
  const section = Buffer.concat([table, r.litData.subarray(0, r.litStart[count])]);
  const packed = section.length > 4096 ? zlib.deflateRawSync(section, { level: 6 }) : undefined;
  const usePacked = packed !== undefined && packed.length < section.length * 0.8;
  const litHead = Buffer.alloc(LIT_HEADER);
  litHead.writeUInt32LE(count, 0);
  litHead.writeUInt32LE(usePacked ? 1 : 0, 4);
  litHead.writeUInt32LE(section.length, 8);
  return Buffer.concat([head, litHead, usePacked ? packed! : section]);
}

export function deserializeRecipe(buf: Buffer, what: string): Recipe {
  if (buf.length < HEADER || buf.readUInt32LE(0) !== MAGIC) throw new Error(`${what}: not a recipe`);
  if (buf.readUInt32LE(4) !== VERSION) throw new Error(`${what}: unsupported recipe version ${buf.readUInt32LE(4)}`);
  const n = buf.readUInt32LE(8);
  const size = buf.readDoubleLE(16);
  const kindsPad = (n + 7) & ~7;
  const litAt = HEADER + kindsPad + n * 16;
  if (buf.length < litAt + LIT_HEADER) throw new Error(`${what}: recipe has the wrong length`);
  let o = HEADER;
  const kinds = Uint8Array.from(buf.subarray(o, o + n));
  o += kindsPad;
  const starts = column(new Float64Array(n), buf, o);
  o += 8 * n;
  const args = column(new Uint32Array(n), buf, o);
  o += 4 * n;
  const offs = column(new Uint32Array(n), buf, o);
  const litCount = buf.readUInt32LE(litAt);
  const packed = buf.readUInt32LE(litAt + 4);
  const sectionLen = buf.readUInt32LE(litAt + 8);
  let section: Buffer;
  try {
    // one output chunk of the recorded size: no concatenation, no larger chunk to trim
    section = packed
      ? zlib.inflateRawSync(buf.subarray(litAt + LIT_HEADER), { chunkSize: Math.max(64, sectionLen), maxOutputLength: Math.max(1, sectionLen) })
      : buf.subarray(litAt + LIT_HEADER);
  } catch {
    throw new Error(`${what}: recipe literals are damaged`);
  }
  if (section.length !== sectionLen || sectionLen < 4 * (litCount + 1)) throw new Error(`${what}: recipe literals are damaged`);
  // own exact-size memory, not a view of a larger zlib chunk
  if (packed && section.buffer.byteLength !== section.length) section = Buffer.from(section);
  const litStart = column(new Uint32Array(litCount + 1), section, 0);
  for (let k = 0; k < litCount; k++) if (litStart[k + 1] < litStart[k]) throw new Error(`${what}: recipe literals are damaged`);
  const base = 4 * (litCount + 1);
  if (litStart[0] !== 0 || base + litStart[litCount] > section.length) throw new Error(`${what}: recipe literals are damaged`);
  const litData = section.subarray(base);
  for (let i = 0; i < n; i++) {
    if (kinds[i] > SegKind.Deflate) throw new Error(`${what}: bad segment kind ${kinds[i]}`);
    const end = i + 1 < n ? starts[i + 1] : size;
    if (!(end > starts[i])) throw new Error(`${what}: segments out of order`);
    if (kinds[i] === SegKind.Literal && (args[i] >= litCount || offs[i] + (end - starts[i]) > litStart[args[i] + 1] - litStart[args[i]])) {
      throw new Error(`${what}: segment ${i} is outside its literal`);
    }
  }
  if (n > 0 && starts[0] !== 0) throw new Error(`${what}: first segment does not start at 0`);
  if (!Number.isSafeInteger(size)) throw new Error(`${what}: bad size`);
  return { size, count: n, kinds, starts, args, offs, litData, litStart };
}

const LITTLE_ENDIAN = os.endianness() === 'LE';

/** Fill `out` with its length of little-endian values from `buf` at `o` (copied, not a view); returns it. */
function column<T extends Float64Array | Uint32Array>(out: T, buf: Buffer, o: number): T {
  const size = out.BYTES_PER_ELEMENT;
  if (LITTLE_ENDIAN) buf.copy(Buffer.from(out.buffer), 0, o, o + size * out.length);
  else for (let i = 0; i < out.length; i++) out[i] = size === 8 ? buf.readDoubleLE(o + 8 * i) : buf.readUInt32LE(o + 4 * i);
  return out;
}
