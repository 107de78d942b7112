// qcow2 (version 3) for OpenStack: 64 KiB clusters, only the clusters that
// hold data are stored, each as a compressed cluster spliced from pool
// blocks (no compression at read time), with L1/L2 tables and refcounts
// that qemu-img check accepts. A compressed cluster is the deflate body of
// the same grain in the disk's streamOptimized VMDK, which the qcow2 recipe
// includes by reference (the catalog keeps the bodies' literals once).

import { Format } from './context';
import { familyDisk } from './disk/disk';
import { compressedGrains } from './disk/grainstream';
import { DEFLATE_FINAL } from '../pool/format';
import { grainBodiesIn, ovfDiskFile, streamOptimized } from './vmdk';
import { SECTOR } from './disk/diskimage';
import { RecipeBuilder } from '../recipe/recipe';

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

export const qcow2: Format = {
  name: 'qcow2',
  family: 'openstack',
  async build(ctx) {
    const d = familyDisk(ctx, 'openstack');
    const stream = streamOptimized(ctx, d, ovfDiskFile(ctx.names.name));
    const inStream = grainBodiesIn(stream);
    // 1. compressed clusters, in order
    // each cluster is a grain's deflate body ended by DEFLATE_FINAL: qemu inflates each cluster to a stream end
    const clusters = compressedGrains(d.image, ctx.blocks).map((g) => ({ index: g.index, body: g.body, len: g.length + DEFLATE_FINAL.length }));
    // 2. metadata layout: header | refcount table | refcount blocks | L1 | L2 tables | data
    const nClusters = d.size / CLUSTER;
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
    // 3. place the compressed clusters back to back; fill L2 entries and refcounts
    const refcounts = new Uint16Array(refBlocks * REFS_PER_BLOCK);
    for (let c = 0; c < dataOffset / CLUSTER; c++) refcounts[c] = 1;
    const l2 = new Map<number, Buffer>(l2Needed.map((t) => [t, Buffer.alloc(CLUSTER)]));
    let at = dataOffset;
    for (const c of clusters) {
      const first = Math.floor(at / SECTOR);
      const last = Math.floor((at + c.len - 1) / SECTOR);
      const entry = OFLAG_COMPRESSED | (BigInt(last - first) << CSIZE_SHIFT) | BigInt(at);
      l2.get(Math.floor(c.index / L2_ENTRIES))!.writeBigUInt64BE(entry, (c.index % L2_ENTRIES) * 8);
      // every host cluster the compressed sectors touch counts one reference
      const spanEnd = (last + 1) * SECTOR;
      for (let hc = Math.floor(at / CLUSTER); hc <= Math.floor((spanEnd - 1) / CLUSTER); hc++) refcounts[hc]++;
      at += c.len;
    }
    const fileEnd = Math.ceil(at / CLUSTER) * CLUSTER; // whole clusters: qemu sees every referenced cluster inside the file
    // 4. tables
    const rt = Buffer.alloc(rtClusters * CLUSTER);
    for (let b = 0; b < refBlocks; b++) rt.writeBigUInt64BE(BigInt(rbOffset + b * CLUSTER), b * 8);
    const rbBuf = Buffer.alloc(refBlocks * CLUSTER);
    refcounts.forEach((v, i) => rbBuf.writeUInt16BE(v, i * 2));
    const l1 = Buffer.alloc(l1Clusters * CLUSTER);
    l2Needed.forEach((t, k) => l1.writeBigUInt64BE(OFLAG_COPIED | BigInt(l2Offset + k * CLUSTER), t * 8));
    const rb = new RecipeBuilder();
    rb.literal(header(d.size, l1Entries, l1Offset, rtOffset, rtClusters));
    rb.literal(rt);
    rb.literal(rbBuf);
    rb.literal(l1);
    for (const t of l2Needed) rb.literal(l2.get(t)!);
    for (const c of clusters) {
      const [bodyAt, bodyLen] = inStream.get(c.index)!;
      if (bodyLen !== c.len - DEFLATE_FINAL.length) throw new Error(`qcow2: grain ${c.index} differs from the VMDK's`);
      rb.include(stream, bodyAt, bodyAt + bodyLen);
      rb.literal(DEFLATE_FINAL);
    }
    rb.zero(fileEnd - at);
    return [{
      path: `openstack/${ctx.names.name}-openstack.qcow2`, recipe: rb.build(), format: 'qcow2',
      description: 'qcow2 for OpenStack (openstack image create --disk-format qcow2 --file FILE)',
    }];
  },
};
