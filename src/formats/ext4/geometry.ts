// ext4 geometry: block groups, inodes per group, where each group's
// superblock backup, descriptor table, bitmaps and inode table sit (no
// flex_bg: each group's metadata at its start), and the journal size.

import { BLOCK_SIZE, BLOCKS_PER_GROUP, GROUP_DESC_SIZE, INODE_RATIO, INODE_SIZE, GRAIN_BLOCKS } from './constants';

export interface Geometry {
  blocks: number;
  groups: number;
  inodesPerGroup: number;
  inodeTableBlocks: number;
  gdtBlocks: number;
  journalBlocks: number;
}

/** sparse_super: groups 0, 1 and powers of 3, 5 and 7 carry superblock backups. */
export function hasSuper(g: number): boolean {
  if (g <= 1) return true;
  for (const base of [3, 5, 7]) {
    let p = base;
    while (p < g) p *= base;
    if (p === g) return true;
  }
  return false;
}

export function groupStart(g: number): number {
  return g * BLOCKS_PER_GROUP;
}

export function groupEnd(geo: Geometry, g: number): number {
  return Math.min((g + 1) * BLOCKS_PER_GROUP, geo.blocks);
}

export function blockBitmapBlock(geo: Geometry, g: number): number {
  return groupStart(g) + (hasSuper(g) ? 1 + geo.gdtBlocks : 0);
}

export function inodeBitmapBlock(geo: Geometry, g: number): number {
  return blockBitmapBlock(geo, g) + 1;
}

export function inodeTableBlock(geo: Geometry, g: number): number {
  return blockBitmapBlock(geo, g) + 2;
}

/** First block after the group's own metadata. */
export function dataStart(geo: Geometry, g: number): number {
  return inodeTableBlock(geo, g) + geo.inodeTableBlocks;
}

/** mke2fs's journal size for a file system of `blocks` 4 KiB blocks. */
export function journalBlocksFor(blocks: number): number {
  const bytes = blocks * BLOCK_SIZE;
  const MiB = 1024 * 1024;
  const GiB = 1024 * MiB;
  if (bytes < 128 * MiB) return 1024;
  if (bytes < GiB) return 4096;
  if (bytes < 2 * GiB) return 8192;
  if (bytes < 16 * GiB) return 16384;
  if (bytes < 32 * GiB) return 32768;
  if (bytes < 64 * GiB) return 65536;
  if (bytes < 128 * GiB) return 131072;
  return 262144;
}

/**
 * Geometry for a partition of `bytes`, with room for at least `inodesNeeded`
 * inodes. Throws a plain Error with the reason when it cannot fit.
 */
export function computeGeometry(bytes: number, inodesNeeded: number): Geometry {
  let blocks = Math.floor(bytes / BLOCK_SIZE / GRAIN_BLOCKS) * GRAIN_BLOCKS;
  if (blocks < 4096) throw new Error(`a ${bytes}-byte partition is too small for ext4 (16 MiB at least)`);
  let groups = Math.ceil(blocks / BLOCKS_PER_GROUP);
  const ipgFor = (g: number) => {
    const wanted = Math.max(Math.ceil((blocks * BLOCK_SIZE) / INODE_RATIO), inodesNeeded + 16);
    const perBlock = BLOCK_SIZE / INODE_SIZE;
    return Math.max(perBlock * 2, Math.ceil(Math.ceil(wanted / g) / perBlock) * perBlock);
  };
  let ipg = ipgFor(groups);
  const metaBlocks = (g: number, ipgv: number) =>
    (hasSuper(g) ? 1 + Math.ceil((groups * GROUP_DESC_SIZE) / BLOCK_SIZE) : 0) + 2 + (ipgv * INODE_SIZE) / BLOCK_SIZE;
  // a last group too small to hold its own metadata and some data is dropped (as mke2fs does)
  const lastSize = blocks - (groups - 1) * BLOCKS_PER_GROUP;
  if (groups > 1 && lastSize < metaBlocks(groups - 1, ipg) + 256) {
    groups--;
    blocks = groups * BLOCKS_PER_GROUP;
    ipg = ipgFor(groups);
  }
  if (ipg > 8 * BLOCK_SIZE) {
    if (inodesNeeded + 16 > groups * 8 * BLOCK_SIZE) throw new Error(`${inodesNeeded} files do not fit in ${groups} block groups`);
    ipg = 8 * BLOCK_SIZE;
  }
  return {
    blocks,
    groups,
    inodesPerGroup: ipg,
    inodeTableBlocks: (ipg * INODE_SIZE) / BLOCK_SIZE,
    gdtBlocks: Math.ceil((groups * GROUP_DESC_SIZE) / BLOCK_SIZE),
    journalBlocks: journalBlocksFor(blocks),
  };
}
