// squashfs 4.0 writer: lays a Tree out as a squashfs image (gzip, 64 KiB
// blocks, no fragments) whose data blocks are pool blocks. A compressed
// pool block becomes a data block by its zlib framing alone (pool/format.ts:
// header, the pool's deflate bytes unchanged, an empty final block, the
// Adler-32); a raw pool block is stored uncompressed (size word bit 24); an
// all-zero block is sparse (size word 0). Identical files share their data
// blocks; a block two different files hold is written once per file, since
// a file's blocks lie back to back from its start_block.
//
// The result (SquashfsImage) is a list of pieces: literal bytes (superblock,
// tables, padding) and pool blocks. It is written to a file (writeImage) for
// the universal ISO, where the first copy of each block is where the pool
// keeps it, and it is also a recipe over the pool (squashfsRecipe) for the
// rootfs.squashfs views.
//
// Layout, as mksquashfs writes it and the kernel checks it: superblock |
// data blocks | inode table | directory table | export table (metadata,
// then its index) | id table (metadata, index) | xattr key/value table |
// xattr id table (metadata, then its header and index) | zero padding to
// 4 KiB. Inodes are numbered in the order they are written: a directory
// after everything below it (its listing needs their inode references), so
// the root is last. File data is laid out in the tree's depth-first name
// order, the order `find`, tar and the tarball views read files.

import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as zlib from 'node:zlib';
import { BlockInfo, FLAG_RAW, framedSize, ZLIB_HEADER_LEN, ZLIB_TRAILER_LEN, zlibTrailer } from '../../pool/format';
import { Recipe, RecipeBuilder } from '../../recipe/recipe';
import { Content, EntryType, floorSeconds, Inode, ROOT_INO, Tree } from '../../tree';
import { UserError } from '../../util/errors';
import {
  COMPRESSION_GZIP, DATA_UNCOMPRESSED, DEVICE_PAD, DIR_DELTA_MAX, DIR_DELTA_MIN, DIR_ENTRIES_MAX, encodeRdev,
  encodeSuperblock, FLAG_DUPLICATES, FLAG_EXPORTABLE, FLAG_NO_FRAGMENTS, FLAG_NO_XATTRS, INODE_HEADER_SIZE,
  META_UNCOMPRESSED, METADATA_SIZE, NAME_MAX, NO_FRAGMENT, NO_TABLE, NO_XATTR, SQUASHFS_MAGIC, SUPERBLOCK_SIZE,
  T_BLKDEV, T_CHRDEV, T_DIR, T_EXTENDED, T_FIFO, T_LDIR, T_LREG, T_REG, T_SOCKET, T_SYMLINK, XATTR_PREFIXES,
} from './constants';

/** 64 KiB data blocks: the pool's block size. */
export const BLOCK_LOG = 16;
const BLOCK_SIZE = 1 << BLOCK_LOG;
/** Metadata blocks are compressed at zlib's best level (they are small; mksquashfs does the same). */
const METADATA_LEVEL = 9;
/** Names listed in a warning before "and N more". */
const WARN_NAMES = 8;
const MAX_IDS = 65536;
const DEV_MAJOR_MAX = 0xfff;
const DEV_MINOR_MAX = 0xfffff;
const U32 = 2 ** 32;
/** A metadata reference is block << 16 | offset: the block is its value over this. */
const REF_BLOCK = 65536;
/** The size words of an empty file. */
const NO_SIZES = Buffer.alloc(0);

/** A piece of the image, in order. */
export type SquashfsPiece =
  | { kind: 'bytes'; data: Buffer }
  | { kind: 'zero'; n: number }
  /** pool block `id` as a data block: zlib-framed, or its raw bytes when the pool keeps it raw */
  | { kind: 'block'; id: number };

export interface SquashfsImage {
  pieces: SquashfsPiece[];
  /** bytes of the image, padded */
  size: number;
  /** superblock bytes_used: the end of the last table */
  bytesUsed: number;
  /** pool block id -> position of its first copy's stored bytes (after the zlib header when compressed); 0: not in the image */
  placed: Float64Array;
  /** the zlib header of every compressed data block */
  zlibHeader: Buffer;
  inodes: number;
  /** data blocks written again for another file (their bytes are already in the image) */
  copies: number;
  warnings: string[];
}

export interface SquashfsOptions {
  /** what errors name (the input) */
  name: string;
  /** zlib header of the data blocks (pool/format.ts zlibHeader of the pool's level) */
  zlibHeader: Buffer;
  /** superblock mkfs_time (seconds) */
  mkfsTime: number;
}

// ---- metadata tables ---------------------------------------------------------

/**
 * A metadata table being written: bytes appended go into 8 KiB blocks, each
 * compressed on its own (or kept uncompressed when that is not smaller),
 * behind its 2-byte header. `block`/`offset` locate the next byte as inode
 * and directory references do: the compressed block's start relative to
 * the table's start, and the offset inside its uncompressed bytes.
 */
class MetadataWriter {
  private readonly out: Buffer[] = [];
  private readonly cur = Buffer.alloc(METADATA_SIZE);
  private fill = 0;
  /** compressed bytes written so far = start of the current block, relative to the table */
  block = 0;
  /** start of each block, relative to the table */
  readonly blockStarts: number[] = [];

  get offset(): number {
    return this.fill;
  }

  /** Reference (block << 16 | offset) of the next byte appended, as a number (exact below 2^53). */
  get refNumber(): number {
    return this.block * REF_BLOCK + this.fill;
  }

  /** The same reference as a bigint. */
  get ref(): bigint {
    return BigInt(this.refNumber);
  }

  append(b: Buffer): void {
    for (let off = 0; off < b.length;) {
      const n = Math.min(METADATA_SIZE - this.fill, b.length - off);
      b.copy(this.cur, this.fill, off, off + n);
      this.fill += n;
      off += n;
      if (this.fill === METADATA_SIZE) this.flush();
    }
  }

  private flush(): void {
    if (this.fill === 0) return;
    const data = this.cur.subarray(0, this.fill);
    const packed = zlib.deflateSync(data, { level: METADATA_LEVEL });
    const stored = packed.length < data.length ? packed : Buffer.from(data);
    const head = Buffer.alloc(2);
    head.writeUInt16LE(stored.length | (stored === packed ? 0 : META_UNCOMPRESSED), 0);
    this.blockStarts.push(this.block);
    this.out.push(head, stored);
    this.block += 2 + stored.length;
    this.fill = 0;
  }

  /** The table's bytes (the last block may be short). */
  finish(): Buffer {
    this.flush();
    return Buffer.concat(this.out);
  }
}

/** A table of fixed-size entries (ids, export, xattr ids): metadata blocks, then the u64 index of their positions. */
function indexedTable(entries: Buffer, at: number): { bytes: Buffer; indexAt: number } {
  const w = new MetadataWriter();
  w.append(entries);
  const meta = w.finish();
  const index = Buffer.alloc(8 * w.blockStarts.length);
  w.blockStarts.forEach((s, i) => index.writeBigUInt64LE(BigInt(at + s), 8 * i));
  return { bytes: Buffer.concat([meta, index]), indexAt: at + meta.length };
}

// ---- the tree pass ---------------------------------------------------------------

function basicTypeOf(t: EntryType): number {
  switch (t) {
    case EntryType.Dir: return T_DIR;
    case EntryType.File: return T_REG;
    case EntryType.Symlink: return T_SYMLINK;
    case EntryType.BlockDev: return T_BLKDEV;
    case EntryType.CharDev: return T_CHRDEV;
    case EntryType.Fifo: return T_FIFO;
    case EntryType.Socket: return T_SOCKET;
  }
}

function warnList(what: string, names: string[]): string {
  const shown = names.slice(0, WARN_NAMES).join(', ');
  return `${what}: ${shown}${names.length > WARN_NAMES ? ` and ${names.length - WARN_NAMES} more` : ''}`;
}

/** Seconds as squashfs stores them (u32), or undefined when out of range. */
function mtimeSeconds(ns: bigint): number | undefined {
  const s = floorSeconds(ns);
  return s < 0n || s >= BigInt(U32) ? undefined : Number(s);
}

/**
 * Lay `tree` out as a squashfs image over the pool blocks `blocks` (id =
 * index + 1). Throws a UserError naming the path when the tree holds
 * something squashfs cannot (a name over 256 bytes, a device number out of
 * range, more than 65536 owners).
 */
export function layoutSquashfs(tree: Tree, blocks: readonly BlockInfo[], opts: SquashfsOptions): SquashfsImage {
  const warnings: string[] = [];
  const cannot = (path: string, why: string) => new UserError(`${opts.name}: ${path} cannot be stored in squashfs: ${why}`);

  // 1. walk: sorted children (cached), link counts, parents, and the write order (post-order).
  // Per-inode facts live in typed arrays indexed by the tree's inode numbers.
  const limit = tree.inoLimit;
  const kids = new Map<number, [string, number][]>();
  const parentOf = new Uint32Array(limit); // directory -> its parent directory (the root: itself)
  const links = new Uint32Array(limit);
  const numberOf = new Uint32Array(limit); // squashfs inode number, 0 until numbered
  const order = new Uint32Array(tree.inodes.size);
  let inodeCount = 0;
  // where an inode's first entry is (its directory and name), for the paths messages show
  const entryDir = new Uint32Array(limit);
  const entryName: string[] = [];
  const pathOf = (ino: number, name = entryName[ino]): string => {
    if (ino === ROOT_INO) return '/';
    if (name === undefined) return '?';
    const parts = [name];
    for (let d = ino === ROOT_INO ? ROOT_INO : entryDir[ino]; d !== ROOT_INO; d = entryDir[d]) parts.push(entryName[d]);
    return `/${parts.reverse().join('/')}`;
  };
  const stack: { ino: number; i: number }[] = [{ ino: ROOT_INO, i: 0 }];
  parentOf[ROOT_INO] = ROOT_INO;
  kids.set(ROOT_INO, tree.sortedChildren(ROOT_INO));
  while (stack.length) {
    const top = stack[stack.length - 1];
    const list = kids.get(top.ino)!;
    if (top.i === list.length) {
      stack.pop();
      numberOf[top.ino] = ++inodeCount;
      order[inodeCount - 1] = top.ino;
      continue;
    }
    const [name, ino] = list[top.i++];
    const childPath = () => `${top.ino === ROOT_INO ? '' : pathOf(top.ino)}/${name}`;
    if (Buffer.byteLength(name, 'latin1') > NAME_MAX) {
      throw cannot(Buffer.from(childPath(), 'latin1').toString('utf8'), `its name is ${Buffer.byteLength(name, 'latin1')} bytes long (at most ${NAME_MAX})`);
    }
    const inode = tree.inodes.get(ino)!;
    links[ino]++;
    if (inode.type === EntryType.Dir) {
      if (parentOf[ino] !== 0) throw new Error(`${opts.name}: directory ${childPath()} is linked twice`);
      parentOf[ino] = top.ino;
      entryDir[ino] = top.ino;
      entryName[ino] = name;
      kids.set(ino, tree.sortedChildren(ino));
      stack.push({ ino, i: 0 });
    } else if (numberOf[ino] === 0) {
      entryDir[ino] = top.ino;
      entryName[ino] = name;
      numberOf[ino] = ++inodeCount;
      order[inodeCount - 1] = ino;
    }
  }
  const display = (ino: number) => Buffer.from(pathOf(ino), 'latin1').toString('utf8');

  // 2. owners, xattrs, mtimes
  const ids = new Map<number, number>();
  const idOf = (v: number, ino: number): number => {
    let k = ids.get(v);
    if (k === undefined) {
      if (ids.size === MAX_IDS) throw cannot(display(ino), `more than ${MAX_IDS} distinct owners and groups`);
      ids.set(v, (k = ids.size));
    }
    return k;
  };
  const xattrKv = new MetadataWriter();
  const xattrIds: Buffer[] = [];
  const xattrIndex = new Map<string, number>();
  const dropped: string[] = [];
  const xattrOf = (inode: Inode): number => {
    const kept = inode.xattrs.filter((x) => XATTR_PREFIXES.some((p) => x.name.startsWith(p) && x.name.length > p.length));
    if (kept.length < inode.xattrs.length) {
      const names = inode.xattrs.filter((x) => !kept.includes(x)).map((x) => x.name).join(' ');
      dropped.push(`${display(inode.ino)} (${names})`);
    }
    if (!kept.length) return NO_XATTR;
    const key = kept.map((x) => `${x.name}\0${x.value.toString('latin1')}`).join('\0\0');
    let idx = xattrIndex.get(key);
    if (idx !== undefined) return idx;
    const ref = xattrKv.ref;
    let size = 0;
    for (const x of kept) {
      const type = XATTR_PREFIXES.findIndex((p) => x.name.startsWith(p));
      const name = Buffer.from(x.name.slice(XATTR_PREFIXES[type].length), 'latin1');
      const head = Buffer.alloc(4);
      head.writeUInt16LE(type, 0);
      head.writeUInt16LE(name.length, 2);
      const vlen = Buffer.alloc(4);
      vlen.writeUInt32LE(x.value.length, 0);
      xattrKv.append(Buffer.concat([head, name, vlen, x.value]));
      size += Buffer.byteLength(x.name, 'latin1') + 1 + x.value.length;
    }
    const id = Buffer.alloc(16);
    id.writeBigUInt64LE(ref, 0);
    id.writeUInt32LE(kept.length, 8);
    id.writeUInt32LE(size, 12);
    idx = xattrIds.length;
    xattrIds.push(id);
    xattrIndex.set(key, idx);
    return idx;
  };
  const clamped: string[] = [];
  const header = (inode: Inode, type: number, number: number): Buffer => {
    const h = Buffer.alloc(INODE_HEADER_SIZE);
    let mtime = mtimeSeconds(inode.mtimeNs);
    if (mtime === undefined) {
      clamped.push(display(inode.ino));
      mtime = inode.mtimeNs < 0n ? 0 : U32 - 1;
    }
    h.writeUInt16LE(type, 0);
    h.writeUInt16LE(inode.mode & 0o7777, 2);
    h.writeUInt16LE(idOf(inode.uid, inode.ino), 4);
    h.writeUInt16LE(idOf(inode.gid, inode.ino), 6);
    h.writeUInt32LE(mtime, 8);
    h.writeUInt32LE(number, 12);
    return h;
  };

  // 3. data blocks, in depth-first name order; identical contents share theirs
  const pieces: SquashfsPiece[] = [{ kind: 'bytes', data: Buffer.alloc(SUPERBLOCK_SIZE) }];
  const placed = new Float64Array(blocks.length + 1);
  const startOf = new Map<Content, number>(); // where each content's blocks start
  let pos = SUPERBLOCK_SIZE;
  let copies = 0;
  const placeFile = (c: Content, ino: number): void => {
    if (c.size === 0 || startOf.has(c)) return;
    const n = Math.ceil(c.size / BLOCK_SIZE);
    if (c.blocks.length !== n) throw new Error(`${opts.name}: ${display(ino)}: ${c.blocks.length} pool blocks for ${c.size} bytes`);
    startOf.set(c, pos);
    for (let k = 0; k < n; k++) {
      const len = Math.min(BLOCK_SIZE, c.size - k * BLOCK_SIZE);
      const id = c.blocks[k];
      if (id === 0) continue;
      const b = blocks[id - 1];
      if (!b || b.usize !== len) throw new Error(`${opts.name}: ${display(ino)}: pool block ${id} does not fit block ${k}`);
      const raw = (b.flags & FLAG_RAW) !== 0;
      const onDisk = framedSize(b);
      if (onDisk > BLOCK_SIZE || (!raw && onDisk >= b.usize)) throw new Error(`pool block ${id}: ${onDisk} bytes as a data block of ${b.usize}`);
      if (placed[id] !== 0) copies++;
      else placed[id] = raw ? pos : pos + ZLIB_HEADER_LEN;
      pieces.push({ kind: 'block', id });
      pos += onDisk;
    }
  };
  for (const walk = [{ list: kids.get(ROOT_INO)!, i: 0 }]; walk.length;) {
    const top = walk[walk.length - 1];
    if (top.i === top.list.length) {
      walk.pop();
      continue;
    }
    const ino = top.list[top.i++][1];
    const inode = tree.inodes.get(ino)!;
    if (inode.type === EntryType.Dir) walk.push({ list: kids.get(ino)!, i: 0 });
    else if (inode.type === EntryType.File && inode.content) placeFile(inode.content, ino);
  }
  const dataEnd = pos;
  /** A file's data: where its blocks start, the bytes of its sparse blocks, and its block size words (as placeFile laid them out). */
  const fileData = (c: Content | undefined): { start: number; sparse: number; sizes: Buffer } => {
    if (!c || c.size === 0) return { start: dataEnd, sparse: 0, sizes: NO_SIZES };
    const sizes = Buffer.alloc(4 * c.blocks.length);
    let sparse = 0;
    for (let k = 0; k < c.blocks.length; k++) {
      const id = c.blocks[k];
      if (id === 0) {
        sparse += Math.min(BLOCK_SIZE, c.size - k * BLOCK_SIZE);
        continue;
      }
      const b = blocks[id - 1];
      sizes.writeUInt32LE(b.flags & FLAG_RAW ? b.usize | DATA_UNCOMPRESSED : framedSize(b), 4 * k);
    }
    return { start: startOf.get(c)!, sparse, sizes };
  };

  // 4. inodes and directory listings, in write order
  const inodesW = new MetadataWriter();
  const dirsW = new MetadataWriter();
  const refOf = new Float64Array(limit); // inode reference (block << 16 | offset) of each inode written
  const typeOf = new Uint8Array(limit); // its basic type
  const refByNumber = new Float64Array(inodeCount);
  for (const ino of order.subarray(0, inodeCount)) {
    const inode = tree.inodes.get(ino)!;
    const number = numberOf[ino];
    const xattr = xattrOf(inode);
    const ext = xattr !== NO_XATTR;
    const ref = inodesW.refNumber;
    const basic = basicTypeOf(inode.type);
    let body: Buffer;
    let type = basic;
    switch (inode.type) {
      case EntryType.Dir: {
        const listing = dirListing(kids.get(ino)!, refOf, numberOf, typeOf);
        const at = { block: dirsW.block, offset: dirsW.offset };
        dirsW.append(listing);
        const fileSize = listing.length + 3;
        const subdirs = kids.get(ino)!.filter((e) => tree.inodes.get(e[1])!.type === EntryType.Dir).length;
        const parentNo = ino === ROOT_INO ? inodeCount + 1 : numberOf[parentOf[ino]];
        if (at.block >= U32) throw cannot(display(ino), 'the directory table is over 4 GiB');
        if (ext || fileSize > 0xffff) {
          type = T_LDIR;
          body = Buffer.alloc(24);
          body.writeUInt32LE(subdirs + 2, 0);
          body.writeUInt32LE(fileSize, 4);
          body.writeUInt32LE(at.block, 8);
          body.writeUInt32LE(parentNo, 12);
          body.writeUInt16LE(0, 16); // no directory index
          body.writeUInt16LE(at.offset, 18);
          body.writeUInt32LE(xattr, 20);
        } else {
          body = Buffer.alloc(16);
          body.writeUInt32LE(at.block, 0);
          body.writeUInt32LE(subdirs + 2, 4);
          body.writeUInt16LE(fileSize, 8);
          body.writeUInt16LE(at.offset, 10);
          body.writeUInt32LE(parentNo, 12);
        }
        break;
      }
      case EntryType.File: {
        const c = inode.content;
        const size = c?.size ?? 0;
        const d = fileData(c);
        const nlink = links[ino];
        const sizes = d.sizes;
        if (nlink > 1 || ext || size >= U32 || d.start >= U32 || d.sparse > 0) {
          type = T_LREG;
          body = Buffer.alloc(40 + sizes.length);
          body.writeBigUInt64LE(BigInt(d.start), 0);
          body.writeBigUInt64LE(BigInt(size), 8);
          body.writeBigUInt64LE(BigInt(d.sparse >= size ? Math.max(0, size - 1) : d.sparse), 16);
          body.writeUInt32LE(nlink, 24);
          body.writeUInt32LE(NO_FRAGMENT, 28);
          body.writeUInt32LE(0, 32);
          body.writeUInt32LE(xattr, 36);
          sizes.copy(body, 40);
        } else {
          body = Buffer.alloc(16 + sizes.length);
          body.writeUInt32LE(d.start, 0);
          body.writeUInt32LE(NO_FRAGMENT, 4);
          body.writeUInt32LE(0, 8);
          body.writeUInt32LE(size, 12);
          sizes.copy(body, 16);
        }
        break;
      }
      case EntryType.Symlink: {
        const target = Buffer.from(inode.target ?? '', 'latin1');
        body = Buffer.alloc(8 + target.length + (ext ? 4 : 0));
        body.writeUInt32LE(links[ino], 0);
        body.writeUInt32LE(target.length, 4);
        target.copy(body, 8);
        if (ext) body.writeUInt32LE(xattr, 8 + target.length);
        break;
      }
      case EntryType.CharDev:
      case EntryType.BlockDev: {
        if (inode.rdevMajor > DEV_MAJOR_MAX || inode.rdevMinor > DEV_MINOR_MAX) {
          throw cannot(display(ino), `device ${inode.rdevMajor}:${inode.rdevMinor} is out of range (major <= ${DEV_MAJOR_MAX}, minor <= ${DEV_MINOR_MAX})`);
        }
        body = Buffer.alloc(ext ? 12 : 8);
        body.writeUInt32LE(links[ino], 0);
        body.writeUInt32LE(encodeRdev(inode.rdevMajor, inode.rdevMinor), 4);
        if (ext) body.writeUInt32LE(xattr, 8);
        break;
      }
      default: { // fifo, socket
        body = Buffer.alloc(ext ? 8 : 4);
        body.writeUInt32LE(links[ino], 0);
        if (ext) body.writeUInt32LE(xattr, 4);
      }
    }
    if (ext && type === basic) type = basic + T_EXTENDED;
    inodesW.append(header(inode, type, number));
    inodesW.append(body);
    refOf[ino] = ref;
    typeOf[ino] = basic;
    refByNumber[number - 1] = ref;
  }
  if (dropped.length) {
    warnings.push(warnList(`squashfs holds only user., trusted. and security. xattrs; left out of the squashfs (kept in the tarball and disk views) on ${dropped.length} file(s)`, dropped));
  }
  if (clamped.length) {
    warnings.push(warnList(`squashfs holds mtimes from 1970 to 2106 only; clamped in the squashfs (kept in the tarball and disk views) on ${clamped.length} file(s)`, clamped));
  }

  // 5. the tables, back to back
  pos = dataEnd;
  const inodeTable = inodesW.finish();
  const inodeTableStart = pos;
  pos += inodeTable.length;
  const dirTable = dirsW.finish();
  const dirTableStart = pos;
  pos += dirTable.length;
  const fragmentTableStart = pos; // no fragments: where mksquashfs would put the (empty) table
  const exportEntries = Buffer.alloc(8 * inodeCount);
  refByNumber.forEach((r, i) => exportEntries.writeBigUInt64LE(BigInt(r), 8 * i));
  const exportT = indexedTable(exportEntries, pos);
  pos += exportT.bytes.length;
  const idEntries = Buffer.alloc(4 * ids.size);
  for (const [v, k] of ids) idEntries.writeUInt32LE(v >>> 0, 4 * k);
  const idT = indexedTable(idEntries, pos);
  pos += idT.bytes.length;
  const tables: Buffer[] = [inodeTable, dirTable, exportT.bytes, idT.bytes];
  let xattrIdTableStart = NO_TABLE;
  if (xattrIds.length) {
    const kv = xattrKv.finish();
    const xattrTableStart = pos;
    pos += kv.length;
    const w = new MetadataWriter();
    w.append(Buffer.concat(xattrIds));
    const idMeta = w.finish();
    const idMetaStart = pos;
    pos += idMeta.length;
    const head = Buffer.alloc(16 + 8 * w.blockStarts.length);
    head.writeBigUInt64LE(BigInt(xattrTableStart), 0);
    head.writeUInt32LE(xattrIds.length, 8);
    w.blockStarts.forEach((s, i) => head.writeBigUInt64LE(BigInt(idMetaStart + s), 16 + 8 * i));
    xattrIdTableStart = BigInt(pos);
    pos += head.length;
    tables.push(kv, idMeta, head);
  }
  const bytesUsed = pos;
  const size = Math.ceil(bytesUsed / DEVICE_PAD) * DEVICE_PAD;
  pieces.push({ kind: 'bytes', data: Buffer.concat(tables) });
  if (size > bytesUsed) pieces.push({ kind: 'zero', n: size - bytesUsed });

  const rootRef = BigInt(refOf[ROOT_INO]);
  pieces[0] = {
    kind: 'bytes',
    data: encodeSuperblock({
      s_magic: SQUASHFS_MAGIC, inodes: inodeCount, mkfs_time: opts.mkfsTime, block_size: BLOCK_SIZE, fragments: 0,
      compression: COMPRESSION_GZIP, block_log: BLOCK_LOG,
      flags: FLAG_NO_FRAGMENTS | FLAG_DUPLICATES | FLAG_EXPORTABLE | (xattrIds.length ? 0 : FLAG_NO_XATTRS),
      no_ids: ids.size, s_major: 4, s_minor: 0, root_inode: rootRef, bytes_used: BigInt(bytesUsed),
      id_table_start: BigInt(idT.indexAt), xattr_id_table_start: xattrIdTableStart,
      inode_table_start: BigInt(inodeTableStart), directory_table_start: BigInt(dirTableStart),
      fragment_table_start: BigInt(fragmentTableStart), lookup_table_start: BigInt(exportT.indexAt),
    }),
  };
  return { pieces, size, bytesUsed, placed, zlibHeader: opts.zlibHeader, inodes: inodeCount, copies, warnings };
}

/**
 * A directory's listing: runs of entries behind a header {count - 1, inode
 * metadata block, base inode number}; a new run starts at 256 entries, when
 * the inode block changes, or when an inode number is too far from the
 * run's base for the entry's signed 16-bit delta (inodes are written in
 * number order, so the block changes first: the delta check is a guard).
 */
function dirListing(entries: [string, number][], refOf: Float64Array, numberOf: Uint32Array, typeOf: Uint8Array): Buffer {
  const parts: Buffer[] = [];
  const blockOf = (ino: number) => Math.floor(refOf[ino] / REF_BLOCK);
  for (let i = 0; i < entries.length;) {
    const first = entries[i][1];
    const block = blockOf(first);
    let j = i + 1;
    while (j < entries.length && j - i < DIR_ENTRIES_MAX) {
      const w = entries[j][1];
      const delta = numberOf[w] - numberOf[first];
      if (blockOf(w) !== block || delta < DIR_DELTA_MIN || delta > DIR_DELTA_MAX) break;
      j++;
    }
    const head = Buffer.alloc(12);
    head.writeUInt32LE(j - i - 1, 0);
    head.writeUInt32LE(block, 4);
    head.writeUInt32LE(numberOf[first], 8);
    parts.push(head);
    for (let k = i; k < j; k++) {
      const [n, w] = entries[k];
      const name = Buffer.from(n, 'latin1');
      const e = Buffer.alloc(8);
      e.writeUInt16LE(refOf[w] % REF_BLOCK, 0);
      e.writeInt16LE(numberOf[w] - numberOf[first], 2);
      e.writeUInt16LE(typeOf[w], 4);
      e.writeUInt16LE(name.length - 1, 6);
      parts.push(e, name);
    }
    i = j;
  }
  return Buffer.concat(parts);
}

// ---- using the layout ------------------------------------------------------------

/**
 * Write the image to `fd` (from its start), each pool block's stored bytes
 * from `stored` (id -> the bytes the pool keeps). Returns its SHA-256 (hex).
 */
export function writeImage(image: SquashfsImage, fd: number, blocks: readonly BlockInfo[], stored: (id: number) => Buffer): string {
  const hash = crypto.createHash('sha256');
  const buf = Buffer.allocUnsafe(4 << 20);
  let fill = 0;
  let at = 0;
  const flush = () => {
    for (let w = 0; w < fill;) w += fs.writeSync(fd, buf, w, fill - w, at + w);
    hash.update(buf.subarray(0, fill));
    at += fill;
    fill = 0;
  };
  const put = (b: Buffer) => {
    for (let off = 0; off < b.length;) {
      if (fill === buf.length) flush();
      const n = Math.min(buf.length - fill, b.length - off);
      b.copy(buf, fill, off, off + n);
      fill += n;
      off += n;
    }
  };
  const trailer = Buffer.allocUnsafe(ZLIB_TRAILER_LEN);
  for (const p of image.pieces) {
    if (p.kind === 'bytes') put(p.data);
    else if (p.kind === 'zero') put(Buffer.alloc(p.n));
    else {
      const b = blocks[p.id - 1];
      const data = stored(p.id);
      if (data.length !== b.csize) throw new Error(`pool block ${p.id}: ${data.length} stored bytes, expected ${b.csize}`);
      if (b.flags & FLAG_RAW) {
        put(data);
      } else {
        put(image.zlibHeader);
        put(data);
        put(zlibTrailer(b.adler32, trailer));
      }
    }
  }
  flush();
  if (at !== image.size) throw new Error(`squashfs image: wrote ${at} bytes, laid out ${image.size}`);
  return hash.digest('hex');
}

/**
 * The image as a recipe over the pool: the superblock and tables as
 * literals, each compressed data block as its zlib header, the pool
 * block's deflate bytes and its trailer, each raw one as its bytes.
 */
export function squashfsRecipe(image: SquashfsImage, blocks: readonly BlockInfo[]): Recipe {
  const rb = new RecipeBuilder();
  // every trailer first: a literal buffer must be complete when the builder first sees it
  const compressed = image.pieces.filter((p) => p.kind === 'block' && !(blocks[p.id - 1].flags & FLAG_RAW)) as { id: number }[];
  const trailers = Buffer.allocUnsafe(compressed.length * ZLIB_TRAILER_LEN);
  compressed.forEach((p, k) => zlibTrailer(blocks[p.id - 1].adler32, trailers, k * ZLIB_TRAILER_LEN));
  let t = 0;
  for (const p of image.pieces) {
    if (p.kind === 'bytes') rb.literal(p.data);
    else if (p.kind === 'zero') rb.zero(p.n);
    else {
      const b = blocks[p.id - 1];
      if (b.flags & FLAG_RAW) {
        rb.raw(p.id, 0, b.usize);
      } else {
        rb.literal(image.zlibHeader);
        rb.deflate(p.id, b.csize);
        rb.literal(trailers, t, ZLIB_TRAILER_LEN);
        t += ZLIB_TRAILER_LEN;
      }
    }
  }
  const r = rb.build();
  if (r.size !== image.size) throw new Error(`squashfs recipe: ${r.size} bytes, laid out ${image.size}`);
  return r;
}
