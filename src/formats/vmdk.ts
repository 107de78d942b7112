// VMDK: the monolithicFlat pair (a text descriptor + the raw disk as the
// flat extent) and the streamOptimized sparse file used inside OVAs, whose
// grains are spliced from pool blocks (markers, grain tables, grain
// directory, footer and end-of-stream marker in the "true stream" layout).

import * as crypto from 'node:crypto';
import { Format, FormatContext } from './context';
import { familyDisk, FamilyDisk } from './disk/disk';
import { compressedGrains, ZLIB_HEADER } from './disk/grainstream';
import { ZLIB_TRAILER_LEN, zlibTrailer } from '../pool/format';
import { GRAIN, SECTOR } from './disk/diskimage';
import { Recipe, RecipeBuilder } from '../recipe/recipe';

// ---- SparseExtentHeader ----------------------------------------------------------
const VMDK_MAGIC = 0x564d444b; // "KDMV"
const VMDK_VERSION_STREAM = 3;
const FLAG_NL_TEST = 1 << 0;
const FLAG_COMPRESSED = 1 << 16;
const FLAG_MARKERS = 1 << 17;
const GRAIN_SECTORS = GRAIN / SECTOR; // 128
const GTES_PER_GT = 512;
const GT_SECTORS = (GTES_PER_GT * 4) / SECTOR; // 4
const DESCRIPTOR_SECTORS = 20;
const OVERHEAD_SECTORS = 128; // grains start at 64 KiB
const GD_AT_END = 0xffffffffffffffffn;
const COMPRESSION_DEFLATE = 1;
const MARKER_EOS = 0;
const MARKER_GT = 1;
const MARKER_GD = 2;
const MARKER_FOOTER = 3;

export const VMDK_ADAPTER = 'lsilogic';

function geometry(sectors: number): { cylinders: number; heads: number; sectors: number } {
  const heads = 255;
  const spt = 63;
  return { cylinders: Math.min(65535, Math.ceil(sectors / (heads * spt))), heads, sectors: spt };
}

/** Content-derived CID (8 hex digits, never ffffffff/fffffffe) and long content id. */
function contentIds(seed: Buffer): { cid: string; longId: string } {
  const h = crypto.createHash('sha256').update('vmdk-cid').update(seed).digest();
  let cid = h.readUInt32BE(0);
  if (cid >= 0xfffffffe) cid = 0x12345678;
  return { cid: cid.toString(16).padStart(8, '0'), longId: h.toString('hex', 4, 20) };
}

export function descriptor(createType: string, extentLine: string, sectors: number, seed: Buffer): string {
  const g = geometry(sectors);
  const { cid, longId } = contentIds(seed);
  return [
    '# Disk DescriptorFile',
    'version=1',
    'encoding="UTF-8"',
    `CID=${cid}`,
    'parentCID=ffffffff',
    `createType="${createType}"`,
    '',
    '# Extent description',
    extentLine,
    '',
    '# The Disk Data Base',
    '#DDB',
    '',
    `ddb.adapterType = "${VMDK_ADAPTER}"`,
    `ddb.geometry.cylinders = "${g.cylinders}"`,
    `ddb.geometry.heads = "${g.heads}"`,
    `ddb.geometry.sectors = "${g.sectors}"`,
    `ddb.longContentID = "${longId}"`,
    'ddb.toolsInstallType = "4"',
    'ddb.toolsVersion = "2147483647"',
    'ddb.virtualHWVersion = "4"',
    '',
  ].join('\n');
}

function sparseHeader(capacity: number, gdOffset: bigint): Buffer {
  const h = Buffer.alloc(SECTOR);
  h.writeUInt32LE(VMDK_MAGIC, 0x00);
  h.writeUInt32LE(VMDK_VERSION_STREAM, 0x04);
  h.writeUInt32LE(FLAG_NL_TEST | FLAG_COMPRESSED | FLAG_MARKERS, 0x08);
  h.writeBigUInt64LE(BigInt(capacity), 0x0c);
  h.writeBigUInt64LE(BigInt(GRAIN_SECTORS), 0x14);
  h.writeBigUInt64LE(1n, 0x1c); // descriptorOffset
  h.writeBigUInt64LE(BigInt(DESCRIPTOR_SECTORS), 0x24);
  h.writeUInt32LE(GTES_PER_GT, 0x2c);
  h.writeBigUInt64LE(0n, 0x30); // rgdOffset
  h.writeBigUInt64LE(gdOffset, 0x38);
  h.writeBigUInt64LE(BigInt(OVERHEAD_SECTORS), 0x40);
  h[0x48] = 0; // uncleanShutdown
  Buffer.from([0x0a, 0x20, 0x0d, 0x0a]).copy(h, 0x49);
  h.writeUInt16LE(COMPRESSION_DEFLATE, 0x4d);
  return h;
}

function metadataMarker(numSectors: number, type: number): Buffer {
  const m = Buffer.alloc(SECTOR);
  m.writeBigUInt64LE(BigInt(numSectors), 0);
  m.writeUInt32LE(0, 8);
  m.writeUInt32LE(type, 12);
  return m;
}

/** Where each grain's deflate body lies in a streamOptimized VMDK recipe: grain index -> [offset, length]. */
const grainBodies = new WeakMap<Recipe, Map<number, [number, number]>>();

export function grainBodiesIn(stream: Recipe): Map<number, [number, number]> {
  const m = grainBodies.get(stream);
  if (!m) throw new Error('not a streamOptimized VMDK recipe');
  return m;
}

/** The file name of a disk in the OVF bundle (and in its streamOptimized VMDK's descriptor). */
export function ovfDiskFile(name: string): string {
  return `${name}-disk1.vmdk`;
}

/** The streamOptimized VMDK of a disk (grains in ascending order, then GTs, GD, footer, EOS). */
export function streamOptimized(ctx: FormatContext, d: FamilyDisk, fileName: string): Recipe {
  return ctx.memo(`vmdk-stream:${d.key}:${fileName}`, () => {
    const bodies = new Map<number, [number, number]>();
    const capacity = d.size / SECTOR;
    const rb = new RecipeBuilder();
    const head = Buffer.alloc(OVERHEAD_SECTORS * SECTOR);
    sparseHeader(capacity, GD_AT_END).copy(head, 0);
    Buffer.from(descriptor('streamOptimized', `RW ${capacity} SPARSE "${fileName}"`, capacity, d.prep.uuid), 'utf8').copy(head, SECTOR);
    rb.literal(head);
    const nGrains = d.size / GRAIN;
    const nGT = Math.ceil(nGrains / GTES_PER_GT);
    const gd = new Uint32Array(nGT);
    let gt: Buffer | undefined;
    let gtIndex = -1;
    const flushGT = () => {
      if (!gt) return;
      rb.literal(metadataMarker(GT_SECTORS, MARKER_GT));
      gd[gtIndex] = rb.size / SECTOR;
      rb.literal(gt);
      gt = undefined;
    };
    for (const { index, body, adler, length } of compressedGrains(d.image, ctx.blocks)) {
      const t = Math.floor(index / GTES_PER_GT);
      if (t !== gtIndex) {
        flushGT();
        gtIndex = t;
        gt = Buffer.alloc(GT_SECTORS * SECTOR);
      }
      const markerAt = rb.size;
      // grain marker: LBA (sectors) and compressed size; data follows
      const marker = Buffer.alloc(12);
      marker.writeBigUInt64LE(BigInt(index * GRAIN_SECTORS), 0);
      marker.writeUInt32LE(ZLIB_HEADER.length + length + ZLIB_TRAILER_LEN, 8);
      rb.literal(Buffer.concat([marker, ZLIB_HEADER]));
      bodies.set(index, [rb.size, length]);
      rb.append(body);
      rb.literal(zlibTrailer(adler));
      const used = rb.size - markerAt;
      rb.zero((SECTOR - (used % SECTOR)) % SECTOR);
      gt!.writeUInt32LE(markerAt / SECTOR, (index % GTES_PER_GT) * 4);
    }
    flushGT();
    const gdSectors = Math.ceil((nGT * 4) / SECTOR);
    rb.literal(metadataMarker(gdSectors, MARKER_GD));
    const gdAt = rb.size / SECTOR;
    const gdBuf = Buffer.alloc(gdSectors * SECTOR);
    gd.forEach((v, i) => gdBuf.writeUInt32LE(v, i * 4));
    rb.literal(gdBuf);
    rb.literal(metadataMarker(1, MARKER_FOOTER));
    rb.literal(sparseHeader(capacity, BigInt(gdAt)));
    rb.literal(metadataMarker(0, MARKER_EOS));
    const stream = rb.build();
    grainBodies.set(stream, bodies);
    return stream;
  });
}

export const vmdk: Format = {
  name: 'vmdk',
  family: 'vm',
  async build(ctx) {
    const d = familyDisk(ctx, 'vm');
    const n = ctx.names.name;
    const sectors = d.size / SECTOR;
    const desc = Buffer.from(descriptor('monolithicFlat', `RW ${sectors} FLAT "${n}-flat.vmdk" 0`, sectors, d.prep.uuid), 'utf8');
    const rb = new RecipeBuilder();
    rb.literal(desc);
    return [
      { path: `vmdk/${n}.vmdk`, recipe: rb.build(), format: 'vmdk', description: 'VMDK descriptor (monolithicFlat; keep beside the -flat.vmdk)' },
      { path: `vmdk/${n}-flat.vmdk`, recipe: d.raw, format: 'vmdk', description: 'VMDK flat extent (the raw disk)' },
    ];
  },
};
