// vdi/<name>.vdi: VirtualBox's own disk format, a dynamic (normal) VDI 1.1
// image as VirtualBox itself creates one: pre-header and VDIHEADER1PLUS,
// the blocks array at 1 MiB, the data area at the next MiB boundary after
// it, then only the 1 MiB blocks that hold data (the raw disk's bytes) in
// disk order; blocks without data are left free (they read as zeros).
// Field names and values follow VirtualBox's VDICore.h / VDI.cpp; QEMU's
// block/vdi.c reads the same header (it needs a null linkage UUID).

import * as crypto from 'node:crypto';
import { Format } from './context';
import { familyDisk } from './disk/disk';
import { GRAIN } from './disk/diskimage';
import { RecipeBuilder } from '../recipe/recipe';

// ---- VDI structures (little-endian) -------------------------------------------------
const VDI_IMAGE_FILE_INFO = '<<< Oracle VM VirtualBox Disk Image >>>\n'; // szFileInfo: for eyes only
const VDI_IMAGE_SIGNATURE = 0xbeda107f;
const VDI_IMAGE_VERSION = 0x00010001; // 1.1
const VDIPREHEADER_SIZE = 64 + 4 + 4; // szFileInfo, u32Signature, u32Version
const VDIHEADER1PLUS_SIZE = 400; // cbHeader: VDI 1.1 header with the LCHS geometry
const VDI_IMAGE_TYPE_NORMAL = 1; // dynamically growing base image
const VDI_IMAGE_COMMENT_SIZE = 256;
const VDI_GEOMETRY_SECTOR_SIZE = 512;
const VDI_DATA_ALIGN = 1 << 20; // VirtualBox aligns the blocks array and the data area to 1 MiB
const VDI_IMAGE_BLOCK_SIZE = 1 << 20; // cbBlock: VirtualBox's default (and the only one QEMU reads)
const VDI_IMAGE_BLOCK_FREE = 0xffffffff; // not allocated: a base image reads zeros there
const BLOCK_POINTER_SIZE = 4;

// field offsets in the file (pre-header, then VDIHEADER1PLUS)
const OFF = {
  szFileInfo: 0,
  u32Signature: 64,
  u32Version: 68,
  cbHeader: 72,
  u32Type: 76,
  fFlags: 80,
  szComment: 84,
  offBlocks: 84 + VDI_IMAGE_COMMENT_SIZE, // 340
  offData: 344,
  LegacyGeometry: 348, // VDIDISKGEOMETRY: cCylinders, cHeads, cSectors, cbSector
  u32Dummy: 364,
  cbDisk: 368,
  cbBlock: 376,
  cbBlockExtra: 380,
  cBlocks: 384,
  cBlocksAllocated: 388,
  uuidCreate: 392,
  uuidModify: 408,
  uuidLinkage: 424,
  uuidParentModify: 440,
  LCHSGeometry: 456,
};

function alignUp(n: number, a: number): number {
  return Math.ceil(n / a) * a;
}

/** A content-derived UUID (RFC 4122 layout), as RTUUID stores it: the first three fields little-endian. */
function rtUuid(seed: Buffer, label: string): Buffer {
  const u = Buffer.from(crypto.createHash('sha256').update(label).update(seed).digest().subarray(0, 16));
  u[6] = (u[6] & 0x0f) | 0x40; // version 4 layout, content-derived
  u[8] = (u[8] & 0x3f) | 0x80;
  u.subarray(0, 4).reverse();
  u.subarray(4, 6).reverse();
  u.subarray(6, 8).reverse();
  return u;
}

/**
 * Geometry VirtualBox marks "not calculated" (0/0/0, 512-byte sectors): it
 * writes this in new images for the legacy geometry (unused since 1.1) and,
 * unless told otherwise, for the LCHS geometry, which the VM's BIOS then
 * works out from the disk at first boot.
 */
function writeGeometryNotSet(h: Buffer, at: number): void {
  h.writeUInt32LE(0, at); // cCylinders
  h.writeUInt32LE(0, at + 4); // cHeads
  h.writeUInt32LE(0, at + 8); // cSectors
  h.writeUInt32LE(VDI_GEOMETRY_SECTOR_SIZE, at + 12); // cbSector
}

interface HeaderFields {
  offBlocks: number;
  offData: number;
  cbDisk: number;
  cBlocks: number;
  cBlocksAllocated: number;
  uuidCreate: Buffer;
  uuidModify: Buffer;
}

/** VDIPREHEADER followed by VDIHEADER1PLUS. */
function header(f: HeaderFields): Buffer {
  const h = Buffer.alloc(VDIPREHEADER_SIZE + VDIHEADER1PLUS_SIZE);
  h.write(VDI_IMAGE_FILE_INFO, OFF.szFileInfo, 'latin1');
  h.writeUInt32LE(VDI_IMAGE_SIGNATURE, OFF.u32Signature);
  h.writeUInt32LE(VDI_IMAGE_VERSION, OFF.u32Version);
  h.writeUInt32LE(VDIHEADER1PLUS_SIZE, OFF.cbHeader);
  h.writeUInt32LE(VDI_IMAGE_TYPE_NORMAL, OFF.u32Type);
  h.writeUInt32LE(0, OFF.fFlags);
  // szComment: empty
  h.writeUInt32LE(f.offBlocks, OFF.offBlocks);
  h.writeUInt32LE(f.offData, OFF.offData);
  writeGeometryNotSet(h, OFF.LegacyGeometry);
  h.writeUInt32LE(0, OFF.u32Dummy);
  h.writeBigUInt64LE(BigInt(f.cbDisk), OFF.cbDisk);
  h.writeUInt32LE(VDI_IMAGE_BLOCK_SIZE, OFF.cbBlock);
  h.writeUInt32LE(0, OFF.cbBlockExtra);
  h.writeUInt32LE(f.cBlocks, OFF.cBlocks);
  h.writeUInt32LE(f.cBlocksAllocated, OFF.cBlocksAllocated);
  f.uuidCreate.copy(h, OFF.uuidCreate);
  f.uuidModify.copy(h, OFF.uuidModify); // VirtualBox refuses a null one
  // uuidLinkage, uuidParentModify: null (a base image; QEMU refuses a linked one)
  writeGeometryNotSet(h, OFF.LCHSGeometry);
  return h;
}

export const vdi: Format = {
  name: 'vdi',
  family: 'vm',
  async build(ctx) {
    const d = familyDisk(ctx, 'vm');
    const cBlocks = Math.ceil(d.size / VDI_IMAGE_BLOCK_SIZE);
    // blocks with data: those holding a non-zero 64 KiB grain
    const used: number[] = [];
    for (const g of d.image.grains()) {
      const b = Math.floor((g.index * GRAIN) / VDI_IMAGE_BLOCK_SIZE);
      if (used[used.length - 1] !== b) used.push(b);
    }
    const blocks = Buffer.alloc(cBlocks * BLOCK_POINTER_SIZE);
    for (let b = 0; b < cBlocks; b++) blocks.writeUInt32LE(VDI_IMAGE_BLOCK_FREE, b * BLOCK_POINTER_SIZE); // every block free ...
    used.forEach((b, i) => blocks.writeUInt32LE(i, b * BLOCK_POINTER_SIZE)); // ... but those stored, in disk order
    const offBlocks = alignUp(VDIPREHEADER_SIZE + VDIHEADER1PLUS_SIZE, VDI_DATA_ALIGN);
    const offData = alignUp(offBlocks + blocks.length, VDI_DATA_ALIGN);
    const hdr = header({
      offBlocks, offData, cbDisk: d.size, cBlocks, cBlocksAllocated: used.length,
      uuidCreate: rtUuid(d.prep.uuid, 'vdi-create'), uuidModify: rtUuid(d.prep.uuid, 'vdi-modify'),
    });
    const rb = new RecipeBuilder();
    rb.literal(hdr);
    rb.zero(offBlocks - hdr.length);
    rb.literal(blocks);
    rb.zero(offData - offBlocks - blocks.length);
    for (const b of used) {
      const from = b * VDI_IMAGE_BLOCK_SIZE;
      const to = Math.min(d.size, from + VDI_IMAGE_BLOCK_SIZE);
      rb.include(d.raw, from, to);
      if (to - from < VDI_IMAGE_BLOCK_SIZE) rb.zero(VDI_IMAGE_BLOCK_SIZE - (to - from)); // a whole last block
    }
    return [{ path: `vdi/${ctx.names.name}.vdi`, recipe: rb.build(), format: 'vdi', description: 'dynamic VDI (VirtualBox)' }];
  },
};
