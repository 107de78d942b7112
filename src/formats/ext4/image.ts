// The ext4 image writer: lays a Tree out as an ext4 file system (4 KiB
// blocks, 256-byte inodes, extents, journal, xattrs) and describes it as
// metadata literals plus pool blocks placed at fs blocks, everything else
// zero. Deterministic: inode numbers follow the tree walk, allocation is
// sequential, and the UUID and hash seed come from the caller.

import * as C from './constants';
import { BlockAllocator, OutOfSpace, Run } from './allocator';
import { Geometry, computeGeometry, groupStart, groupEnd, hasSuper } from './geometry';
import {
  DirEntry, EncodedXattr, Extent, classifyXattr, dirBlocksNeeded, encodeDirBlocks, encodeGroupDesc, encodeJournalSuperblock,
  encodeSuperblock, encodeTime, encodeXattrBlock, inInodeXattrSize, mergeExtents, writeExtentHeader, writeExtentIndex,
  writeExtentLeaf, writeInInodeXattrs, xattrBlockFits,
} from './structures';
import { EntryType, Inode, Tree, BLOCK_SIZE as POOL_BLOCK, ROOT_INO as TREE_ROOT } from '../../tree';

export interface Ext4Options {
  partitionBytes: number;
  uuid: Buffer;
  hashSeed: Buffer;
  label: string;
  timeNs: bigint; // file system timestamps (mkfs, write, lastcheck; lost+found)
}

/** A pool block placed in the file system: `len` bytes at fs block `block` (the rest of its last 4 KiB block is zero). */
export interface PlacedBlock {
  block: number;
  id: number;
  len: number;
}

export interface Ext4Image {
  blocks: number; // file system size in 4 KiB blocks
  literals: Map<number, Buffer>; // fs block -> its 4096 bytes (metadata)
  data: PlacedBlock[]; // sorted by block
}

export class Ext4Error extends Error {}

const ZERO_BLOCK = Buffer.alloc(C.BLOCK_SIZE);

interface Node {
  ino: number;
  inode: Inode | undefined; // undefined for lost+found when made here
  /** what messages call it: the journal and a lost+found made here; otherwise the path of inode */
  label?: string;
  mode: number; // with type bits
  size: number;
  links: number;
  extents: Extent[];
  dataBlocks: number; // allocated data blocks (for i_blocks)
  treeBlocks: number[]; // extent tree leaf blocks
  iblock?: Buffer; // 60 bytes for fast symlinks / devices
  xattrsInInode?: EncodedXattr[];
  xattrBlock?: number;
  mtimeNs: bigint;
  uid: number;
  gid: number;
}

function typeBits(t: EntryType): number {
  switch (t) {
    case EntryType.File: return C.S_IFREG;
    case EntryType.Dir: return C.S_IFDIR;
    case EntryType.Symlink: return C.S_IFLNK;
    case EntryType.CharDev: return C.S_IFCHR;
    case EntryType.BlockDev: return C.S_IFBLK;
    case EntryType.Fifo: return C.S_IFIFO;
    case EntryType.Socket: return C.S_IFSOCK;
  }
}

function dirType(t: EntryType): number {
  switch (t) {
    case EntryType.File: return C.FT_REG;
    case EntryType.Dir: return C.FT_DIR;
    case EntryType.Symlink: return C.FT_SYMLINK;
    case EntryType.CharDev: return C.FT_CHRDEV;
    case EntryType.BlockDev: return C.FT_BLKDEV;
    case EntryType.Fifo: return C.FT_FIFO;
    case EntryType.Socket: return C.FT_SOCK;
  }
}

function runsToExtents(runs: Run[], logicalStart: number): Extent[] {
  const out: Extent[] = [];
  let l = logicalStart;
  for (const [s, c] of runs) {
    out.push({ logical: l, physical: s, len: c });
    l += c;
  }
  return out;
}

export function buildExt4(tree: Tree, opts: Ext4Options): Ext4Image {
  // 1. inode numbers, in walk order (hard links share theirs)
  const inoOf = new Map<number, number>([[TREE_ROOT, C.ROOT_INO]]);
  const rootKids = tree.children(TREE_ROOT);
  const lfTree = rootKids.get('lost+found');
  const ownLostFound = lfTree !== undefined && tree.inodes.get(lfTree)!.type === EntryType.Dir;
  if (ownLostFound) inoOf.set(lfTree!, C.FIRST_INO);
  let next = C.FIRST_INO + 1;
  const walk = [...tree.walkEntries()];
  // where each inode's first entry is, for the paths messages show (made only then)
  const entryParent = new Uint32Array(tree.inoLimit);
  const entryName: string[] = [];
  const pathVia = (dir: number, name: string): string => {
    const parts = [name];
    for (let d = dir; d !== TREE_ROOT; d = entryParent[d]) parts.push(entryName[d]);
    return `/${parts.reverse().join('/')}`;
  };
  const pathOf = (ino: number): string => (ino === TREE_ROOT ? '/' : pathVia(entryParent[ino], entryName[ino]));
  const nodePath = (n: Node): string => n.label ?? pathOf(n.inode!.ino);
  for (const { inode, parent, name } of walk) {
    if (inode.ino === TREE_ROOT) continue;
    if (Buffer.byteLength(name, 'latin1') > 255) throw new Ext4Error(`${pathVia(parent, name)}: file name longer than 255 bytes`);
    if (entryName[inode.ino] === undefined) {
      entryParent[inode.ino] = parent;
      entryName[inode.ino] = name;
    }
    if (!inoOf.has(inode.ino)) inoOf.set(inode.ino, next++);
  }
  const inodesNeeded = next - 1;
  let geo: Geometry;
  try {
    geo = computeGeometry(opts.partitionBytes, inodesNeeded);
  } catch (e) {
    throw new Ext4Error((e as Error).message);
  }
  if (geo.inodesPerGroup * geo.groups < inodesNeeded) throw new Ext4Error(`${inodesNeeded} inodes do not fit`);
  const alloc = new BlockAllocator(geo);
  const literals = new Map<number, Buffer>();
  const data: PlacedBlock[] = [];
  const nodes = new Map<number, Node>(); // ext ino -> node
  const fsBytes = geo.blocks * C.BLOCK_SIZE;

  const space = <T>(what: string | (() => string), f: () => T): T => {
    try {
      return f();
    } catch (e) {
      if (e instanceof OutOfSpace) {
        const at = typeof what === 'string' ? what : what();
        throw new Ext4Error(`the tree does not fit in a ${Math.floor(opts.partitionBytes / 1048576)} MiB file system (at ${at}); give a larger --disk-size`);
      }
      throw e;
    }
  };
  const putLiteral = (runs: Run[], bytes: Buffer) => {
    let o = 0;
    for (const [s, c] of runs) {
      for (let k = 0; k < c; k++, o += C.BLOCK_SIZE) {
        const blk = Buffer.alloc(C.BLOCK_SIZE);
        bytes.copy(blk, 0, o, Math.min(bytes.length, o + C.BLOCK_SIZE));
        literals.set(s + k, blk);
      }
    }
  };

  const addTreeBlocksLater: Node[] = [];
  // 2. the journal (inode 8): zeros but for its superblock
  const jRuns = space('the journal', () => alloc.grains(geo.journalBlocks / C.GRAIN_BLOCKS));
  literals.set(jRuns[0][0], encodeJournalSuperblock(geo.journalBlocks, opts.uuid));
  const journal: Node = {
    ino: C.JOURNAL_INO, inode: undefined, label: '<journal>', mode: C.S_IFREG | 0o600, size: geo.journalBlocks * C.BLOCK_SIZE,
    links: 1, extents: mergeExtents(runsToExtents(jRuns, 0)), dataBlocks: geo.journalBlocks, treeBlocks: [],
    mtimeNs: opts.timeNs, uid: 0, gid: 0,
  };
  addTreeBlocksLater.push(journal);
  nodes.set(C.JOURNAL_INO, journal);

  // 3. every entry of the tree
  const parentOf = (dir: number) => (dir === TREE_ROOT ? TREE_ROOT : entryParent[dir]);
  const dirEntries = (treeIno: number): DirEntry[] => {
    const self = inoOf.get(treeIno)!;
    const entries: DirEntry[] = [
      { ino: self, name: Buffer.from('.'), type: C.FT_DIR },
      { ino: inoOf.get(parentOf(treeIno))!, name: Buffer.from('..'), type: C.FT_DIR },
    ];
    if (treeIno === TREE_ROOT && !ownLostFound) entries.push({ ino: C.FIRST_INO, name: Buffer.from('lost+found'), type: C.FT_DIR });
    for (const [name, ino] of tree.sortedChildren(treeIno)) {
      entries.push({ ino: inoOf.get(ino)!, name: Buffer.from(name, 'latin1'), type: dirType(tree.inodes.get(ino)!.type) });
    }
    return entries;
  };

  const placeXattrs = (node: Node, inode: Inode | undefined) => {
    const xs: EncodedXattr[] = [];
    for (const x of inode?.xattrs ?? []) {
      let enc: EncodedXattr | undefined;
      try {
        enc = classifyXattr(x.name, x.value);
      } catch (e) {
        throw new Ext4Error(`${nodePath(node)}: xattr ${x.name}: ${(e as Error).message}`);
      }
      if (!enc) throw new Ext4Error(`${nodePath(node)}: xattr ${x.name} has a namespace ext4 cannot store`);
      xs.push(enc);
    }
    if (!xs.length) return;
    if (inInodeXattrSize(xs) <= C.INODE_SIZE - 128 - C.EXTRA_ISIZE) {
      node.xattrsInInode = xs;
    } else {
      if (!xattrBlockFits(xs)) throw new Ext4Error(`${nodePath(node)}: extended attributes larger than one 4 KiB block`);
      const [[b]] = space(() => nodePath(node), () => alloc.meta(1));
      literals.set(b, encodeXattrBlock(xs));
      node.xattrBlock = b;
    }
  };

  const addTreeBlocks = (node: Node) => {
    if (node.extents.length <= C.EXT_ROOT_MAX) return;
    const leaves = Math.ceil(node.extents.length / C.EXT_BLOCK_MAX);
    if (leaves > C.EXT_ROOT_MAX) throw new Ext4Error(`${nodePath(node)}: too fragmented (${node.extents.length} extents)`);
    for (const [s, c] of space(() => nodePath(node), () => alloc.meta(leaves))) for (let k = 0; k < c; k++) node.treeBlocks.push(s + k);
    node.treeBlocks.forEach((blk, li) => {
      const part = node.extents.slice(li * C.EXT_BLOCK_MAX, (li + 1) * C.EXT_BLOCK_MAX);
      const b = Buffer.alloc(C.BLOCK_SIZE);
      writeExtentHeader(b, 0, part.length, C.EXT_BLOCK_MAX, 0);
      part.forEach((e, k) => writeExtentLeaf(b, 12 + 12 * k, e));
      literals.set(blk, b);
    });
  };

  const lostFound = (): Node => {
    const runs = space('lost+found', () => alloc.meta(C.LOST_FOUND_BLOCKS));
    putLiteral(runs, encodeDirBlocks([
      { ino: C.FIRST_INO, name: Buffer.from('.'), type: C.FT_DIR },
      { ino: C.ROOT_INO, name: Buffer.from('..'), type: C.FT_DIR },
    ], C.LOST_FOUND_BLOCKS));
    return {
      ino: C.FIRST_INO, inode: undefined, label: '/lost+found', mode: C.S_IFDIR | 0o700, size: C.LOST_FOUND_BLOCKS * C.BLOCK_SIZE,
      links: 2, extents: mergeExtents(runsToExtents(runs, 0)), dataBlocks: C.LOST_FOUND_BLOCKS, treeBlocks: [],
      mtimeNs: opts.timeNs, uid: 0, gid: 0,
    };
  };

  for (const { inode } of walk) {
    const ino = inoOf.get(inode.ino)!;
    if (nodes.has(ino)) continue; // a further name of a hard-linked inode
    const p = () => pathOf(inode.ino);
    const node: Node = {
      ino, inode, mode: typeBits(inode.type) | (inode.mode & 0o7777), size: 0, links: inode.nlink,
      extents: [], dataBlocks: 0, treeBlocks: [], mtimeNs: inode.mtimeNs, uid: inode.uid, gid: inode.gid,
    };
    switch (inode.type) {
      case EntryType.Dir: {
        const entries = dirEntries(inode.ino);
        const n = dirBlocksNeeded(entries);
        const runs = space(p, () => alloc.meta(n));
        putLiteral(runs, encodeDirBlocks(entries, n));
        node.extents = mergeExtents(runsToExtents(runs, 0));
        node.size = n * C.BLOCK_SIZE;
        node.dataBlocks = n;
        let subdirs = [...tree.children(inode.ino).values()].filter((k) => tree.inodes.get(k)!.type === EntryType.Dir).length;
        if (inode.ino === TREE_ROOT && !ownLostFound) subdirs++;
        node.links = 2 + subdirs >= C.DIR_NLINK_MAX ? 1 : 2 + subdirs;
        break;
      }
      case EntryType.File: {
        const c = inode.content!;
        node.size = c.size;
        const allocBytes = inode.sparse ? [...c.blocks].filter((b) => b !== 0).length * POOL_BLOCK : c.size;
        if (allocBytes > fsBytes) throw new Ext4Error(`${p()} (${c.size} bytes) is larger than the ${Math.floor(opts.partitionBytes / 1048576)} MiB file system; give a larger --disk-size`);
        if (c.size > 16 * 2 ** 40) throw new Ext4Error(`${p()}: larger than ext4's 16 TiB file limit`);
        const ext: Extent[] = [];
        const nb = c.blocks.length;
        let k = 0;
        while (k < nb) {
          const len = Math.min(POOL_BLOCK, c.size - k * POOL_BLOCK);
          const hole = c.blocks[k] === 0 && inode.sparse;
          if (hole) {
            k++;
            continue;
          }
          if (len < POOL_BLOCK) {
            // the tail: packed with other tails into a shared grain
            const nblk = Math.ceil(len / C.BLOCK_SIZE);
            const at = space(p, () => alloc.packed(nblk));
            ext.push({ logical: k * C.GRAIN_BLOCKS, physical: at, len: nblk });
            if (c.blocks[k]) data.push({ block: at, id: c.blocks[k], len });
            node.dataBlocks += nblk;
            k++;
            continue;
          }
          // a run of full 64 KiB blocks: whole grains
          let m = k;
          while (m < nb && Math.min(POOL_BLOCK, c.size - m * POOL_BLOCK) === POOL_BLOCK && !(c.blocks[m] === 0 && inode.sparse)) m++;
          const runs = space(p, () => alloc.grains(m - k));
          let kk = k;
          for (const [s, cnt] of runs) {
            ext.push({ logical: kk * C.GRAIN_BLOCKS, physical: s, len: cnt });
            for (let g = 0; g < cnt / C.GRAIN_BLOCKS; g++, kk++) {
              if (c.blocks[kk]) data.push({ block: s + g * C.GRAIN_BLOCKS, id: c.blocks[kk], len: POOL_BLOCK });
            }
          }
          node.dataBlocks += (m - k) * C.GRAIN_BLOCKS;
          k = m;
        }
        node.extents = mergeExtents(ext);
        addTreeBlocks(node);
        break;
      }
      case EntryType.Symlink: {
        const target = Buffer.from(inode.target ?? '', 'latin1');
        node.size = target.length;
        if (target.length >= C.BLOCK_SIZE) throw new Ext4Error(`${p()}: symlink target longer than 4095 bytes`);
        if (target.length <= C.FAST_SYMLINK_MAX) {
          node.iblock = Buffer.alloc(60);
          target.copy(node.iblock);
        } else {
          const runs = space(p, () => alloc.meta(1));
          putLiteral(runs, target);
          node.extents = runsToExtents(runs, 0);
          node.dataBlocks = 1;
        }
        break;
      }
      case EntryType.CharDev:
      case EntryType.BlockDev: {
        node.iblock = Buffer.alloc(60);
        const maj = inode.rdevMajor;
        const min = inode.rdevMinor;
        if (maj < 256 && min < 256) node.iblock.writeUInt32LE((maj << 8) | min, 0);
        else node.iblock.writeUInt32LE(((min & 0xff) | (maj << 8) | ((min & ~0xff) << 12)) >>> 0, 4);
        break;
      }
      default:
        break; // fifo, socket: nothing more
    }
    placeXattrs(node, inode);
    nodes.set(ino, node);
  }
  for (const n of addTreeBlocksLater) addTreeBlocks(n);
  if (!ownLostFound) nodes.set(C.FIRST_INO, lostFound());
  else {
    // a lost+found from the tree is kept; e2fsck wants it to be a plain directory
    const lf = nodes.get(C.FIRST_INO)!;
    if ((lf.mode & 0o170000) !== C.S_IFDIR) throw new Ext4Error('/lost+found is not a directory');
  }

  // 4. inode tables
  const ipg = geo.inodesPerGroup;
  const tableBlockOf = (ino: number) => {
    const g = Math.floor((ino - 1) / ipg);
    const idx = (ino - 1) % ipg;
    return { block: geo.inodeTable[g] + Math.floor((idx * C.INODE_SIZE) / C.BLOCK_SIZE), off: (idx * C.INODE_SIZE) % C.BLOCK_SIZE };
  };
  const usedDirs = new Array<number>(geo.groups).fill(0);
  for (const node of nodes.values()) {
    const { block, off } = tableBlockOf(node.ino);
    let tb = literals.get(block);
    if (!tb) {
      tb = Buffer.alloc(C.BLOCK_SIZE);
      literals.set(block, tb);
    }
    encodeInode(node).copy(tb, off);
    if ((node.mode & 0o170000) === C.S_IFDIR) usedDirs[Math.floor((node.ino - 1) / ipg)]++;
  }

  // 5. bitmaps, group descriptors, superblocks
  const inodeUsed = (ino: number) => ino <= C.FIRST_INO || nodes.has(ino);
  const gdt = Buffer.alloc(geo.gdtBlocks * C.BLOCK_SIZE);
  let freeBlocksTotal = 0;
  let freeInodesTotal = 0;
  for (let g = 0; g < geo.groups; g++) {
    const gs = groupStart(g);
    const ge = groupEnd(geo, g);
    const bb = Buffer.alloc(C.BLOCK_SIZE);
    let freeB = 0;
    for (let i = 0; i < C.BLOCKS_PER_GROUP; i++) {
      const b = gs + i;
      if (b >= ge || alloc.isUsed(b)) bb[i >>> 3] |= 1 << (i & 7);
      else freeB++;
    }
    const ib = Buffer.alloc(C.BLOCK_SIZE);
    let freeI = 0;
    for (let i = 0; i < 8 * C.BLOCK_SIZE; i++) {
      const ino = g * ipg + i + 1;
      if (i >= ipg || inodeUsed(ino)) ib[i >>> 3] |= 1 << (i & 7);
      else freeI++;
    }
    literals.set(geo.blockBitmap[g], bb);
    literals.set(geo.inodeBitmap[g], ib);
    encodeGroupDesc(gdt, g * C.GROUP_DESC_SIZE, geo.blockBitmap[g], geo.inodeBitmap[g], geo.inodeTable[g],
      freeB, freeI, usedDirs[g]);
    freeBlocksTotal += freeB;
    freeInodesTotal += freeI;
  }
  const jIblock = encodeIblockExtents(journal);
  const jnlBlocks = [...Array(15).keys()].map((i) => jIblock.readUInt32LE(4 * i));
  jnlBlocks.push(Math.floor(journal.size / 2 ** 32), journal.size >>> 0);
  const timeSec = Number(opts.timeNs / 1_000_000_000n);
  for (let g = 0; g < geo.groups; g++) {
    if (!hasSuper(g)) continue;
    const sb = encodeSuperblock({
      inodesCount: ipg * geo.groups, blocksCount: geo.blocks, rBlocksCount: Math.floor(geo.blocks / 20),
      freeBlocks: freeBlocksTotal, freeInodes: freeInodesTotal, inodesPerGroup: ipg, timeSec, uuid: opts.uuid,
      volumeName: opts.label, hashSeed: opts.hashSeed, jnlBlocks, groupNr: g, logGroupsPerFlex: geo.logGroupsPerFlex,
    });
    const first = Buffer.alloc(C.BLOCK_SIZE);
    sb.copy(first, g === 0 ? C.SUPERBLOCK_OFFSET : 0);
    literals.set(groupStart(g), first);
    for (let k = 0; k < geo.gdtBlocks; k++) literals.set(groupStart(g) + 1 + k, gdt.subarray(k * C.BLOCK_SIZE, (k + 1) * C.BLOCK_SIZE));
  }
  // blocks that only ever hold zeros need no literal
  for (const [b, buf] of literals) if (buf.equals(ZERO_BLOCK)) literals.delete(b);
  data.sort((a, b) => a.block - b.block);
  return { blocks: geo.blocks, literals, data };

  function encodeInode(node: Node): Buffer {
    const b = Buffer.alloc(C.INODE_SIZE);
    const t = encodeTime(node.mtimeNs);
    b.writeUInt16LE(node.mode & 0xffff, 0x00);
    b.writeUInt16LE(node.uid & 0xffff, 0x02);
    b.writeUInt32LE(node.size >>> 0, 0x04);
    b.writeUInt32LE(t.lo, 0x08); // atime
    b.writeUInt32LE(t.lo, 0x0c); // ctime
    b.writeUInt32LE(t.lo, 0x10); // mtime
    b.writeUInt16LE(node.gid & 0xffff, 0x18);
    b.writeUInt16LE(node.links, 0x1a);
    const sectors = (node.dataBlocks + node.treeBlocks.length + (node.xattrBlock ? 1 : 0)) * (C.BLOCK_SIZE / 512);
    b.writeUInt32LE(sectors >>> 0, 0x1c);
    b.writeUInt16LE(Math.floor(sectors / 2 ** 32), 0x74);
    const type = node.mode & 0o170000;
    const usesExtents = type === C.S_IFREG || type === C.S_IFDIR || (type === C.S_IFLNK && !node.iblock);
    if (usesExtents) {
      b.writeUInt32LE(C.EXT4_EXTENTS_FL, 0x20);
      encodeIblockExtents(node).copy(b, 0x28);
    } else if (node.iblock) {
      node.iblock.copy(b, 0x28);
    }
    if (node.xattrBlock) b.writeUInt32LE(node.xattrBlock, 0x68);
    b.writeUInt32LE(Math.floor(node.size / 2 ** 32), 0x6c);
    b.writeUInt16LE((node.uid >>> 16) & 0xffff, 0x78);
    b.writeUInt16LE((node.gid >>> 16) & 0xffff, 0x7a);
    b.writeUInt16LE(C.EXTRA_ISIZE, 0x80);
    b.writeUInt32LE(t.extra, 0x84); // ctime_extra
    b.writeUInt32LE(t.extra, 0x88); // mtime_extra
    b.writeUInt32LE(t.extra, 0x8c); // atime_extra
    b.writeUInt32LE(t.lo, 0x90); // crtime
    b.writeUInt32LE(t.extra, 0x94); // crtime_extra
    if (node.xattrsInInode) writeInInodeXattrs(b, node.xattrsInInode);
    return b;
  }

  function encodeIblockExtents(node: Node): Buffer {
    const ib = Buffer.alloc(60);
    if (node.extents.length <= C.EXT_ROOT_MAX) {
      writeExtentHeader(ib, 0, node.extents.length, C.EXT_ROOT_MAX, 0);
      node.extents.forEach((e, k) => writeExtentLeaf(ib, 12 + 12 * k, e));
    } else {
      writeExtentHeader(ib, 0, node.treeBlocks.length, C.EXT_ROOT_MAX, 1);
      node.treeBlocks.forEach((blk, li) => writeExtentIndex(ib, 12 + 12 * li, node.extents[li * C.EXT_BLOCK_MAX].logical, blk));
    }
    return ib;
  }
}

