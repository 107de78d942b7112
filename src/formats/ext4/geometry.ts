// ext4 geometry: block groups, inodes per group, and where the metadata
// sits. With flex_bg, the block bitmaps, inode bitmaps and inode tables of
// each flex group (up to 16 groups) are packed together at the start of its
// first group (after that group's superblock backup and descriptor table),
// so a disk's metadata is a few dense runs rather than one per group (what
// keeps VHD blocks and compressed grains few). Also the journal size.

import { BLOCK_SIZE, BLOCKS_PER_GROUP, GROUP_DESC_SIZE, INODE_RATIO, INODE_SIZE, GRAIN_BLOCKS } from './constants';

export const LOG_GROUPS_PER_FLEX_MAX = 4; // 16 groups per flex group, as mke2fs

export interface Geometry {
  blocks: number;
  groups: number;
  inodesPerGroup: number;
  inodeTableBlocks: number;
  gdtBlocks: number;
  journalBlocks: number;
  logGroupsPerFlex: number;
  blockBitmap: number[];
  inodeBitmap: number[];
  inodeTable: number[];
  /** first block of group g after the metadata placed at its start */
  dataStart: number[];
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

export function groupEnd(geo: Pick<Geometry, 'blocks'>, g: number): number {
  return Math.min((g + 1) * BLOCKS_PER_GROUP, geo.blocks);
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
  const perBlock = BLOCK_SIZE / INODE_SIZE;
  const ipgFor = (g: number, b: number) => {
    const wanted = Math.max(Math.ceil((b * BLOCK_SIZE) / INODE_RATIO), inodesNeeded + 16);
    return Math.min(8 * BLOCK_SIZE, Math.max(perBlock * 2, Math.ceil(Math.ceil(wanted / g) / perBlock) * perBlock));
  };
  const superBlocks = (g: number, ng: number) => (hasSuper(g) ? 1 + Math.ceil((ng * GROUP_DESC_SIZE) / BLOCK_SIZE) : 0);
  // a last group too small for its superblock backup and some data is dropped (as mke2fs does)
  if (groups > 1 && blocks - (groups - 1) * BLOCKS_PER_GROUP < superBlocks(groups - 1, groups) + 2 * GRAIN_BLOCKS) {
    groups--;
    blocks = groups * BLOCKS_PER_GROUP;
  }
  const ipg = ipgFor(groups, blocks);
  if (ipg * groups < inodesNeeded + 16) throw new Error(`${inodesNeeded} files do not fit in ${groups} block groups`);
  const itb = (ipg * INODE_SIZE) / BLOCK_SIZE;
  const gdtBlocks = Math.ceil((groups * GROUP_DESC_SIZE) / BLOCK_SIZE);
  // the largest flex group whose packed metadata fits in its first group
  let logFlex = LOG_GROUPS_PER_FLEX_MAX;
  const fits = (lf: number) => {
    const per = 1 << lf;
    for (let f = 0; f * per < groups; f++) {
      const first = f * per;
      const n = Math.min(per, groups - first);
      const room = groupEnd({ blocks }, first) - groupStart(first) - superBlocks(first, groups) - GRAIN_BLOCKS;
      if (n * (2 + itb) > room) return false;
    }
    return true;
  };
  while (logFlex > 0 && !fits(logFlex)) logFlex--;
  if (!fits(logFlex)) throw new Error('the partition is too small for its inode tables');
  const per = 1 << logFlex;
  const blockBitmap: number[] = [];
  const inodeBitmap: number[] = [];
  const inodeTable: number[] = [];
  const dataStart: number[] = [];
  for (let g = 0; g < groups; g++) dataStart.push(groupStart(g) + superBlocks(g, groups));
  for (let first = 0; first < groups; first += per) {
    const n = Math.min(per, groups - first);
    let at = dataStart[first];
    for (let k = 0; k < n; k++) blockBitmap[first + k] = at++;
    for (let k = 0; k < n; k++) inodeBitmap[first + k] = at++;
    for (let k = 0; k < n; k++) {
      inodeTable[first + k] = at;
      at += itb;
    }
    dataStart[first] = at;
  }
  return {
    blocks, groups, inodesPerGroup: ipg, inodeTableBlocks: itb, gdtBlocks, journalBlocks: journalBlocksFor(blocks),
    logGroupsPerFlex: logFlex, blockBitmap, inodeBitmap, inodeTable, dataStart,
  };
}
