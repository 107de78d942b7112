// Recipes: a view's bytes as an ordered list of segments over the pool.
//   zero(n)               n zero bytes
//   literal(id, off, n)   bytes of a literal (small, made at build time)
//   raw(block, off, n)    inflated pool bytes
//   deflate(block)        the block's deflate segment exactly as stored
// The builder merges what it can; the serialized form is columnar
// (kinds, starts, args, offs) so the reader binary-searches typed arrays.

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
  args: Uint32Array; // literal id or block id
  offs: Uint32Array; // offset inside the literal / inflated block
}

const MAGIC = 0x50435255; // "URCP"
const VERSION = 1;

export class RecipeBuilder {
  private kinds: number[] = [];
  private starts: number[] = [];
  private args: number[] = [];
  private offs: number[] = [];
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

  literal(id: number, len: number, off = 0): void {
    this.push(SegKind.Literal, len, id, off);
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
    for (let i = 0; i < r.count; i++) {
      const len = (i + 1 < r.count ? r.starts[i + 1] : r.size) - r.starts[i];
      if (r.kinds[i] === SegKind.Zero) this.zero(len);
      else this.push(r.kinds[i] as SegKind, len, r.args[i], r.offs[i]);
    }
  }

  build(): Recipe {
    return {
      size: this.size,
      count: this.kinds.length,
      kinds: Uint8Array.from(this.kinds),
      starts: Float64Array.from(this.starts),
      args: Uint32Array.from(this.args),
      offs: Uint32Array.from(this.offs),
    };
  }
}

export function segmentLength(r: Recipe, i: number): number {
  return (i + 1 < r.count ? r.starts[i + 1] : r.size) - r.starts[i];
}

/** Index of the segment containing view offset `pos` (pos < size). */
export function findSegment(r: Recipe, pos: number): number {
  let lo = 0;
  let hi = r.count - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >>> 1;
    if (r.starts[mid] <= pos) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

export function serializeRecipe(r: Recipe): Buffer {
  const n = r.count;
  const kindsPad = (n + 7) & ~7;
  const buf = Buffer.alloc(24 + kindsPad + n * 8 + n * 4 + n * 4);
  buf.writeUInt32LE(MAGIC, 0);
  buf.writeUInt32LE(VERSION, 4);
  buf.writeUInt32LE(n, 8);
  buf.writeDoubleLE(r.size, 16);
  let o = 24;
  Buffer.from(r.kinds.buffer, r.kinds.byteOffset, n).copy(buf, o);
  o += kindsPad;
  for (let i = 0; i < n; i++, o += 8) buf.writeDoubleLE(r.starts[i], o);
  for (let i = 0; i < n; i++, o += 4) buf.writeUInt32LE(r.args[i], o);
  for (let i = 0; i < n; i++, o += 4) buf.writeUInt32LE(r.offs[i], o);
  return buf;
}

export function deserializeRecipe(buf: Buffer, what: string): Recipe {
  if (buf.length < 24 || buf.readUInt32LE(0) !== MAGIC) throw new Error(`${what}: not a recipe`);
  if (buf.readUInt32LE(4) !== VERSION) throw new Error(`${what}: unsupported recipe version ${buf.readUInt32LE(4)}`);
  const n = buf.readUInt32LE(8);
  const size = buf.readDoubleLE(16);
  const kindsPad = (n + 7) & ~7;
  if (buf.length !== 24 + kindsPad + n * 16) throw new Error(`${what}: recipe has the wrong length`);
  let o = 24;
  const kinds = Uint8Array.from(buf.subarray(o, o + n));
  o += kindsPad;
  const starts = new Float64Array(n);
  for (let i = 0; i < n; i++, o += 8) starts[i] = buf.readDoubleLE(o);
  const args = new Uint32Array(n);
  for (let i = 0; i < n; i++, o += 4) args[i] = buf.readUInt32LE(o);
  const offs = new Uint32Array(n);
  for (let i = 0; i < n; i++, o += 4) offs[i] = buf.readUInt32LE(o);
  for (let i = 0; i < n; i++) {
    if (kinds[i] > SegKind.Deflate) throw new Error(`${what}: bad segment kind ${kinds[i]}`);
    const end = i + 1 < n ? starts[i + 1] : size;
    if (!(end > starts[i])) throw new Error(`${what}: segments out of order`);
  }
  if (n > 0 && starts[0] !== 0) throw new Error(`${what}: first segment does not start at 0`);
  if (!Number.isSafeInteger(size)) throw new Error(`${what}: bad size`);
  return { size, count: n, kinds, starts, args, offs };
}
