// The packed rows of the catalog (schema.ts): a chunk of the block table, a
// chunk of contents, a directory's entries. Each packs to varints and is
// deflated (pack.ts); each unpacks with every number range-checked.
//
//   block:   offset - end of the previous block, csize, usize (varints),
//            flags (u8), stored-bytes check and CRC-32 (u32 each)
//   content: size, block count, then each block id as 0 (an all-zero
//            block) or 1 + zigzag(id - the previous nonzero id)
//   entry:   name, ino, type, mode, uid, gid, mtime (s, ns), nlink, size,
//            rdev major/minor, symlink target, content id, xattrs, sparse

import { ByteReader, ByteWriter, deflatePacked, inflatePacked } from './pack';
import { packXattrs } from './xattrs';
import type { BlockInfo } from '../pool/format';
import { Content, EntryType, floorSeconds, Inode } from '../tree';

/** What is stored of a pool block (the catalog keeps what reads check). */
export type StoredBlock = Pick<BlockInfo, 'offset' | 'csize' | 'usize' | 'flags' | 'sxh' | 'crc32'>;

/** A row as stored: deflated bytes and the size they inflate to. */
export interface PackedRow {
  size: number;
  data: Buffer;
}

function seal(w: ByteWriter): PackedRow {
  const raw = w.done();
  return { size: raw.length, data: deflatePacked(raw) };
}

function open(row: PackedRow, what: string): ByteReader {
  return new ByteReader(inflatePacked(row.data, row.size, what), what);
}

export function packBlocks(blocks: readonly StoredBlock[], prevEnd: number): PackedRow {
  const w = new ByteWriter();
  let end = prevEnd;
  for (const b of blocks) {
    w.uvarint(b.offset - end);
    w.uvarint(b.csize);
    w.uvarint(b.usize);
    w.u8(b.flags);
    w.u32(b.sxh);
    w.u32(b.crc32);
    end = b.offset + b.csize;
  }
  return seal(w);
}

/** Unpack `count` blocks into the table's columns from index `first`; returns the end of the last. */
export function unpackBlocks(row: PackedRow, count: number, prevEnd: number, first: number,
  t: { offset: Float64Array; csize: Uint32Array; usize: Uint32Array; flags: Uint8Array; sxh: Uint32Array; crc32: Uint32Array },
  what: string): number {
  const r = open(row, what);
  let end = prevEnd;
  for (let i = first; i < first + count; i++) {
    const offset = end + r.uvarint();
    const csize = r.uvarint();
    const usize = r.uvarint();
    if (csize > 0xffffffff || usize > 0xffffffff || !Number.isSafeInteger(offset + csize)) throw new Error(`${what}: block ${i + 1} is damaged`);
    t.offset[i] = offset;
    t.csize[i] = csize;
    t.usize[i] = usize;
    t.flags[i] = r.u8();
    t.sxh[i] = r.u32();
    t.crc32[i] = r.u32();
    end = offset + csize;
  }
  if (!r.atEnd) throw new Error(`${what}: packed data is damaged`);
  return end;
}

export function packContents(contents: readonly Content[]): PackedRow {
  const w = new ByteWriter();
  for (const c of contents) {
    w.uvarint(c.size);
    w.uvarint(c.blocks.length);
    let prev = 0;
    for (const id of c.blocks) {
      if (id === 0) {
        w.uvarint(0);
      } else {
        const d = id - prev;
        w.uvarint(1 + (d < 0 ? -2 * d - 1 : 2 * d));
        prev = id;
      }
    }
  }
  return seal(w);
}

export function unpackContents(row: PackedRow, count: number, what: string): { size: number; blocks: Uint32Array }[] {
  const r = open(row, what);
  const out: { size: number; blocks: Uint32Array }[] = [];
  for (let k = 0; k < count; k++) {
    const size = r.uvarint();
    const n = r.uvarint();
    if (n !== Math.ceil(size / 65536)) throw new Error(`${what}: packed data is damaged`);
    const blocks = new Uint32Array(n);
    let prev = 0;
    for (let i = 0; i < n; i++) {
      const v = r.uvarint();
      if (v === 0) continue;
      const z = v - 1;
      const id = prev + (z % 2 === 0 ? z / 2 : -(z + 1) / 2);
      if (id < 1 || id > 0xffffffff) throw new Error(`${what}: packed data is damaged`);
      blocks[i] = prev = id;
    }
    out.push({ size, blocks });
  }
  if (!r.atEnd) throw new Error(`${what}: packed data is damaged`);
  return out;
}

/** One tree entry as the catalog reads it back. */
export interface InodeRow {
  tree: number;
  ino: number;
  type: EntryType;
  mode: number;
  uid: number;
  gid: number;
  mtime_sec: number;
  mtime_nsec: number;
  nlink: number;
  size: number;
  rdev_major: number;
  rdev_minor: number;
  target: Buffer | null;
  content: number | null;
  xattrs: Buffer | null;
  sparse: number;
}

function packEntry(w: ByteWriter, name: string, i: Inode): void {
  const sec = floorSeconds(i.mtimeNs);
  const target = i.type === EntryType.Symlink ? Buffer.from(i.target ?? '', 'latin1') : undefined;
  w.blob(Buffer.from(name, 'latin1'));
  w.uvarint(i.ino);
  w.u8(i.type);
  w.uvarint(i.mode);
  w.uvarint(i.uid);
  w.uvarint(i.gid);
  w.svarint(Number(sec));
  w.uvarint(Number(i.mtimeNs - sec * 1_000_000_000n));
  w.uvarint(i.nlink);
  w.uvarint(target ? target.length : i.content?.size ?? 0);
  w.uvarint(i.rdevMajor);
  w.uvarint(i.rdevMinor);
  if (target) w.blob(target);
  w.uvarint(i.content?.id ?? 0);
  w.blob(packXattrs(i.xattrs) ?? Buffer.alloc(0));
  w.u8(i.sparse ? 1 : 0);
}

function unpackEntry(r: ByteReader, tree: number): { name: Buffer; row: InodeRow } {
  const name = Buffer.from(r.blob());
  const ino = r.uvarint();
  const type = r.u8() as EntryType;
  if (type < EntryType.File || type > EntryType.Socket) throw new Error(`tree ${tree}: entry type ${type} is damaged`);
  const mode = r.uvarint();
  const uid = r.uvarint();
  const gid = r.uvarint();
  const mtime_sec = r.svarint();
  const mtime_nsec = r.uvarint();
  const nlink = r.uvarint();
  const size = r.uvarint();
  const rdev_major = r.uvarint();
  const rdev_minor = r.uvarint();
  const target = type === EntryType.Symlink ? Buffer.from(r.blob()) : null;
  const content = r.uvarint() || null;
  const x = r.blob();
  const sparse = r.u8();
  return {
    name,
    row: { tree, ino, type, mode, uid, gid, mtime_sec, mtime_nsec, nlink, size, rdev_major, rdev_minor, target, content,
      xattrs: x.length ? Buffer.from(x) : null, sparse },
  };
}

/** A directory's entries, sorted by name bytes: name, then the child's inode. */
export function packDir(entries: [string, Inode][]): PackedRow {
  const w = new ByteWriter();
  w.uvarint(entries.length);
  for (const [name, inode] of entries) packEntry(w, name, inode);
  return seal(w);
}

export function unpackDir(row: PackedRow, tree: number, what: string): { name: Buffer; row: InodeRow }[] {
  const r = open(row, what);
  const n = r.uvarint();
  const out: { name: Buffer; row: InodeRow }[] = [];
  for (let k = 0; k < n; k++) out.push(unpackEntry(r, tree));
  if (!r.atEnd) throw new Error(`${what}: packed data is damaged`);
  return out;
}
