// Dynamic VHD (Xen/XenServer, Hyper-V, Azure tools, VirtualBox): footer copy,
// dynamic header, block allocation table, then only the 2 MiB blocks that
// hold data (each a sector bitmap, all ones, and the raw disk bytes), then
// the footer. The CHS geometry multiplies out to exactly the disk size, so
// readers that size the disk by CHS and by "current size" agree. Owns the
// hard disk footer that the fixed VHD for Azure (azure.ts) reuses.

import * as crypto from 'node:crypto';
import { Format, FormatContext } from './context';
import { familyDisk } from './disk/disk';
import { SECTOR } from './disk/diskimage';
import { RecipeBuilder } from '../recipe/recipe';

// ---- VHD structures (big-endian) -------------------------------------------------
const FOOTER_COOKIE = 'conectix';
const DYN_COOKIE = 'cxsparse';
const FEATURES_RESERVED = 0x00000002;
const FORMAT_VERSION = 0x00010000;
const HEADER_VERSION = 0x00010000;
export const DISK_TYPE_FIXED = 2;
export const DISK_TYPE_DYNAMIC = 3;
/** Data offset of a fixed disk's footer: no further structure. */
export const NO_DATA_OFFSET = 0xffffffffffffffffn;
const CREATOR_APP = 'unis';
const CREATOR_VERSION = 0x00010000;
const CREATOR_HOST_OS = 0x5769326b; // "Wi2k"
export const VHD_EPOCH = 946684800; // 2000-01-01T00:00:00Z
const BLOCK_BYTES = 2 << 20;
const BITMAP_BYTES = SECTOR; // ceil(2 MiB / 512 / 8) rounded to a sector

/** One's complement of the byte sum, the 4 checksum bytes at `skipAt` left out. */
export function checksum(b: Buffer, skipAt: number): number {
  let sum = 0;
  for (let i = 0; i < b.length; i++) if (i < skipAt || i >= skipAt + 4) sum += b[i];
  return ~sum >>> 0;
}

/** Cylinders, heads, sectors/track whose product is exactly the sector count (when one exists). */
export function exactChs(totalSectors: number): [number, number, number] {
  for (const spt of [128, 255, 252, 240, 224, 192, 160, 63, 64, 32, 17]) {
    for (let heads = 16; heads >= 1; heads--) {
      const c = totalSectors / (spt * heads);
      if (Number.isInteger(c) && c <= 65535) return [c, heads, spt];
    }
  }
  return [65535, 16, 255]; // larger than CHS can say: readers use the current size
}

export interface FooterFields {
  size: number; // original and current size (bytes, a whole number of sectors)
  diskType: number; // DISK_TYPE_FIXED or DISK_TYPE_DYNAMIC
  dataOffset: bigint; // the dynamic header's offset, or NO_DATA_OFFSET
  timestamp: number; // seconds since VHD_EPOCH
  uid: Buffer; // unique id (16 bytes, derived from content)
}

/**
 * The 512-byte hard disk footer. Creator application "unis" is unknown to
 * QEMU, which then sizes the disk by CHS (block/vpc.c): exactChs makes the
 * geometry multiply out to the size where it can (this follows QEMU, not the
 * spec's CHS algorithm, which would round the disk down); for disks too
 * large for CHS it is the maximum geometry, and QEMU uses the current size.
 */
export function footer({ size, diskType, dataOffset, timestamp, uid }: FooterFields): Buffer {
  const f = Buffer.alloc(SECTOR);
  f.write(FOOTER_COOKIE, 0, 'latin1');
  f.writeUInt32BE(FEATURES_RESERVED, 8);
  f.writeUInt32BE(FORMAT_VERSION, 12);
  f.writeBigUInt64BE(dataOffset, 16);
  f.writeUInt32BE(timestamp >>> 0, 24);
  f.write(CREATOR_APP, 28, 'latin1');
  f.writeUInt32BE(CREATOR_VERSION, 32);
  f.writeUInt32BE(CREATOR_HOST_OS, 36);
  f.writeBigUInt64BE(BigInt(size), 40); // original size
  f.writeBigUInt64BE(BigInt(size), 48); // current size
  const [c, h, s] = exactChs(size / SECTOR);
  f.writeUInt16BE(c, 56);
  f[58] = h;
  f[59] = s;
  f.writeUInt32BE(diskType, 60);
  uid.copy(f, 68, 0, 16);
  f.writeUInt32BE(checksum(f, 64), 64);
  return f;
}

/** The footer's timestamp for a build: the tree's newest mtime, in seconds since 2000 (never before). */
export function vhdTimestamp(mtimeSec: bigint): number {
  return Math.max(0, Number(mtimeSec) - VHD_EPOCH);
}

function dynamicHeader(batOffset: number, entries: number): Buffer {
  const d = Buffer.alloc(1024);
  d.write(DYN_COOKIE, 0, 'latin1');
  d.writeBigUInt64BE(0xffffffffffffffffn, 8);
  d.writeBigUInt64BE(BigInt(batOffset), 16);
  d.writeUInt32BE(HEADER_VERSION, 24);
  d.writeUInt32BE(entries, 28);
  d.writeUInt32BE(BLOCK_BYTES, 32);
  d.writeUInt32BE(checksum(d, 36), 36);
  return d;
}

export function vhdRecipe(ctx: FormatContext) {
  const d = familyDisk(ctx, 'vm');
  const entries = Math.ceil(d.size / BLOCK_BYTES);
  const used = new Set<number>();
  for (const p of d.image.pieces) {
    const len = p.kind === 'lit' ? p.data.length : p.len;
    for (let b = Math.floor(p.offset / BLOCK_BYTES); b <= Math.floor((p.offset + len - 1) / BLOCK_BYTES); b++) used.add(b);
  }
  const batOffset = 3 * SECTOR;
  const batBytes = Math.ceil((entries * 4) / SECTOR) * SECTOR;
  const bat = Buffer.alloc(batBytes, 0xff); // every entry 0xFFFFFFFF (unused) until its block is placed
  let sector = (batOffset + batBytes) / SECTOR;
  const order = [...used].sort((a, b) => a - b);
  for (const b of order) {
    bat.writeUInt32BE(sector, b * 4);
    sector += (BITMAP_BYTES + BLOCK_BYTES) / SECTOR;
  }
  const uid = crypto.createHash('sha256').update('vhd-uid').update(d.prep.uuid).digest().subarray(0, 16);
  const ts = vhdTimestamp(ctx.mtimeSec);
  const foot = footer({ size: d.size, diskType: DISK_TYPE_DYNAMIC, dataOffset: BigInt(SECTOR), timestamp: ts, uid }); // data offset: the dynamic header
  const rb = new RecipeBuilder();
  rb.literal(foot);
  rb.literal(dynamicHeader(batOffset, entries));
  rb.literal(bat);
  const bitmap = Buffer.alloc(BITMAP_BYTES, 0xff);
  for (const b of order) {
    rb.literal(bitmap);
    rb.include(d.raw, b * BLOCK_BYTES, Math.min(d.size, (b + 1) * BLOCK_BYTES));
    if ((b + 1) * BLOCK_BYTES > d.size) rb.zero((b + 1) * BLOCK_BYTES - d.size);
  }
  rb.literal(foot);
  return rb.build();
}

export const vhd: Format = {
  name: 'vhd',
  family: 'vm',
  async build(ctx) {
    return [{ path: `vhd/${ctx.names.name}.vhd`, recipe: vhdRecipe(ctx), format: 'vhd', description: 'dynamic VHD (XenServer, Hyper-V, Azure tools)' }];
  },
};
