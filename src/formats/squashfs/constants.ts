// squashfs 4.0 on-disk constants and the superblock (little-endian
// throughout), shared by the reader (src/ingest/squashfs.ts) and the writer
// (writer.ts). Names follow squashfs-tools' squashfs_fs.h where it has them.

export const SQUASHFS_MAGIC = 0x73717368; // "hsqs"
export const SUPERBLOCK_SIZE = 96;
/** Uncompressed bytes of one metadata block (every block of a table but its last is full). */
export const METADATA_SIZE = 8192;
/** Metadata block header: bit 15 set = stored uncompressed; bits 0-14 = bytes on disk. */
export const META_UNCOMPRESSED = 0x8000;
/** Data block size word: bit 24 set = stored uncompressed; bits 0-23 = bytes on disk; 0 = sparse block. */
export const DATA_UNCOMPRESSED = 1 << 24;
export const NO_FRAGMENT = 0xffffffff;
export const NO_XATTR = 0xffffffff;
/** A table that is absent (xattr id table, export table). */
export const NO_TABLE = 0xffffffffffffffffn;
/** The image's size is padded to a multiple of this (as mksquashfs does, for block devices). */
export const DEVICE_PAD = 4096;

/** superblock.compression */
export const COMPRESSION_GZIP = 1;

/** superblock.flags (informational, except FLAG_COMPRESSOR_OPTIONS) */
export const FLAG_NO_FRAGMENTS = 0x10;
export const FLAG_DUPLICATES = 0x40;
export const FLAG_EXPORTABLE = 0x80;
export const FLAG_NO_XATTRS = 0x200;
export const FLAG_COMPRESSOR_OPTIONS = 0x400;

/** inode types: basic 1-7, extended 8-14 (directory entries always name the basic type) */
export const T_DIR = 1, T_REG = 2, T_SYMLINK = 3, T_BLKDEV = 4, T_CHRDEV = 5, T_FIFO = 6, T_SOCKET = 7;
export const T_LDIR = 8, T_LREG = 9, T_LSYMLINK = 10, T_LBLKDEV = 11, T_LCHRDEV = 12, T_LFIFO = 13, T_LSOCKET = 14;
/** extended type = basic type + this */
export const T_EXTENDED = 7;

/** Longest name in a directory entry (bytes). */
export const NAME_MAX = 256;
/** Most entries after one directory header. */
export const DIR_ENTRIES_MAX = 256;
/** A directory entry holds its inode number as a signed 16-bit delta from the header's. */
export const DIR_DELTA_MIN = -32768;
export const DIR_DELTA_MAX = 32767;

/** xattr key types (the name is stored without its prefix); values stored out of line add 0x100 */
export const XATTR_PREFIXES = ['user.', 'trusted.', 'security.'];
export const XATTR_VALUE_OOL = 0x100;

/** Sizes of the fixed parts of the inodes the writer emits. */
export const INODE_HEADER_SIZE = 16;

export interface SquashfsSuperblock {
  s_magic: number;
  inodes: number;
  mkfs_time: number;
  block_size: number;
  fragments: number;
  compression: number;
  block_log: number;
  flags: number;
  no_ids: number;
  s_major: number;
  s_minor: number;
  root_inode: bigint;
  bytes_used: bigint;
  id_table_start: bigint;
  xattr_id_table_start: bigint;
  inode_table_start: bigint;
  directory_table_start: bigint;
  fragment_table_start: bigint;
  lookup_table_start: bigint;
}

export function parseSuperblock(b: Buffer): SquashfsSuperblock {
  return {
    s_magic: b.readUInt32LE(0), inodes: b.readUInt32LE(4), mkfs_time: b.readUInt32LE(8),
    block_size: b.readUInt32LE(12), fragments: b.readUInt32LE(16), compression: b.readUInt16LE(20),
    block_log: b.readUInt16LE(22), flags: b.readUInt16LE(24), no_ids: b.readUInt16LE(26),
    s_major: b.readUInt16LE(28), s_minor: b.readUInt16LE(30), root_inode: b.readBigUInt64LE(32),
    bytes_used: b.readBigUInt64LE(40), id_table_start: b.readBigUInt64LE(48),
    xattr_id_table_start: b.readBigUInt64LE(56), inode_table_start: b.readBigUInt64LE(64),
    directory_table_start: b.readBigUInt64LE(72), fragment_table_start: b.readBigUInt64LE(80),
    lookup_table_start: b.readBigUInt64LE(88),
  };
}

export function encodeSuperblock(s: SquashfsSuperblock): Buffer {
  const b = Buffer.alloc(SUPERBLOCK_SIZE);
  b.writeUInt32LE(s.s_magic, 0); b.writeUInt32LE(s.inodes, 4); b.writeUInt32LE(s.mkfs_time, 8);
  b.writeUInt32LE(s.block_size, 12); b.writeUInt32LE(s.fragments, 16); b.writeUInt16LE(s.compression, 20);
  b.writeUInt16LE(s.block_log, 22); b.writeUInt16LE(s.flags, 24); b.writeUInt16LE(s.no_ids, 26);
  b.writeUInt16LE(s.s_major, 28); b.writeUInt16LE(s.s_minor, 30); b.writeBigUInt64LE(s.root_inode, 32);
  b.writeBigUInt64LE(s.bytes_used, 40); b.writeBigUInt64LE(s.id_table_start, 48);
  b.writeBigUInt64LE(s.xattr_id_table_start, 56); b.writeBigUInt64LE(s.inode_table_start, 64);
  b.writeBigUInt64LE(s.directory_table_start, 72); b.writeBigUInt64LE(s.fragment_table_start, 80);
  b.writeBigUInt64LE(s.lookup_table_start, 88);
  return b;
}

/** rdev as squashfs stores it: (minor & 0xff) | major << 8 | (minor & ~0xff) << 12 (major <= 0xfff, minor <= 0xfffff). */
export function encodeRdev(major: number, minor: number): number {
  return ((minor & 0xff) | (major << 8) | ((minor & ~0xff) << 12)) >>> 0;
}

export function decodeRdev(rdev: number): { major: number; minor: number } {
  return { major: (rdev >>> 8) & 0xfff, minor: (rdev & 0xff) | ((rdev >>> 12) & 0xfff00) };
}
