// CRC-32 (gzip polynomial, reflected 0xEDB88320) helpers: the running CRC
// comes from zlib; this file adds what zlib does not export to JS:
// combining two CRCs and the CRC of a run of zeros, both in O(log n), so a
// view's gzip trailer is computed from its pieces without reading them.

import * as zlib from 'node:zlib';

const POLY = 0xedb88320;

/** CRC-32 of `buf`, continuing from `prev` (0 for a fresh CRC). */
export function crc32(buf: Uint8Array, prev = 0): number {
  return zlib.crc32(buf, prev) >>> 0;
}

/** a*b mod P in the reflected representation (bit 31 = x^0). */
function mulmod(a: number, b: number): number {
  let m = 0x80000000;
  let p = 0;
  for (;;) {
    if (a & m) {
      p ^= b;
      if ((a & (m - 1)) === 0) break;
    }
    m >>>= 1;
    b = b & 1 ? (b >>> 1) ^ POLY : b >>> 1;
  }
  return p >>> 0;
}

// X2N[k] = x^(2^k) mod P.
const X2N: number[] = (() => {
  const t: number[] = [];
  let p = 0x40000000; // x^1
  for (let k = 0; k < 64; k++) {
    t.push(p >>> 0);
    p = mulmod(p, p);
  }
  return t;
})();

/** x^(8n) mod P. n may be up to 2^53. */
function x8n(n: number): number {
  let p = 0x80000000; // x^0
  let k = 3; // 8 = 2^3
  while (n > 0) {
    if (n % 2 === 1) p = mulmod(X2N[k & 63], p);
    n = Math.floor(n / 2);
    k++;
  }
  return p;
}

/** CRC-32 of A‖B from crc(A), crc(B) and |B|. */
export function crc32Combine(crcA: number, crcB: number, lenB: number): number {
  return (mulmod(x8n(lenB), crcA >>> 0) ^ (crcB >>> 0)) >>> 0;
}

/** CRC-32 of `n` zero bytes. */
export function crc32Zeros(n: number): number {
  if (n === 0) return 0;
  return (mulmod(x8n(n), 0xffffffff) ^ 0xffffffff) >>> 0;
}

/** Accumulates the CRC of a byte stream described piece by piece. */
export class Crc32Accumulator {
  crc = 0;
  length = 0;
  addBytes(buf: Uint8Array): void {
    this.crc = crc32(buf, this.crc);
    this.length += buf.length;
  }
  addCrc(crc: number, len: number): void {
    if (len === 0) return;
    this.crc = crc32Combine(this.crc, crc, len);
    this.length += len;
  }
  addZeros(n: number): void {
    this.addCrc(crc32Zeros(n), n);
  }
}
