// Checked conversions for 64-bit on-disk quantities. Sizes and offsets are
// JS numbers only while they stay below 2^53; anything larger is refused
// loudly instead of silently losing precision.

export function checkedNumber(v: bigint | number, what: string): number {
  if (typeof v === 'number') {
    if (!Number.isSafeInteger(v)) throw new RangeError(`${what} ${v} is not a safe integer`);
    return v;
  }
  if (v > BigInt(Number.MAX_SAFE_INTEGER) || v < BigInt(Number.MIN_SAFE_INTEGER)) {
    throw new RangeError(`${what} ${v} exceeds 2^53`);
  }
  return Number(v);
}

export function checkedAdd(a: number, b: number, what: string): number {
  const r = a + b;
  if (!Number.isSafeInteger(r)) throw new RangeError(`${what} overflows 2^53`);
  return r;
}
