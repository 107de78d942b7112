// qcow2 (version 3): the header, refcount table and blocks, L1 and L2 tables
// for a disk whose data clusters are stored back to back after them, and two
// images built on it. The OpenStack view (openstack/NAME-openstack.qcow2):
// 64 KiB clusters, only the clusters that hold data, each a compressed
// cluster spliced from pool blocks (no compression at read time); a
// compressed cluster is the deflate body of the same grain in the disk's
// streamOptimized VMDK, which the qcow2 recipe includes by reference (the
// catalog keeps the bodies' literals once). And uncompressedQcow2(): the same
// disk with plain clusters (the raw grains: pool blocks as they are), for
// containers that are compressed as a whole (the vagrant-libvirt box).

import { Format } from './context';
import { familyDisk, FamilyDisk } from './disk/disk';
import { compressedGrains } from './disk/grainstream';
import { DEFLATE_FINAL } from '../pool/format';
import { grainBodiesIn, ovfDiskFile, streamOptimized } from './vmdk';
import { GRAIN, SECTOR } from './disk/diskimage';
import { RecipeBuilder } from '../recipe/recipe';
import { PieceList } from './pieces';

// ---- qcow2 header (big-endian) -----------------------------------------------------
const QCOW_MAGIC = 0x514649fb;
const QCOW_VERSION = 3;
const CLUSTER_BITS = 16;
const CLUSTER = 1 << CLUSTER_BITS;
const REFCOUNT_ORDER = 4; // 16-bit refcounts
const HEADER_LENGTH = 112;
const L2_ENTRIES = CLUSTER / 8;
const REFS_PER_BLOCK = CLUSTER / 2;
const OFLAG_COPIED = 1n << 63n;
const OFLAG_COMPRESSED = 1n << 62n;
const CSIZE_SHIFT = 62n - BigInt(CLUSTER_BITS - 8); // 54

function header(size: number, l1Entries: number, l1Offset: number, rtOffset: number, rtClusters: number): Buffer {
  const h = Buffer.alloc(CLUSTER);
  h.writeUInt32BE(QCOW_MAGIC, 0);
  h.writeUInt32BE(QCOW_VERSION, 4);
  h.writeUInt32BE(CLUSTER_BITS, 20);
  h.writeBigUInt64BE(BigInt(size), 24);
  h.writeUInt32BE(0, 32); // crypt_method
  h.writeUInt32BE(l1Entries, 36);
  h.writeBigUInt64BE(BigInt(l1Offset), 40);
  h.writeBigUInt64BE(BigInt(rtOffset), 48);
  h.writeUInt32BE(rtClusters, 56);
  h.writeUInt32BE(0, 60); // nb_snapshots
  h.writeBigUInt64BE(0n, 64);
  h.writeBigUInt64BE(0n, 72); // incompatible features
  h.writeBigUInt64BE(0n, 80); // compatible features
  h.writeBigUInt64BE(0n, 88); // autoclear features
  h.writeUInt32BE(REFCOUNT_ORDER, 96);
  h.writeUInt32BE(HEADER_LENGTH, 100);
  h[104] = 0; // compression type: zlib
  return h; // header extensions: none (the area after the header is zero)
}

/** A data cluster to store: its guest cluster index and its length in the file. */
interface DataCluster {
  index: number;
  len: number;
}

/** Where everything goes: the metadata clusters (in file order), each data cluster's offset, the file's end. */
interface Layout {
  metadata: Buffer[];
  dataAt: number[];
  dataEnd: number;
  fileEnd: number;
}

/**
 * Lay out a qcow2 file: header | refcount table | refcount blocks | L1 | L2
 * tables | data clusters in the given (ascending) order. Compressed clusters
 * are packed back to back (an L2 entry names the 512-byte sectors they span;
 * every host cluster they touch counts one reference); plain clusters fill
 * one host cluster each (refcount 1, so their L2 entries carry OFLAG_COPIED).
 */
function layout(size: number, clusters: DataCluster[], compressed: boolean): Layout {
  const nClusters = size / CLUSTER;
  const l1Entries = Math.ceil(nClusters / L2_ENTRIES);
  const l2Needed = [...new Set(clusters.map((c) => Math.floor(c.index / L2_ENTRIES)))].sort((a, b) => a - b);
  const l1Clusters = Math.ceil((l1Entries * 8) / CLUSTER);
  const dataBytes = clusters.reduce((s, c) => s + c.len, 0);
  // refcount blocks must cover the whole file, themselves included: iterate to a fixed point
  let refBlocks = 1;
  let rtClusters = 1;
  let metaClusters = 0;
  for (;;) {
    metaClusters = 1 + rtClusters + refBlocks + l1Clusters + l2Needed.length;
    const fileClusters = metaClusters + Math.ceil(dataBytes / CLUSTER) + 1;
    const needBlocks = Math.ceil(fileClusters / REFS_PER_BLOCK);
    const needRt = Math.ceil((needBlocks * 8) / CLUSTER);
    if (needBlocks <= refBlocks && needRt <= rtClusters) break;
    refBlocks = Math.max(refBlocks, needBlocks);
    rtClusters = Math.max(rtClusters, needRt);
  }
  const rtOffset = CLUSTER;
  const rbOffset = rtOffset + rtClusters * CLUSTER;
  const l1Offset = rbOffset + refBlocks * CLUSTER;
  const l2Offset = l1Offset + l1Clusters * CLUSTER;
  const dataOffset = l2Offset + l2Needed.length * CLUSTER;
  // place the clusters; fill L2 entries and refcounts
  const refcounts = new Uint16Array(refBlocks * REFS_PER_BLOCK);
  for (let c = 0; c < dataOffset / CLUSTER; c++) refcounts[c] = 1;
  const l2 = new Map<number, Buffer>(l2Needed.map((t) => [t, Buffer.alloc(CLUSTER)]));
  const dataAt: number[] = [];
  let at = dataOffset;
  for (const c of clusters) {
    let entry: bigint;
    if (compressed) {
      const first = Math.floor(at / SECTOR);
      const last = Math.floor((at + c.len - 1) / SECTOR);
      entry = OFLAG_COMPRESSED | (BigInt(last - first) << CSIZE_SHIFT) | BigInt(at);
      const spanEnd = (last + 1) * SECTOR;
      for (let hc = Math.floor(at / CLUSTER); hc <= Math.floor((spanEnd - 1) / CLUSTER); hc++) refcounts[hc]++;
    } else {
      if (c.len !== CLUSTER || at % CLUSTER !== 0) throw new Error('qcow2: a plain cluster fills one whole host cluster');
      entry = OFLAG_COPIED | BigInt(at);
      refcounts[at / CLUSTER] = 1;
    }
    l2.get(Math.floor(c.index / L2_ENTRIES))!.writeBigUInt64BE(entry, (c.index % L2_ENTRIES) * 8);
    dataAt.push(at);
    at += c.len;
  }
  const fileEnd = Math.ceil(at / CLUSTER) * CLUSTER; // whole clusters: qemu sees every referenced cluster inside the file
  const rt = Buffer.alloc(rtClusters * CLUSTER);
  for (let b = 0; b < refBlocks; b++) rt.writeBigUInt64BE(BigInt(rbOffset + b * CLUSTER), b * 8);
  const rbBuf = Buffer.alloc(refBlocks * CLUSTER);
  refcounts.forEach((v, i) => rbBuf.writeUInt16BE(v, i * 2));
  const l1 = Buffer.alloc(l1Clusters * CLUSTER);
  l2Needed.forEach((t, k) => l1.writeBigUInt64BE(OFLAG_COPIED | BigInt(l2Offset + k * CLUSTER), t * 8));
  const metadata = [header(size, l1Entries, l1Offset, rtOffset, rtClusters), rt, rbBuf, l1, ...l2Needed.map((t) => l2.get(t)!)];
  return { metadata, dataAt, dataEnd: at, fileEnd };
}

/**
 * The disk as a qcow2 with plain (uncompressed) clusters: one cluster per
 * non-zero 64 KiB grain, holding the grain's literals and pool blocks as
 * they are. `size` is the file's length; `write` appends it to a piece list
 * (metadata as bytes, pool blocks as block pieces, gaps as zero runs), so a
 * gzip around it splices the pool's deflate segments.
 */
export function uncompressedQcow2(d: FamilyDisk): { size: number; write(out: PieceList): void } {
  if (GRAIN !== CLUSTER) throw new Error('qcow2: clusters and grains must be the same size');
  const grains = [...d.image.grains()].filter((g) => g.pieces.length > 0);
  const l = layout(d.size, grains.map((g) => ({ index: g.index, len: CLUSTER })), false);
  return {
    size: l.fileEnd,
    write(out: PieceList) {
      const start = out.size;
      for (const b of l.metadata) out.bytes(b);
      for (const g of grains) {
        let pos = 0;
        for (const p of g.pieces) {
          out.zeros(p.offset - pos);
          if (p.kind === 'lit') {
            out.bytes(p.data);
            pos = p.offset + p.data.length;
          } else {
            out.block(p.id, p.len);
            pos = p.offset + p.len;
          }
        }
        out.zeros(CLUSTER - pos);
      }
      if (out.size - start !== l.fileEnd) throw new Error('qcow2: plain image length differs from its layout');
    },
  };
}

export const qcow2: Format = {
  name: 'qcow2',
  family: 'openstack',
  async build(ctx) {
    const d = familyDisk(ctx, 'openstack');
    const stream = streamOptimized(ctx, d, ovfDiskFile(ctx.names.name));
    const inStream = grainBodiesIn(stream);
    // each cluster is a grain's deflate body ended by DEFLATE_FINAL: qemu inflates each cluster to a stream end
    const clusters = compressedGrains(d.image, ctx.blocks).map((g) => ({ index: g.index, len: g.length + DEFLATE_FINAL.length }));
    const l = layout(d.size, clusters, true);
    const rb = new RecipeBuilder();
    for (const b of l.metadata) rb.literal(b);
    for (const c of clusters) {
      const [bodyAt, bodyLen] = inStream.get(c.index)!;
      if (bodyLen !== c.len - DEFLATE_FINAL.length) throw new Error(`qcow2: grain ${c.index} differs from the VMDK's`);
      rb.include(stream, bodyAt, bodyAt + bodyLen);
      rb.literal(DEFLATE_FINAL);
    }
    rb.zero(l.fileEnd - l.dataEnd);
    return [{
      path: `openstack/${ctx.names.name}-openstack.qcow2`, recipe: rb.build(), format: 'qcow2',
      description: 'qcow2 for OpenStack (openstack image create --disk-format qcow2 --file FILE)',
    }];
  },
};
