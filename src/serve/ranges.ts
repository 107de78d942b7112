// HTTP Range header parsing (RFC 9110 §14): "bytes=a-b, c-, -n" against a
// representation of `size` bytes. Returns the satisfiable ranges, or
// 'unsatisfiable' (416), or undefined when the header is absent or not a
// bytes range (serve the whole representation).

export interface ByteRange {
  start: number;
  end: number; // inclusive
}

const MAX_RANGES = 100;

export function parseRange(header: string | undefined, size: number): ByteRange[] | 'unsatisfiable' | undefined {
  if (!header) return undefined;
  const m = /^\s*bytes\s*=\s*(.+)$/i.exec(header);
  if (!m) return undefined;
  const out: ByteRange[] = [];
  for (const part of m[1].split(',')) {
    const spec = part.trim();
    if (!spec) continue;
    const r = /^(\d*)\s*-\s*(\d*)$/.exec(spec);
    if (!r || (r[1] === '' && r[2] === '')) return undefined; // malformed: ignore the header
    if (r[1] === '') {
      const n = Number(r[2]);
      if (!Number.isSafeInteger(n)) return undefined;
      if (n === 0 || size === 0) continue; // suffix of zero bytes: unsatisfiable
      out.push({ start: Math.max(0, size - n), end: size - 1 });
      continue;
    }
    const start = Number(r[1]);
    const end = r[2] === '' ? size - 1 : Math.min(size - 1, Number(r[2]));
    if (!Number.isSafeInteger(start) || !Number.isSafeInteger(end)) return undefined;
    if (r[2] !== '' && Number(r[2]) < start) return undefined; // invalid: ignore the header
    if (start >= size) continue;
    out.push({ start, end });
  }
  if (out.length === 0) return 'unsatisfiable';
  if (out.length > MAX_RANGES) return undefined; // too many: serve the whole thing
  return out;
}
