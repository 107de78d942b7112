// Encoders for ext4's on-disk structures: superblock, group descriptor,
// inode, directory blocks, extent tree nodes, extended attributes (in-inode
// and block, with their hashes), POSIX ACLs in ext4's own format, and the
// jbd2 journal superblock. Field offsets follow the kernel's ext4.h.

import * as C from './constants';

// ---- superblock ------------------------------------------------------------

export interface SuperFields {
  inodesCount: number;
  blocksCount: number;
  rBlocksCount: number;
  freeBlocks: number;
  freeInodes: number;
  inodesPerGroup: number;
  timeSec: number; // mkfs / write / lastcheck time
  uuid: Buffer; // 16
  volumeName: string;
  hashSeed: Buffer; // 16
  jnlBlocks: number[]; // 17 words
  groupNr: number;
  logGroupsPerFlex: number;
}

export function encodeSuperblock(f: SuperFields): Buffer {
  const b = Buffer.alloc(1024);
  b.writeUInt32LE(f.inodesCount, 0x00);
  b.writeUInt32LE(f.blocksCount, 0x04);
  b.writeUInt32LE(f.rBlocksCount, 0x08);
  b.writeUInt32LE(f.freeBlocks, 0x0c);
  b.writeUInt32LE(f.freeInodes, 0x10);
  b.writeUInt32LE(0, 0x14); // s_first_data_block
  b.writeUInt32LE(C.LOG_BLOCK_SIZE, 0x18);
  b.writeUInt32LE(C.LOG_BLOCK_SIZE, 0x1c); // s_log_cluster_size
  b.writeUInt32LE(C.BLOCKS_PER_GROUP, 0x20);
  b.writeUInt32LE(C.BLOCKS_PER_GROUP, 0x24); // s_clusters_per_group
  b.writeUInt32LE(f.inodesPerGroup, 0x28);
  b.writeUInt32LE(0, 0x2c); // s_mtime
  b.writeUInt32LE(f.timeSec >>> 0, 0x30); // s_wtime
  b.writeUInt16LE(0, 0x34); // s_mnt_count
  b.writeUInt16LE(0xffff, 0x36); // s_max_mnt_count (-1)
  b.writeUInt16LE(C.EXT4_SUPER_MAGIC, 0x38);
  b.writeUInt16LE(C.EXT4_STATE_CLEAN, 0x3a);
  b.writeUInt16LE(C.EXT4_ERRORS_CONTINUE, 0x3c);
  b.writeUInt32LE(f.timeSec >>> 0, 0x40); // s_lastcheck
  b.writeUInt32LE(0, 0x44); // s_checkinterval
  b.writeUInt32LE(C.EXT4_OS_LINUX, 0x48);
  b.writeUInt32LE(C.EXT4_DYNAMIC_REV, 0x4c);
  b.writeUInt32LE(C.FIRST_INO, 0x54);
  b.writeUInt16LE(C.INODE_SIZE, 0x58);
  b.writeUInt16LE(f.groupNr, 0x5a);
  b.writeUInt32LE(C.COMPAT_HAS_JOURNAL | C.COMPAT_EXT_ATTR | C.COMPAT_DIR_INDEX, 0x5c);
  b.writeUInt32LE(C.INCOMPAT_FILETYPE | C.INCOMPAT_EXTENTS | C.INCOMPAT_FLEX_BG, 0x60);
  b.writeUInt32LE(C.RO_COMPAT_SPARSE_SUPER | C.RO_COMPAT_LARGE_FILE | C.RO_COMPAT_HUGE_FILE | C.RO_COMPAT_DIR_NLINK
    | C.RO_COMPAT_EXTRA_ISIZE, 0x64);
  f.uuid.copy(b, 0x68, 0, 16);
  b.write(f.volumeName.slice(0, 16), 0x78, 16, 'latin1');
  b.writeUInt32LE(C.JOURNAL_INO, 0xe0);
  f.hashSeed.copy(b, 0xec, 0, 16);
  b.writeUInt8(C.DX_HASH_HALF_MD4, 0xfc);
  b.writeUInt8(C.JNL_BACKUP_BLOCKS, 0xfd);
  b.writeUInt16LE(0, 0xfe); // s_desc_size: 32-byte descriptors
  b.writeUInt32LE(C.DEFM_XATTR_USER | C.DEFM_ACL, 0x100);
  b.writeUInt32LE(f.timeSec >>> 0, 0x108); // s_mkfs_time
  f.jnlBlocks.forEach((w, i) => b.writeUInt32LE(w >>> 0, 0x10c + 4 * i));
  b.writeUInt16LE(C.EXTRA_ISIZE, 0x15c); // s_min_extra_isize
  b.writeUInt16LE(C.EXTRA_ISIZE, 0x15e); // s_want_extra_isize
  b.writeUInt32LE(C.EXT2_FLAGS_SIGNED_HASH, 0x160);
  b.writeUInt8(f.logGroupsPerFlex, 0x174);
  return b;
}

// ---- group descriptor --------------------------------------------------------

export function encodeGroupDesc(out: Buffer, at: number, blockBitmap: number, inodeBitmap: number, inodeTable: number,
  freeBlocks: number, freeInodes: number, usedDirs: number): void {
  out.writeUInt32LE(blockBitmap, at + 0x00);
  out.writeUInt32LE(inodeBitmap, at + 0x04);
  out.writeUInt32LE(inodeTable, at + 0x08);
  out.writeUInt16LE(freeBlocks, at + 0x0c);
  out.writeUInt16LE(freeInodes, at + 0x0e);
  out.writeUInt16LE(usedDirs, at + 0x10);
}

// ---- timestamps ----------------------------------------------------------------

/** On-disk seconds (low 32 bits) and the *_extra word (epoch bits + nanoseconds). */
export function encodeTime(ns: bigint): { lo: number; extra: number } {
  let sec = ns / 1_000_000_000n;
  let nsec = ns - sec * 1_000_000_000n;
  if (nsec < 0n) {
    nsec += 1_000_000_000n;
    sec -= 1n;
  }
  const lo = BigInt.asIntN(32, sec);
  let epoch = (sec - lo) >> 32n;
  if (epoch < 0n) epoch = 0n;
  if (epoch > 3n) epoch = 3n;
  return { lo: Number(BigInt.asUintN(32, lo)), extra: Number((nsec << 2n) | epoch) >>> 0 };
}

// ---- extents -------------------------------------------------------------------

export interface Extent {
  logical: number;
  physical: number;
  len: number;
}

export function writeExtentHeader(out: Buffer, at: number, entries: number, max: number, depth: number): void {
  out.writeUInt16LE(C.EXT4_EXT_MAGIC, at);
  out.writeUInt16LE(entries, at + 2);
  out.writeUInt16LE(max, at + 4);
  out.writeUInt16LE(depth, at + 6);
  out.writeUInt32LE(0, at + 8);
}

export function writeExtentLeaf(out: Buffer, at: number, e: Extent): void {
  out.writeUInt32LE(e.logical, at);
  out.writeUInt16LE(e.len, at + 4);
  out.writeUInt16LE(Math.floor(e.physical / 2 ** 32), at + 6);
  out.writeUInt32LE(e.physical >>> 0, at + 8);
}

export function writeExtentIndex(out: Buffer, at: number, logical: number, leafBlock: number): void {
  out.writeUInt32LE(logical, at);
  out.writeUInt32LE(leafBlock >>> 0, at + 4);
  out.writeUInt16LE(Math.floor(leafBlock / 2 ** 32), at + 8);
  out.writeUInt16LE(0, at + 10);
}

/** Merge physically and logically adjacent extents (up to the initialized maximum length). */
export function mergeExtents(list: Extent[]): Extent[] {
  const out: Extent[] = [];
  for (const e of list) {
    const last = out[out.length - 1];
    if (last && last.logical + last.len === e.logical && last.physical + last.len === e.physical
      && last.len + e.len <= C.EXT_MAX_INIT_LEN) {
      last.len += e.len;
    } else {
      let { logical, physical, len } = e;
      while (len > C.EXT_MAX_INIT_LEN) {
        out.push({ logical, physical, len: C.EXT_MAX_INIT_LEN });
        logical += C.EXT_MAX_INIT_LEN;
        physical += C.EXT_MAX_INIT_LEN;
        len -= C.EXT_MAX_INIT_LEN;
      }
      out.push({ logical, physical, len });
    }
  }
  return out;
}

// ---- directories -----------------------------------------------------------------

export interface DirEntry {
  ino: number;
  name: Buffer;
  type: number;
}

function recLen(nameLen: number): number {
  return (8 + nameLen + 3) & ~3;
}

/** Number of blocks the entries need (each block ends with its last entry stretched to the end). */
export function dirBlocksNeeded(entries: DirEntry[]): number {
  let blocks = 1;
  let used = 0;
  for (const e of entries) {
    const r = recLen(e.name.length);
    if (used + r > C.BLOCK_SIZE) {
      blocks++;
      used = 0;
    }
    used += r;
  }
  return blocks;
}

/** The directory's blocks (entries in order, "." and ".." first). */
export function encodeDirBlocks(entries: DirEntry[], nblocks: number): Buffer {
  const out = Buffer.alloc(nblocks * C.BLOCK_SIZE);
  let block = 0;
  let used = 0;
  let lastAt = -1;
  const stretchLast = () => {
    if (lastAt >= 0) out.writeUInt16LE(block * C.BLOCK_SIZE + C.BLOCK_SIZE - lastAt, lastAt + 4);
  };
  for (const e of entries) {
    const r = recLen(e.name.length);
    if (used + r > C.BLOCK_SIZE) {
      stretchLast();
      block++;
      used = 0;
      lastAt = -1;
    }
    const at = block * C.BLOCK_SIZE + used;
    out.writeUInt32LE(e.ino, at);
    out.writeUInt16LE(r, at + 4);
    out.writeUInt8(e.name.length, at + 6);
    out.writeUInt8(e.type, at + 7);
    e.name.copy(out, at + 8);
    lastAt = at;
    used += r;
  }
  stretchLast();
  // blocks beyond the entries: one empty entry spanning the block
  for (let b = block + 1; b < nblocks; b++) out.writeUInt16LE(C.BLOCK_SIZE, b * C.BLOCK_SIZE + 4);
  return out;
}

// ---- extended attributes ------------------------------------------------------------

export interface EncodedXattr {
  index: number;
  name: Buffer; // without the prefix
  value: Buffer;
}

const PREFIXES: [string, number][] = [
  ['user.', C.XATTR_INDEX_USER],
  ['trusted.', C.XATTR_INDEX_TRUSTED],
  ['security.', C.XATTR_INDEX_SECURITY],
];

/** Split a full xattr name into ext4's name index and suffix (ACLs converted to ext4's format). */
export function classifyXattr(fullName: string, value: Buffer): EncodedXattr | undefined {
  if (fullName === 'system.posix_acl_access') return { index: C.XATTR_INDEX_POSIX_ACL_ACCESS, name: Buffer.alloc(0), value: aclToExt4(value) };
  if (fullName === 'system.posix_acl_default') return { index: C.XATTR_INDEX_POSIX_ACL_DEFAULT, name: Buffer.alloc(0), value: aclToExt4(value) };
  for (const [p, idx] of PREFIXES) {
    if (fullName.startsWith(p)) return { index: idx, name: Buffer.from(fullName.slice(p.length), 'latin1'), value };
  }
  if (fullName.startsWith('system.')) return { index: C.XATTR_INDEX_SYSTEM, name: Buffer.from(fullName.slice(7), 'latin1'), value };
  return undefined;
}

const ACL_XATTR_VERSION = 2;
const EXT4_ACL_VERSION = 1;
const ACL_USER = 0x02;
const ACL_GROUP = 0x08;

/** POSIX ACL xattr (as getxattr returns it) to ext4's compact on-disk ACL. */
export function aclToExt4(v: Buffer): Buffer {
  if (v.length < 4 || v.readUInt32LE(0) !== ACL_XATTR_VERSION || (v.length - 4) % 8 !== 0) {
    throw new Error('malformed POSIX ACL');
  }
  const parts: Buffer[] = [Buffer.from([EXT4_ACL_VERSION, 0, 0, 0])];
  for (let o = 4; o < v.length; o += 8) {
    const tag = v.readUInt16LE(o);
    const perm = v.readUInt16LE(o + 2);
    const id = v.readUInt32LE(o + 4);
    const full = tag === ACL_USER || tag === ACL_GROUP;
    const e = Buffer.alloc(full ? 8 : 4);
    e.writeUInt16LE(tag, 0);
    e.writeUInt16LE(perm, 2);
    if (full) e.writeUInt32LE(id, 4);
    parts.push(e);
  }
  return Buffer.concat(parts);
}

const NAME_HASH_SHIFT = 5;
const VALUE_HASH_SHIFT = 16;
const BLOCK_HASH_SHIFT = 16;

export function xattrEntryHash(name: Buffer, value: Buffer): number {
  let h = 0;
  for (const c of name) h = ((h << NAME_HASH_SHIFT) ^ (h >>> (32 - NAME_HASH_SHIFT)) ^ (c > 127 ? c - 256 : c)) >>> 0;
  const padded = Buffer.alloc((value.length + 3) & ~3);
  value.copy(padded);
  for (let o = 0; o < padded.length; o += 4) {
    h = ((h << VALUE_HASH_SHIFT) ^ (h >>> (32 - VALUE_HASH_SHIFT)) ^ padded.readUInt32LE(o)) >>> 0;
  }
  return h;
}

function entrySize(x: EncodedXattr): number {
  return (16 + x.name.length + 3) & ~3;
}

function valueSize(x: EncodedXattr): number {
  return (x.value.length + 3) & ~3;
}

export function sortXattrs(xs: EncodedXattr[]): EncodedXattr[] {
  return [...xs].sort((a, b) => a.index - b.index || a.name.length - b.name.length || Buffer.compare(a.name, b.name));
}

/** Bytes the attributes need inside an inode (magic + entries + terminator + values). */
export function inInodeXattrSize(xs: EncodedXattr[]): number {
  return 4 + xs.reduce((s, x) => s + entrySize(x) + valueSize(x), 0) + 4;
}

/**
 * Write entries at `entriesAt` and values from `valuesEnd` downward; value
 * offsets are relative to `offsBase`. Returns nothing; the caller checked the fit.
 */
function writeXattrEntries(out: Buffer, entriesAt: number, valuesEnd: number, offsBase: number, xs: EncodedXattr[]): number[] {
  const hashes: number[] = [];
  let e = entriesAt;
  let v = valuesEnd;
  for (const x of xs) {
    v -= valueSize(x);
    x.value.copy(out, v);
    const h = xattrEntryHash(x.name, x.value);
    out.writeUInt8(x.name.length, e);
    out.writeUInt8(x.index, e + 1);
    out.writeUInt16LE(x.value.length ? v - offsBase : 0, e + 2);
    out.writeUInt32LE(0, e + 4); // e_value_inum
    out.writeUInt32LE(x.value.length, e + 8);
    out.writeUInt32LE(h, e + 12);
    x.name.copy(out, e + 16);
    hashes.push(h);
    e += entrySize(x);
  }
  out.writeUInt32LE(0, e); // end of entries
  return hashes;
}

/** In-inode attributes: the inode's bytes from 128 + extra_isize to its end. */
export function writeInInodeXattrs(inode: Buffer, xs: EncodedXattr[]): void {
  const start = 128 + C.EXTRA_ISIZE;
  inode.writeUInt32LE(C.XATTR_MAGIC, start);
  writeXattrEntries(inode, start + 4, C.INODE_SIZE, start + 4, sortXattrs(xs));
}

export function xattrBlockFits(xs: EncodedXattr[]): boolean {
  return 32 + xs.reduce((s, x) => s + entrySize(x) + valueSize(x), 0) + 4 <= C.BLOCK_SIZE;
}

/** An external attribute block (refcount 1). */
export function encodeXattrBlock(xs: EncodedXattr[]): Buffer {
  const b = Buffer.alloc(C.BLOCK_SIZE);
  const hashes = writeXattrEntries(b, 32, C.BLOCK_SIZE, 0, sortXattrs(xs));
  let h = 0;
  for (const eh of hashes) {
    if (eh === 0) {
      h = 0;
      break;
    }
    h = ((h << BLOCK_HASH_SHIFT) ^ (h >>> (32 - BLOCK_HASH_SHIFT)) ^ eh) >>> 0;
  }
  b.writeUInt32LE(C.XATTR_MAGIC, 0);
  b.writeUInt32LE(1, 4); // h_refcount
  b.writeUInt32LE(1, 8); // h_blocks
  b.writeUInt32LE(h, 12);
  return b;
}

// ---- jbd2 -----------------------------------------------------------------------------

export function encodeJournalSuperblock(blocks: number, uuid: Buffer): Buffer {
  const b = Buffer.alloc(C.BLOCK_SIZE);
  b.writeUInt32BE(C.JBD2_MAGIC, 0x00);
  b.writeUInt32BE(C.JBD2_SUPERBLOCK_V2, 0x04);
  b.writeUInt32BE(0, 0x08); // h_sequence
  b.writeUInt32BE(C.BLOCK_SIZE, 0x0c);
  b.writeUInt32BE(blocks, 0x10); // s_maxlen
  b.writeUInt32BE(1, 0x14); // s_first
  b.writeUInt32BE(1, 0x18); // s_sequence
  b.writeUInt32BE(0, 0x1c); // s_start: clean
  uuid.copy(b, 0x30, 0, 16);
  b.writeUInt32BE(1, 0x40); // s_nr_users
  return b;
}
