// tar writer (POSIX pax/ustar): turns a Tree into a PieceList. Everything a
// root file system holds is kept: numeric uid/gid, all mode bits, mtimes,
// symlinks, hard links (link entries pointing at the first occurrence),
// char/block devices, fifos, xattrs (pax SCHILY.xattr, e.g.
// security.capability), long and non-ASCII names (pax path/linkpath),
// sizes over 8 GiB (pax size), and sparse files (GNU sparse 1.0 in pax).
// Sockets cannot be stored in tar; they are skipped and reported.

import { floorSeconds, Content, EntryType, Inode, Tree, BLOCK_SIZE } from '../tree';
import { PieceList } from './pieces';

// ---- ustar constants -----------------------------------------------------
const BLOCK = 512;
const RECORD = 10240; // 20 blocks, what GNU tar and bsdtar pad to
const MAX_OCTAL_7 = 0o7777777;
const MAX_OCTAL_11 = 0o77777777777;
const TYPE = { file: '0', link: '1', symlink: '2', chr: '3', blk: '4', dir: '5', fifo: '6', pax: 'x' } as const;

export interface TarOptions {
  /** Prefix of every member path: "./", "rootfs/", or "" */
  prefix: string;
  /** Emit an entry for the root directory itself (named by the prefix). */
  includeRoot: boolean;
}

export interface TarResult {
  pieces: PieceList;
  skipped: string[]; // sockets
}

interface HeaderFields {
  path: string; // latin1 bytes
  type: string;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  mtimeSec: bigint;
  linkname?: string;
  devmajor?: number;
  devminor?: number;
  extra?: [string, Buffer | string][]; // additional pax records
}

function isAscii(s: string): boolean {
  for (let i = 0; i < s.length; i++) if (s.charCodeAt(i) > 0x7e || s.charCodeAt(i) < 0x20) return false;
  return true;
}

function octal(buf: Buffer, off: number, width: number, value: number): void {
  buf.write(value.toString(8).padStart(width - 1, '0') + '\0', off, width, 'latin1');
}

/** base-256 (GNU/star) big-endian encoding with the high bit set. */
function base256(buf: Buffer, off: number, width: number, value: bigint): void {
  let v = value;
  for (let i = width - 1; i >= 1; i--) {
    buf[off + i] = Number(v & 0xffn);
    v >>= 8n;
  }
  buf[off] = 0x80;
}

/** One pax record: "<len> <key>=<value>\n" where len counts the whole record. */
export function paxRecord(key: string, value: Buffer | string): Buffer {
  const v = typeof value === 'string' ? Buffer.from(value, 'latin1') : value;
  const body = 1 + Buffer.byteLength(key, 'utf8') + 1 + v.length + 1; // " key=value\n"
  let len = body + String(body).length;
  while (len !== body + String(len).length) len = body + String(len).length;
  return Buffer.concat([Buffer.from(`${len} ${key}=`, 'utf8'), v, Buffer.from('\n')]);
}

function ustarHeader(f: HeaderFields, name: string, linkname: string, sizeField: number | bigint): Buffer {
  const h = Buffer.alloc(BLOCK);
  h.write(name, 0, 100, 'latin1');
  octal(h, 100, 8, f.mode & 0o7777);
  octal(h, 108, 8, Math.min(f.uid, MAX_OCTAL_7));
  octal(h, 116, 8, Math.min(f.gid, MAX_OCTAL_7));
  if (typeof sizeField === 'bigint' || sizeField > MAX_OCTAL_11) base256(h, 124, 12, BigInt(sizeField));
  else octal(h, 124, 12, sizeField);
  const mt = f.mtimeSec < 0n ? 0n : f.mtimeSec > BigInt(MAX_OCTAL_11) ? BigInt(MAX_OCTAL_11) : f.mtimeSec;
  octal(h, 136, 12, Number(mt));
  h.write(f.type, 156, 1, 'latin1');
  h.write(linkname, 157, 100, 'latin1');
  h.write('ustar\0', 257, 6, 'latin1');
  h.write('00', 263, 2, 'latin1');
  if (f.type === TYPE.chr || f.type === TYPE.blk) {
    octal(h, 329, 8, Math.min(f.devmajor ?? 0, MAX_OCTAL_7));
    octal(h, 337, 8, Math.min(f.devminor ?? 0, MAX_OCTAL_7));
  }
  h.fill(0x20, 148, 156);
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += h[i];
  h.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 8, 'latin1');
  return h;
}

function pad(n: number): Buffer {
  const r = (BLOCK - (n % BLOCK)) % BLOCK;
  return Buffer.alloc(r);
}

/** Headers (pax extended header when needed, then ustar) for one member. */
export function tarHeader(f: HeaderFields): Buffer {
  const recs: Buffer[] = [];
  const link = f.linkname ?? '';
  let name = f.path;
  let lname = link;
  if (Buffer.byteLength(f.path, 'latin1') > 100 || !isAscii(f.path)) {
    recs.push(paxRecord('path', f.path));
    name = asciiStub(f.path);
  }
  if (Buffer.byteLength(link, 'latin1') > 100 || !isAscii(link)) {
    recs.push(paxRecord('linkpath', link));
    lname = asciiStub(link);
  }
  if (f.size > MAX_OCTAL_11) recs.push(paxRecord('size', String(f.size)));
  if (f.uid > MAX_OCTAL_7) recs.push(paxRecord('uid', String(f.uid)));
  if (f.gid > MAX_OCTAL_7) recs.push(paxRecord('gid', String(f.gid)));
  if (f.mtimeSec < 0n || f.mtimeSec > BigInt(MAX_OCTAL_11)) recs.push(paxRecord('mtime', String(f.mtimeSec)));
  if ((f.devmajor ?? 0) > MAX_OCTAL_7) recs.push(paxRecord('SCHILY.devmajor', String(f.devmajor)));
  if ((f.devminor ?? 0) > MAX_OCTAL_7) recs.push(paxRecord('SCHILY.devminor', String(f.devminor)));
  for (const [k, v] of f.extra ?? []) recs.push(paxRecord(k, v));
  const main = ustarHeader(f, name, lname, f.size);
  if (!recs.length) return main;
  const data = Buffer.concat(recs);
  const base = f.path.replace(/\/+$/, '').split('/').pop() ?? '';
  const paxName = ('PaxHeaders/' + asciiStub(base)).slice(0, 99);
  const ph = ustarHeader({ path: paxName, type: TYPE.pax, mode: 0o644, uid: 0, gid: 0, size: data.length, mtimeSec: f.mtimeSec < 0n ? 0n : f.mtimeSec },
    paxName, '', data.length);
  return Buffer.concat([ph, data, pad(data.length), main]);
}

/**
 * The ustar fallback name for readers that ignore pax: the path itself if it
 * fits, otherwise its last 100 bytes; non-ASCII bytes become '_'.
 */
function asciiStub(p: string): string {
  let s = '';
  for (let i = 0; i < p.length; i++) {
    const c = p.charCodeAt(i);
    s += c > 0x7e || c < 0x20 ? '_' : p[i];
  }
  return s.length > 100 ? s.slice(s.length - 100) : s;
}

/** Regions of non-zero blocks [offset, length], GNU sparse style. */
export function sparseRegions(c: Content): [number, number][] {
  const regions: [number, number][] = [];
  let start = -1;
  for (let i = 0; i <= c.blocks.length; i++) {
    const data = i < c.blocks.length && c.blocks[i] !== 0;
    if (data && start < 0) start = i;
    if (!data && start >= 0) {
      const off = start * BLOCK_SIZE;
      regions.push([off, Math.min(c.size, i * BLOCK_SIZE) - off]);
      start = -1;
    }
  }
  const last = regions[regions.length - 1];
  if (!last || last[0] + last[1] < c.size) regions.push([c.size, 0]);
  return regions;
}

function sparseMapText(regions: [number, number][]): Buffer {
  const lines = [String(regions.length), ...regions.flatMap(([o, l]) => [String(o), String(l)])];
  const text = Buffer.from(lines.join('\n') + '\n', 'latin1');
  return Buffer.concat([text, pad(text.length)]);
}

function mtimeSec(i: Inode): bigint {
  return floorSeconds(i.mtimeNs);
}

function xattrRecords(i: Inode): [string, Buffer][] {
  return i.xattrs.map((x) => [`SCHILY.xattr.${Buffer.from(x.name, 'latin1').toString('utf8')}`, x.value]);
}

/** Write the tree as a tar stream into `out` (no end-of-archive marker). */
export function writeTarEntries(tree: Tree, opts: TarOptions, out: PieceList): string[] {
  const skipped: string[] = [];
  const firstPath = new Map<number, string>(); // inode -> archive path of its first entry
  for (const { path, inode } of tree.walk()) {
    const isRoot = path.length === 0;
    if (isRoot && !opts.includeRoot) continue;
    const rel = path.join('/');
    let archPath = opts.prefix + rel;
    const base = {
      mode: inode.mode, uid: inode.uid, gid: inode.gid, mtimeSec: mtimeSec(inode), size: 0,
      extra: xattrRecords(inode) as [string, Buffer | string][],
    };
    switch (inode.type) {
      case EntryType.Dir:
        if (isRoot) archPath = opts.prefix || './';
        else archPath += '/';
        out.bytes(tarHeader({ ...base, path: archPath, type: TYPE.dir }));
        break;
      case EntryType.Symlink:
        out.bytes(tarHeader({ ...base, path: archPath, type: TYPE.symlink, linkname: inode.target ?? '' }));
        break;
      case EntryType.CharDev:
      case EntryType.BlockDev:
        if (inode.nlink > 1 && firstPath.has(inode.ino)) {
          out.bytes(tarHeader({ ...base, extra: [], path: archPath, type: TYPE.link, linkname: firstPath.get(inode.ino) }));
          break;
        }
        out.bytes(tarHeader({ ...base, path: archPath, type: inode.type === EntryType.CharDev ? TYPE.chr : TYPE.blk,
          devmajor: inode.rdevMajor, devminor: inode.rdevMinor }));
        break;
      case EntryType.Fifo:
        if (inode.nlink > 1 && firstPath.has(inode.ino)) {
          out.bytes(tarHeader({ ...base, extra: [], path: archPath, type: TYPE.link, linkname: firstPath.get(inode.ino) }));
          break;
        }
        out.bytes(tarHeader({ ...base, path: archPath, type: TYPE.fifo }));
        break;
      case EntryType.Socket:
        skipped.push(rel);
        continue;
      case EntryType.File: {
        if (inode.nlink > 1 && firstPath.has(inode.ino)) {
          out.bytes(tarHeader({ ...base, extra: [], path: archPath, type: TYPE.link, linkname: firstPath.get(inode.ino) }));
          break;
        }
        const c = inode.content!;
        if (inode.sparse && c.size > 0) {
          const regions = sparseRegions(c);
          const map = sparseMapText(regions);
          const dataLen = regions.reduce((s, r) => s + r[1], 0);
          const dir = archPath.includes('/') ? archPath.slice(0, archPath.lastIndexOf('/') + 1) : '';
          const leaf = archPath.slice(dir.length);
          out.bytes(tarHeader({
            ...base, path: `${dir}GNUSparseFile.0/${leaf}`, type: TYPE.file, size: map.length + dataLen,
            extra: [
              ['GNU.sparse.major', '1'], ['GNU.sparse.minor', '0'], ['GNU.sparse.name', archPath],
              ['GNU.sparse.realsize', String(c.size)], ...base.extra,
            ],
          }));
          out.bytes(map);
          for (const [off, len] of regions) {
            if (len === 0) continue;
            out.content(c, off / BLOCK_SIZE, Math.ceil((off + len) / BLOCK_SIZE));
          }
          out.bytes(pad(map.length + dataLen));
        } else {
          out.bytes(tarHeader({ ...base, path: archPath, type: TYPE.file, size: c.size }));
          out.content(c);
          out.bytes(pad(c.size));
        }
        break;
      }
    }
    if (inode.nlink > 1 && !firstPath.has(inode.ino)) firstPath.set(inode.ino, archPath);
  }
  return skipped;
}

/** End-of-archive: two zero blocks, then padding to a whole 10 KiB record. */
export function endOfArchive(out: PieceList): void {
  const used = out.size + 2 * BLOCK;
  const rec = (RECORD - (used % RECORD)) % RECORD;
  out.zeros(2 * BLOCK + rec);
}

/** A whole tar archive of the tree. */
export function tarOfTree(tree: Tree, opts: TarOptions): TarResult {
  const pieces = new PieceList();
  const skipped = writeTarEntries(tree, opts, pieces);
  endOfArchive(pieces);
  return { pieces, skipped };
}

/** A tar member holding in-memory bytes (metadata files, manifests...). */
export function tarMemberBytes(out: PieceList, path: string, data: Buffer, mtimeSec: bigint, mode = 0o644): void {
  out.bytes(tarHeader({ path, type: TYPE.file, mode, uid: 0, gid: 0, size: data.length, mtimeSec }));
  out.bytes(data);
  out.bytes(pad(data.length));
}

/** A directory member. */
export function tarMemberDir(out: PieceList, path: string, mtimeSec: bigint, mode = 0o755): void {
  out.bytes(tarHeader({ path: path.endsWith('/') ? path : `${path}/`, type: TYPE.dir, mode, uid: 0, gid: 0, size: 0, mtimeSec }));
}

/** A member whose data is another stream (a compiled recipe of `size` bytes). */
export function tarMemberHeader(out: PieceList, path: string, size: number, mtimeSec: bigint, mode = 0o644): void {
  out.bytes(tarHeader({ path, type: TYPE.file, mode, uid: 0, gid: 0, size, mtimeSec }));
}

export function tarPad(out: PieceList, size: number): void {
  out.bytes(pad(size));
}
