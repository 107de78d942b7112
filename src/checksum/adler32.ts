// Adler-32 (RFC 1950) and its combine, for zlib-framed views (VMDK grains,
// squashfs blocks) spliced from pool blocks.

const BASE = 65521;
const NMAX = 5552; // largest n such that sums stay below 2^53 comfortably

export function adler32(buf: Uint8Array, prev = 1): number {
  let a = prev & 0xffff;
  let b = (prev >>> 16) & 0xffff;
  let i = 0;
  const n = buf.length;
  while (i < n) {
    const end = Math.min(i + NMAX, n);
    for (; i < end; i++) {
      a += buf[i];
      b += a;
    }
    a %= BASE;
    b %= BASE;
  }
  return ((b << 16) | a) >>> 0;
}

/** Adler-32 of A‖B from adler(A), adler(B) and |B|. */
export function adler32Combine(adlerA: number, adlerB: number, lenB: number): number {
  const rem = lenB % BASE;
  const a1 = adlerA & 0xffff;
  const b1 = (adlerA >>> 16) & 0xffff;
  const a2 = adlerB & 0xffff;
  const b2 = (adlerB >>> 16) & 0xffff;
  let sum1 = a1 + a2 + BASE - 1;
  let sum2 = ((rem * a1) % BASE) + b1 + b2 + BASE - rem;
  sum1 %= BASE;
  sum2 %= BASE;
  return ((sum2 << 16) | sum1) >>> 0;
}

/** Adler-32 of `n` zero bytes. */
export function adler32Zeros(n: number): number {
  // a stays 1; b grows by 1 per byte.
  return (((n % BASE) << 16) | 1) >>> 0;
}
