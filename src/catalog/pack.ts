// Byte-level packing for the catalog's compact columns: unsigned LEB128
// varints, zigzag for signed deltas, length-prefixed bytes, and deflate of
// a whole packed section. Numbers up to 2^53 are exact (arithmetic, not
// 32-bit bit operations); a reader that runs past its end or meets a varint
// over 2^53 throws, so a damaged catalog is an error, never wrong numbers.

import * as zlib from 'node:zlib';

/** Deflate level of packed catalog sections (small, written once, read at mount). */
const PACK_LEVEL = 9;

export class ByteWriter {
  private buf = Buffer.allocUnsafe(4096);
  private n = 0;

  private room(k: number): void {
    if (this.n + k <= this.buf.length) return;
    const b = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.n + k));
    this.buf.copy(b, 0, 0, this.n);
    this.buf = b;
  }

  uvarint(v: number): void {
    if (!Number.isSafeInteger(v) || v < 0) throw new RangeError(`uvarint: ${v} is not a non-negative safe integer`);
    this.room(8);
    while (v >= 0x80) {
      this.buf[this.n++] = (v % 0x80) | 0x80;
      v = Math.floor(v / 0x80);
    }
    this.buf[this.n++] = v;
  }

  /** A signed integer, zigzag-coded (small magnitudes are small). */
  svarint(v: number): void {
    this.uvarint(v < 0 ? -2 * v - 1 : 2 * v);
  }

  u8(v: number): void {
    this.room(1);
    this.buf[this.n++] = v & 0xff;
  }

  u32(v: number): void {
    this.room(4);
    this.buf.writeUInt32LE(v >>> 0, this.n);
    this.n += 4;
  }

  bytes(b: Buffer): void {
    this.room(b.length);
    b.copy(this.buf, this.n);
    this.n += b.length;
  }

  /** A length, then the bytes. */
  blob(b: Buffer): void {
    this.uvarint(b.length);
    this.bytes(b);
  }

  get length(): number {
    return this.n;
  }

  done(): Buffer {
    return this.buf.subarray(0, this.n);
  }
}

export class ByteReader {
  private o = 0;

  constructor(private readonly buf: Buffer, private readonly what: string) {}

  private fail(): never {
    throw new Error(`${this.what}: packed data is damaged`);
  }

  uvarint(): number {
    let v = 0;
    let mult = 1;
    for (;;) {
      if (this.o >= this.buf.length) this.fail();
      const b = this.buf[this.o++];
      v += (b & 0x7f) * mult;
      if (b < 0x80) break;
      mult *= 0x80;
      if (mult > 2 ** 53) this.fail();
    }
    if (!Number.isSafeInteger(v)) this.fail();
    return v;
  }

  svarint(): number {
    const z = this.uvarint();
    return z % 2 === 0 ? z / 2 : -(z + 1) / 2;
  }

  u8(): number {
    if (this.o >= this.buf.length) this.fail();
    return this.buf[this.o++];
  }

  u32(): number {
    if (this.o + 4 > this.buf.length) this.fail();
    const v = this.buf.readUInt32LE(this.o);
    this.o += 4;
    return v;
  }

  bytes(n: number): Buffer {
    if (n < 0 || this.o + n > this.buf.length) this.fail();
    const b = this.buf.subarray(this.o, this.o + n);
    this.o += n;
    return b;
  }

  blob(): Buffer {
    return this.bytes(this.uvarint());
  }

  get atEnd(): boolean {
    return this.o === this.buf.length;
  }
}

/** A packed section as stored: deflated. */
export function deflatePacked(b: Buffer): Buffer {
  return zlib.deflateRawSync(b, { level: PACK_LEVEL });
}

/** A stored section back, which must inflate to exactly `size` bytes. */
export function inflatePacked(b: Buffer, size: number, what: string): Buffer {
  let out: Buffer;
  try {
    out = zlib.inflateRawSync(b, { chunkSize: Math.max(64, size), maxOutputLength: Math.max(1, size) });
  } catch {
    throw new Error(`${what}: packed data is damaged`);
  }
  if (out.length !== size) throw new Error(`${what}: packed data is damaged`);
  // own exact-size memory, not a view of a larger zlib chunk
  return out.buffer.byteLength === out.length ? out : Buffer.from(out);
}
