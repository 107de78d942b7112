// Hand-made ISO 9660 bytes for reader tests: directory records, a minimal
// image (primary volume descriptor, terminator, root directory), the Rock
// Ridge root (SUSP SP), SUSP CE and Rock Ridge NM entries.

export const SECTOR = 2048;

/** A directory record (ECMA-119 9.1) with an optional system use area. */
export function dirRecord(lba: number, size: number, flags: number, name: Buffer, su: Buffer = Buffer.alloc(0)): Buffer {
  const pad = name.length % 2 === 0 ? 1 : 0;
  const len = 33 + name.length + pad + su.length;
  const r = Buffer.alloc(len + (len % 2));
  r[0] = r.length;
  r.writeUInt32LE(lba, 2); r.writeUInt32BE(lba, 6);
  r.writeUInt32LE(size, 10); r.writeUInt32BE(size, 14);
  r[25] = flags;
  r.writeUInt16LE(1, 28); r.writeUInt16BE(1, 30);
  r[32] = name.length;
  name.copy(r, 33);
  su.copy(r, 33 + name.length + pad);
  return r;
}

/** An ISO of `sectors` sectors: PVD at 16 (root directory at sector 18, `rootSize` bytes), terminator at 17, `rootDir` at 18. */
export function iso(opts: { rootSize?: number; rootDir?: Buffer; sectors?: number; terminator?: boolean } = {}): Buffer {
  const b = Buffer.alloc((opts.sectors ?? 20) * SECTOR);
  const pvd = b.subarray(16 * SECTOR);
  pvd[0] = 1; pvd.write('CD001', 1, 'latin1'); pvd[6] = 1;
  pvd.writeUInt16LE(SECTOR, 128); pvd.writeUInt16BE(SECTOR, 130);
  dirRecord(18, opts.rootSize ?? SECTOR, 2, Buffer.from([0])).copy(pvd, 156);
  if (opts.terminator !== false && b.length >= 18 * SECTOR) {
    const term = b.subarray(17 * SECTOR);
    term[0] = 255; term.write('CD001', 1, 'latin1'); term[6] = 1;
  }
  if (opts.rootDir && b.length >= 19 * SECTOR) opts.rootDir.copy(b, 18 * SECTOR);
  return b;
}

/** The root directory's sector: "." with the SUSP SP entry (Rock Ridge), "..", then `records`. */
export function rrRoot(...records: Buffer[]): Buffer {
  const sp = Buffer.from([0x53, 0x50, 7, 1, 0xbe, 0xef, 0]);
  return Buffer.concat([dirRecord(18, SECTOR, 2, Buffer.from([0]), sp), dirRecord(18, SECTOR, 2, Buffer.from([1])), ...records]);
}

/** A SUSP CE entry: continuation area at `lba`, `off`, `len` (both-endian fields), `entryLen` bytes long. */
export function ce(lba: number, off: number, len: number, entryLen = 28): Buffer {
  const e = Buffer.alloc(28);
  e.write('CE', 0, 'latin1'); e[2] = entryLen; e[3] = 1;
  e.writeUInt32LE(lba, 4); e.writeUInt32BE(lba, 8);
  e.writeUInt32LE(off, 12); e.writeUInt32BE(off, 16);
  e.writeUInt32LE(len, 20); e.writeUInt32BE(len, 24);
  return e.subarray(0, Math.max(entryLen, 4));
}

/** A Rock Ridge NM entry (the name, no flags). */
export function nm(name: string): Buffer {
  const n = Buffer.from(name, 'utf8');
  const e = Buffer.alloc(5 + n.length);
  e.write('NM', 0, 'latin1'); e[2] = e.length; e[3] = 1; e[4] = 0;
  n.copy(e, 5);
  return e;
}
