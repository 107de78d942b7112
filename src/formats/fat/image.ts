// The FAT32 image writer (the EFI system partition of the disk views): lays
// a list of files out as a FAT32 file system and describes it as literals
// (boot sectors, FSInfo, the used sectors of both FATs, directories, small
// in-memory files) plus pool blocks placed in the data region, everything
// else zero. Nothing is materialized: a pool-backed file's clusters form one
// contiguous run starting on a 64 KiB boundary of the partition, so each of
// its pool blocks lands whole in one 64 KiB grain.
//
// Layout (deterministic: entries sorted by name, allocation sequential):
// root directory at cluster 2, then the other directories breadth first,
// then the in-memory files, then each pool-backed file at the next 64 KiB
// boundary. Every chain is contiguous.

import { Content, BLOCK_SIZE as POOL_BLOCK } from '../../tree';
import { ALIGN, FatGeometry, fatGeometry } from './geometry';
import {
  ATTR_ARCHIVE, ATTR_DIRECTORY, BACKUP_BOOT_SECTOR, DIR_ENTRY_SIZE, DosTime, FAT_EOC, FIRST_CLUSTER, FSINFO_SECTOR, FSI_UNKNOWN,
  FatError, MAX_DIR_ENTRIES, MAX_FILE_SIZE, MEDIA_FIXED, NUM_FATS, ROOT_CLUSTER, SECTOR, aliasShortName, checkLabel, checkLongName,
  dosTime, encodeBootSector, encodeFsInfo, encodeLabelEntry, encodeLfnEntries, encodeShortEntry, exactShortName, lfnEntries, nameKey,
  shortNameChecksum,
} from './structures';

export { FatError } from './structures';

export interface FatFile {
  path: string; // e.g. 'EFI/BOOT/BOOTX64.EFI' (directories implied); a Unicode string, '/'-separated
  content: Content | Buffer;
  mtimeNs: bigint;
}

export interface FatOptions {
  partitionBytes: number;
  volumeId: number; // 32-bit BS_VolID
  label: string; // <= 11 chars, e.g. 'EFI' ('' for none)
  timeNs: bigint; // directories' and the label's timestamps
  hiddenSectors?: number; // BPB_HiddSec: the partition's first LBA on its disk (default 0)
}

export interface FatImage {
  bytes: number; // == partitionBytes
  literals: { offset: number; data: Buffer }[]; // partition-relative, sorted, non-overlapping, no all-zero sector
  data: { offset: number; id: number; len: number }[]; // pool blocks at partition-relative offsets (multiples of 65536), sorted
}

interface DirNode {
  kind: 'dir';
  name: string;
  path: string;
  parent: DirNode | undefined;
  children: Map<string, Node>; // by nameKey
  timeNs: bigint;
  cluster: number;
  clusters: number;
}

interface FileNode {
  kind: 'file';
  name: string;
  path: string;
  file: FatFile;
  size: number;
  cluster: number; // 0 for an empty file
  clusters: number;
}

type Node = DirNode | FileNode;

interface Entry {
  node: Node;
  short: Buffer;
  ntRes: number;
  long: string | undefined; // written as long-name entries before the short one
}

/** Literals as non-zero sectors merged into runs. */
class LiteralSink {
  private pieces: { offset: number; data: Buffer }[] = [];

  add(offset: number, data: Buffer): void {
    for (let i = 0; i < data.length; i += SECTOR) {
      const s = data.subarray(i, Math.min(i + SECTOR, data.length));
      if (s.some((b) => b !== 0)) this.pieces.push({ offset: offset + i, data: s });
    }
  }

  finish(): { offset: number; data: Buffer }[] {
    this.pieces.sort((a, b) => a.offset - b.offset);
    const out: { offset: number; data: Buffer }[] = [];
    let run: Buffer[] = [];
    let start = 0;
    let end = 0;
    const flush = () => {
      if (run.length) out.push({ offset: start, data: Buffer.concat(run) });
      run = [];
    };
    for (const p of this.pieces) {
      if (p.offset < end) throw new Error(`FAT writer: overlapping literals at ${p.offset}`);
      if (p.offset !== end || run.length === 0) {
        flush();
        start = p.offset;
      }
      run.push(p.data);
      end = p.offset + p.data.length;
    }
    flush();
    return out;
  }
}

/** The FAT's used sectors only: sector index -> 512 bytes. */
class SparseFat {
  readonly sectors = new Map<number, Buffer>();

  set(cluster: number, value: number): void {
    const sec = Math.floor((cluster * 4) / SECTOR);
    let b = this.sectors.get(sec);
    if (!b) this.sectors.set(sec, (b = Buffer.alloc(SECTOR)));
    b.writeUInt32LE(value >>> 0, (cluster * 4) % SECTOR);
  }

  chain(first: number, count: number): void {
    for (let c = first; c < first + count - 1; c++) this.set(c, c + 1);
    if (count > 0) this.set(first + count - 1, FAT_EOC);
  }
}

function splitPath(p: string): string[] {
  const parts = p.replace(/^\/+/, '').split('/');
  for (const part of parts) checkLongName(part, p);
  return parts;
}

function isContent(c: Content | Buffer): c is Content {
  return !Buffer.isBuffer(c);
}

/** The directory tree of `files`, every name checked, duplicates (case-insensitive) refused. */
function buildTree(files: FatFile[], timeNs: bigint): DirNode {
  const root: DirNode = { kind: 'dir', name: '', path: '', parent: undefined, children: new Map(), timeNs, cluster: ROOT_CLUSTER, clusters: 0 };
  for (const f of files) {
    const parts = splitPath(f.path);
    let dir = root;
    for (let i = 0; i < parts.length - 1; i++) {
      const key = nameKey(parts[i]);
      const path = parts.slice(0, i + 1).join('/');
      let next = dir.children.get(key);
      if (next === undefined) {
        next = { kind: 'dir', name: parts[i], path, parent: dir, children: new Map(), timeNs, cluster: 0, clusters: 0 };
        dir.children.set(key, next);
      } else if (next.kind !== 'dir') {
        throw new FatError(`${f.path}: ${next.path} is a file`);
      } else if (next.name !== parts[i]) {
        throw new FatError(`${f.path}: ${path} and ${next.path} are the same FAT name (names are case-insensitive)`);
      }
      dir = next;
    }
    const name = parts[parts.length - 1];
    const other = dir.children.get(nameKey(name));
    if (other !== undefined) throw new FatError(`${f.path}: already given as ${other.path} (FAT names are case-insensitive)`);
    const size = isContent(f.content) ? f.content.size : f.content.length;
    if (size > MAX_FILE_SIZE) throw new FatError(`${f.path}: ${size} bytes is over FAT32's file size limit (4 GiB - 1)`);
    if (isContent(f.content) && f.content.blocks.length !== Math.ceil(size / POOL_BLOCK)) {
      throw new Error(`${f.path}: content of ${size} bytes has ${f.content.blocks.length} pool blocks`);
    }
    const node: FileNode = { kind: 'file', name, path: parts.join('/'), file: f, size, cluster: 0, clusters: 0 };
    dir.children.set(nameKey(name), node);
  }
  return root;
}

function sortedChildren(d: DirNode): Node[] {
  return [...d.children.values()].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

/** A directory's entries with their short names: exact 8.3 names first claimed, then "~N" aliases for the rest. */
function dirEntries(d: DirNode): Entry[] {
  const kids = sortedChildren(d);
  const exact = kids.map((n) => exactShortName(n.name));
  const taken = new Set<string>(['.          ', '..         ']);
  for (const e of exact) if (e) taken.add(e.name.toString('latin1'));
  return kids.map((node, i) => {
    const e = exact[i];
    if (e) return { node, short: e.name, ntRes: e.ntRes, long: undefined };
    const short = aliasShortName(node.name, taken);
    taken.add(short.toString('latin1'));
    return { node, short, ntRes: 0, long: node.name };
  });
}

function dirSlots(d: DirNode, entries: Entry[], hasLabel: boolean): number {
  let n = d.parent === undefined ? (hasLabel ? 1 : 0) : 2; // the label in the root; '.' and '..' elsewhere
  for (const e of entries) n += 1 + (e.long === undefined ? 0 : lfnEntries(e.long));
  if (n > MAX_DIR_ENTRIES) throw new FatError(`${d.path || '/'}: ${n} directory entries, over FAT's ${MAX_DIR_ENTRIES}`);
  return n;
}

function dotName(dots: string): Buffer {
  return Buffer.from(dots.padEnd(11, ' '), 'latin1');
}

export function buildFat32(files: FatFile[], o: FatOptions): FatImage {
  const geo: FatGeometry = fatGeometry(o.partitionBytes);
  if (!Number.isInteger(o.volumeId) || o.volumeId < 0 || o.volumeId > 0xffffffff) throw new FatError(`volume id ${o.volumeId} is not 32-bit`);
  const hidden = o.hiddenSectors ?? 0;
  if (!Number.isInteger(hidden) || hidden < 0 || hidden > 0xffffffff) throw new FatError(`hidden sectors ${hidden} is not 32-bit`);
  const label = checkLabel(o.label);
  const root = buildTree(files, o.timeNs);
  const cb = geo.clusterBytes;
  const clustersOf = (bytes: number) => Math.ceil(bytes / cb);

  // 1. directories breadth first, with their entries and sizes
  const dirs: DirNode[] = [root];
  const entriesOf = new Map<DirNode, Entry[]>();
  for (let i = 0; i < dirs.length; i++) {
    const d = dirs[i];
    const entries = dirEntries(d);
    entriesOf.set(d, entries);
    d.clusters = Math.max(1, clustersOf(dirSlots(d, entries, label !== '') * DIR_ENTRY_SIZE));
    for (const e of entries) if (e.node.kind === 'dir') dirs.push(e.node);
  }

  // 2. clusters: directories, in-memory files, then pool-backed files each on a 64 KiB boundary
  const end = FIRST_CLUSTER + geo.clusters; // first cluster number past the data region
  const perGrain = ALIGN / cb;
  const used: [number, number][] = []; // [first, count], ascending
  let next = FIRST_CLUSTER;
  const take = (count: number, what: string): number => {
    if (next + count > end) {
      throw new FatError(`the files do not fit in a ${o.partitionBytes}-byte FAT32 partition (${geo.clusters} clusters of ${cb} bytes): out of space at ${what}`);
    }
    const first = next;
    next += count;
    used.push([first, count]);
    return first;
  };
  for (const d of dirs) d.cluster = take(d.clusters, `/${d.path}`);
  if (root.cluster !== ROOT_CLUSTER) throw new Error('FAT writer: root directory not at cluster 2');
  const ordered = dirs.flatMap((d) => entriesOf.get(d)!.map((e) => e.node).filter((n): n is FileNode => n.kind === 'file'));
  for (const f of ordered) {
    if (isContent(f.file.content) || f.size === 0) continue;
    f.clusters = clustersOf(f.size);
    f.cluster = take(f.clusters, f.path);
  }
  for (const f of ordered) {
    if (!isContent(f.file.content) || f.size === 0) continue;
    next = FIRST_CLUSTER + Math.ceil((next - FIRST_CLUSTER) / perGrain) * perGrain;
    f.clusters = clustersOf(f.size);
    f.cluster = take(f.clusters, f.path);
  }
  const usedCount = used.reduce((s, [, n]) => s + n, 0);
  let firstFree = FIRST_CLUSTER;
  for (const [first, count] of used) {
    if (first > firstFree) break;
    firstFree = first + count;
  }

  // 3. the FAT
  const fat = new SparseFat();
  fat.set(0, 0x0fffff00 | MEDIA_FIXED);
  fat.set(1, FAT_EOC); // clean shut down, no disk errors
  for (const [first, count] of used) fat.chain(first, count);

  // 4. literals and pool blocks
  const lit = new LiteralSink();
  const data: FatImage['data'] = [];
  const clusterOffset = (c: number) => geo.dataStart + (c - FIRST_CLUSTER) * cb;
  const boot = encodeBootSector({
    secPerClus: geo.secPerClus, rsvdSecCnt: geo.rsvdSecCnt, totSec32: geo.totSec, fatSz32: geo.fatSz, secPerTrk: geo.secPerTrk,
    numHeads: geo.numHeads, hiddSec: hidden, volId: o.volumeId, volLab: label,
  });
  const fsInfo = encodeFsInfo(geo.clusters - usedCount, firstFree < end ? firstFree : FSI_UNKNOWN);
  lit.add(0, boot);
  lit.add(FSINFO_SECTOR * SECTOR, fsInfo);
  lit.add(BACKUP_BOOT_SECTOR * SECTOR, boot);
  lit.add((BACKUP_BOOT_SECTOR + 1) * SECTOR, fsInfo);
  for (let k = 0; k < NUM_FATS; k++) {
    const fatStart = (geo.rsvdSecCnt + k * geo.fatSz) * SECTOR;
    for (const [sec, b] of fat.sectors) lit.add(fatStart + sec * SECTOR, b);
  }
  for (const d of dirs) {
    const buf = Buffer.alloc(d.clusters * cb);
    const t = dosTime(d.timeNs);
    let off = 0;
    if (d.parent === undefined) {
      if (label !== '') {
        encodeLabelEntry(label, t, buf, off);
        off += DIR_ENTRY_SIZE;
      }
    } else {
      encodeShortEntry({ name: dotName('.'), attr: ATTR_DIRECTORY, ntRes: 0, time: t, cluster: d.cluster, size: 0 }, buf, off);
      const up = d.parent.parent === undefined ? 0 : d.parent.cluster; // '..' of a root's child is 0
      encodeShortEntry({ name: dotName('..'), attr: ATTR_DIRECTORY, ntRes: 0, time: t, cluster: up, size: 0 },
        buf, off + DIR_ENTRY_SIZE);
      off += 2 * DIR_ENTRY_SIZE;
    }
    for (const e of entriesOf.get(d)!) {
      if (e.long !== undefined) off = encodeLfnEntries(e.long, shortNameChecksum(e.short), buf, off);
      const n = e.node;
      const time: DosTime = n.kind === 'dir' ? dosTime(n.timeNs) : dosTime(n.file.mtimeNs);
      encodeShortEntry({
        name: e.short, attr: n.kind === 'dir' ? ATTR_DIRECTORY : ATTR_ARCHIVE, ntRes: e.ntRes, time, cluster: n.cluster,
        size: n.kind === 'dir' ? 0 : n.size,
      }, buf, off);
      off += DIR_ENTRY_SIZE;
    }
    lit.add(clusterOffset(d.cluster), buf);
  }
  for (const f of ordered) {
    if (f.size === 0) continue;
    const at = clusterOffset(f.cluster);
    const c = f.file.content;
    if (!isContent(c)) {
      lit.add(at, c);
      continue;
    }
    if (at % ALIGN !== 0) throw new Error(`FAT writer: ${f.path} not 64 KiB-aligned`);
    for (let i = 0; i < c.blocks.length; i++) {
      if (c.blocks[i] === 0) continue; // a hole: zeros
      data.push({ offset: at + i * POOL_BLOCK, id: c.blocks[i], len: Math.min(POOL_BLOCK, f.size - i * POOL_BLOCK) });
    }
  }
  return { bytes: o.partitionBytes, literals: lit.finish(), data };
}
