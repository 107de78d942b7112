// Packed form of an inode's extended attributes in the catalog:
// repeated { u16 nameLen, name bytes, u32 valueLen, value bytes }.

import type { Xattr } from '../tree';

export function packXattrs(xs: readonly Xattr[]): Buffer | null {
  if (xs.length === 0) return null;
  const parts: Buffer[] = [];
  for (const x of xs) {
    const name = Buffer.from(x.name, 'latin1');
    const h = Buffer.alloc(2);
    h.writeUInt16LE(name.length);
    const v = Buffer.alloc(4);
    v.writeUInt32LE(x.value.length);
    parts.push(h, name, v, x.value);
  }
  return Buffer.concat(parts);
}

export function unpackXattrs(buf: Buffer | null | undefined): Xattr[] {
  const out: Xattr[] = [];
  if (!buf) return out;
  let o = 0;
  while (o < buf.length) {
    const nl = buf.readUInt16LE(o);
    const name = buf.subarray(o + 2, o + 2 + nl).toString('latin1');
    o += 2 + nl;
    const vl = buf.readUInt32LE(o);
    out.push({ name, value: Buffer.from(buf.subarray(o + 4, o + 4 + vl)) });
    o += 4 + vl;
  }
  return out;
}
