// squashfs 4.0 reader: superblock, id table, fragment table, xattr table,
// inode and directory tables, and file data (with sparse blocks and tail
// fragments). It reads straight from a ByteSource (a file, or the squashfs
// inside an ISO), builds a Tree and streams every file's bytes into the pool.
// Every codec squashfs knows is supported (gzip via zlib, the rest natively).

import { LRUCache } from 'lru-cache';
import { ByteSource, preadFully } from '../io/source';
import { decompressorFor, Decompressor, CODEC_NAMES } from './decompress';
import { EntryType, Inode, Tree, Xattr, ROOT_INO } from '../tree';
import { PoolWriter } from '../pool/writer';
import { fileError } from '../util/errors';
import type { Progress } from '../util/progress';

import {
  DATA_UNCOMPRESSED, decodeRdev, META_UNCOMPRESSED, METADATA_SIZE, NO_FRAGMENT, NO_TABLE, NO_XATTR,
  parseSuperblock, SQUASHFS_MAGIC, SquashfsSuperblock, SUPERBLOCK_SIZE, T_BLKDEV, T_CHRDEV, T_DIR, T_FIFO, T_LBLKDEV,
  T_LCHRDEV, T_LDIR, T_LFIFO, T_LREG, T_LSOCKET, T_LSYMLINK, T_REG, T_SOCKET, T_SYMLINK, XATTR_PREFIXES, XATTR_VALUE_OOL,
} from '../formats/squashfs/constants';

/** Cheap check: does this source start with a squashfs 4.0 superblock? */
export async function looksLikeSquashfs(src: ByteSource): Promise<boolean> {
  if (src.size < SUPERBLOCK_SIZE) return false;
  const b = Buffer.alloc(4);
  await src.pread(b, 0);
  return b.readUInt32LE(0) === SQUASHFS_MAGIC;
}

/** Longest entry name (SQUASHFS_NAME_LEN), symlink target (Linux: a page) and xattr value (XATTR_SIZE_MAX). */
const NAME_MAX = 256;
const SYMLINK_MAX = 65536;
const XATTR_VALUE_MAX = 65536;
/** Block sizes read from the inode table at a time (a file's list is read as it is present, never sized by fileSize alone). */
const SIZES_CHUNK = 2048;
/** Largest file accepted: 2 TiB (the largest disk uniso makes); sparse files cost memory in proportion to their size. */
export const MAX_FILE_SIZE = 2 * 2 ** 40;

interface RawInode {
  type: number;
  mode: number;
  uid: number;
  gid: number;
  mtime: number;
  number: number;
  nlink: number;
  xattr: number;
  // dir
  dirStart?: number;
  dirOffset?: number;
  dirSize?: number;
  // file
  fileSize?: number;
  blocksStart?: number;
  blockSizes?: Uint32Array;
  fragment?: number;
  fragOffset?: number;
  // symlink
  target?: Buffer;
  // dev
  rdev?: number;
}

export class SquashfsReader {
  readonly sb: SquashfsSuperblock;
  private readonly decompress: Decompressor;
  private readonly metaCache = new LRUCache<number, { data: Buffer; next: number }>({ max: 4096 });
  private readonly fragCache = new LRUCache<number, Buffer>({ max: 16 });
  private ids: number[] = [];
  private fragTable: { start: number; size: number }[] = [];
  private xattrTableStart = 0;
  private xattrIds: { ref: bigint; count: number }[] = [];
  private readonly inodeTableStart: number;
  private readonly dirTableStart: number;

  private constructor(private readonly src: ByteSource, readonly name: string, sb: SquashfsSuperblock) {
    this.sb = sb;
    this.decompress = decompressorFor(sb.compression);
    this.inodeTableStart = Number(sb.inode_table_start);
    this.dirTableStart = Number(sb.directory_table_start);
  }

  static async open(src: ByteSource, name: string): Promise<SquashfsReader> {
    if (src.size < SUPERBLOCK_SIZE) throw fileError(name, 'not a squashfs image (too small)');
    const b = Buffer.alloc(SUPERBLOCK_SIZE);
    await preadFully(src, b, 0, name);
    const sb = parseSuperblock(b);
    if (sb.s_magic !== SQUASHFS_MAGIC) throw fileError(name, 'not a squashfs image (bad magic)');
    if (sb.s_major !== 4 || sb.s_minor !== 0) throw fileError(name, `unsupported squashfs version ${sb.s_major}.${sb.s_minor}`);
    if (!(sb.compression in CODEC_NAMES)) throw fileError(name, `unknown squashfs compression id ${sb.compression}`);
    if (sb.block_size !== 1 << sb.block_log || sb.block_size < 4096 || sb.block_size > 1 << 20) {
      throw fileError(name, `corrupt squashfs superblock (block size ${sb.block_size})`);
    }
    if (sb.bytes_used > BigInt(src.size)) {
      throw fileError(name, `truncated squashfs: superblock says ${sb.bytes_used} bytes, only ${src.size} present`);
    }
    const tables = [sb.inode_table_start, sb.directory_table_start, sb.id_table_start];
    if (tables.some((t) => t >= sb.bytes_used) || sb.inode_table_start >= sb.directory_table_start) {
      throw fileError(name, 'corrupt squashfs superblock (table offsets out of range)');
    }
    let r: SquashfsReader;
    try {
      r = new SquashfsReader(src, name, sb);
    } catch (e) {
      throw fileError(name, (e as Error).message);
    }
    await r.wrap('id table', () => r.loadIds());
    await r.wrap('fragment table', () => r.loadFragments());
    await r.wrap('xattr table', () => r.loadXattrIds());
    return r;
  }

  private async wrap<T>(what: string, f: () => Promise<T>): Promise<T> {
    try {
      return await f();
    } catch (e) {
      if ((e as Error).name === 'UserError') throw e;
      throw fileError(this.name, `corrupt squashfs ${what} (${(e as Error).message})`);
    }
  }

  /** Bytes read from the image so far (for progress). */
  bytesRead = 0;

  private async read(offset: number, len: number): Promise<Buffer> {
    // checked before the buffer is sized by a length field
    if (len < 0 || offset + len > Number(this.sb.bytes_used)) throw new Error(`read beyond bytes_used at ${offset}`);
    this.bytesRead += len;
    const b = Buffer.allocUnsafe(len);
    await preadFully(this.src, b, offset, this.name);
    return b;
  }

  /** One metadata block at absolute `pos`: its bytes and the position of the next block. */
  private async metaBlock(pos: number): Promise<{ data: Buffer; next: number }> {
    const hit = this.metaCache.get(pos);
    if (hit) return hit;
    const h = await this.read(pos, 2);
    const word = h.readUInt16LE(0);
    const len = word & 0x7fff;
    if (len === 0 || len > METADATA_SIZE) throw new Error(`bad metadata block header at ${pos}`);
    const raw = await this.read(pos + 2, len);
    const data = word & META_UNCOMPRESSED ? raw : await this.decompress(raw, METADATA_SIZE);
    const entry = { data, next: pos + 2 + len };
    this.metaCache.set(pos, entry);
    return entry;
  }

  /** Read `len` bytes of a metadata table starting at block `pos`, byte `off`. */
  private async metaRead(pos: number, off: number, len: number): Promise<{ buf: Buffer; pos: number; off: number }> {
    const out = Buffer.allocUnsafe(len);
    let done = 0;
    while (done < len) {
      const blk = await this.metaBlock(pos);
      if (off >= blk.data.length) {
        off -= blk.data.length;
        pos = blk.next;
        continue;
      }
      const n = Math.min(len - done, blk.data.length - off);
      blk.data.copy(out, done, off, off + n);
      done += n;
      off += n;
      if (off === blk.data.length && done < len) {
        pos = blk.next;
        off = 0;
      }
    }
    return { buf: out, pos, off };
  }

  /** A table made of metadata blocks whose absolute positions are listed at `indexStart`. */
  private async indexedTable(indexStart: bigint, entries: number, entrySize: number): Promise<Buffer> {
    const bytes = entries * entrySize;
    const nblocks = Math.ceil(bytes / METADATA_SIZE);
    const idx = await this.read(Number(indexStart), nblocks * 8);
    const parts: Buffer[] = [];
    for (let i = 0; i < nblocks; i++) parts.push((await this.metaBlock(Number(idx.readBigUInt64LE(i * 8)))).data);
    const all = Buffer.concat(parts);
    if (all.length < bytes) throw new Error('table shorter than its entry count');
    return all;
  }

  private async loadIds(): Promise<void> {
    const t = await this.indexedTable(this.sb.id_table_start, this.sb.no_ids, 4);
    for (let i = 0; i < this.sb.no_ids; i++) this.ids.push(t.readUInt32LE(i * 4));
  }

  private async loadFragments(): Promise<void> {
    if (this.sb.fragments === 0 || this.sb.fragment_table_start === NO_TABLE) return;
    const t = await this.indexedTable(this.sb.fragment_table_start, this.sb.fragments, 16);
    for (let i = 0; i < this.sb.fragments; i++) {
      this.fragTable.push({ start: Number(t.readBigUInt64LE(i * 16)), size: t.readUInt32LE(i * 16 + 8) });
    }
  }

  private async loadXattrIds(): Promise<void> {
    if (this.sb.xattr_id_table_start === NO_TABLE) return;
    const h = await this.read(Number(this.sb.xattr_id_table_start), 16);
    this.xattrTableStart = Number(h.readBigUInt64LE(0));
    const n = h.readUInt32LE(8);
    if (n === 0) return;
    const t = await this.indexedTable(this.sb.xattr_id_table_start + 16n, n, 16);
    for (let i = 0; i < n; i++) {
      this.xattrIds.push({ ref: t.readBigUInt64LE(i * 16), count: t.readUInt32LE(i * 16 + 8) });
    }
  }

  private id(idx: number): number {
    if (idx >= this.ids.length) throw new Error(`uid/gid index ${idx} out of range`);
    return this.ids[idx];
  }

  async xattrs(index: number): Promise<Xattr[]> {
    if (index === NO_XATTR) return [];
    const e = this.xattrIds[index];
    if (!e) throw new Error(`xattr index ${index} out of range`);
    let pos = this.xattrTableStart + Number(e.ref >> 16n);
    let off = Number(e.ref & 0xffffn);
    const out: Xattr[] = [];
    for (let i = 0; i < e.count; i++) {
      let r = await this.metaRead(pos, off, 4);
      const type = r.buf.readUInt16LE(0);
      const nameLen = r.buf.readUInt16LE(2);
      r = await this.metaRead(r.pos, r.off, nameLen);
      const prefix = XATTR_PREFIXES[type & 0xff];
      if (prefix === undefined) throw new Error(`unknown xattr type ${type}`);
      const name = prefix + r.buf.toString('latin1');
      r = await this.metaRead(r.pos, r.off, 4);
      let vlen = r.buf.readUInt32LE(0);
      if (type & XATTR_VALUE_OOL ? vlen !== 8 : vlen > XATTR_VALUE_MAX) throw new Error(`xattr value of ${vlen} bytes`);
      r = await this.metaRead(r.pos, r.off, vlen);
      let value = r.buf;
      pos = r.pos;
      off = r.off;
      if (type & XATTR_VALUE_OOL) {
        const ref = value.readBigUInt64LE(0);
        const v = await this.metaRead(this.xattrTableStart + Number(ref >> 16n), Number(ref & 0xffffn), 4);
        vlen = v.buf.readUInt32LE(0);
        if (vlen > XATTR_VALUE_MAX) throw new Error(`xattr value of ${vlen} bytes`);
        value = (await this.metaRead(v.pos, v.off, vlen)).buf;
      }
      out.push({ name, value: Buffer.from(value) });
    }
    return out.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }

  async inode(ref: bigint): Promise<RawInode> {
    const pos = this.inodeTableStart + Number(ref >> 16n);
    const off = Number(ref & 0xffffn);
    let r = await this.metaRead(pos, off, 16);
    const h = r.buf;
    const ino: RawInode = {
      type: h.readUInt16LE(0), mode: h.readUInt16LE(2), uid: this.id(h.readUInt16LE(4)), gid: this.id(h.readUInt16LE(6)),
      mtime: h.readUInt32LE(8), number: h.readUInt32LE(12), nlink: 1, xattr: NO_XATTR,
    };
    const more = async (n: number) => {
      r = await this.metaRead(r.pos, r.off, n);
      return r.buf;
    };
    const bs = this.sb.block_size;
    const blockCount = (size: number, frag: number) => (frag === NO_FRAGMENT ? Math.ceil(size / bs) : Math.floor(size / bs));
    const readSizes = async (size: number, frag: number) => {
      if (size > MAX_FILE_SIZE) throw new Error(`file of ${size} bytes (more than uniso's limit of ${MAX_FILE_SIZE})`);
      const n = blockCount(size, frag);
      // a chunk at a time: a lying size runs out of metadata before it costs memory
      const parts: Buffer[] = [];
      for (let done = 0; done < n; done += SIZES_CHUNK) parts.push(Buffer.from(await more(Math.min(SIZES_CHUNK, n - done) * 4)));
      const b = Buffer.concat(parts);
      const s = new Uint32Array(n);
      for (let i = 0; i < n; i++) s[i] = b.readUInt32LE(i * 4);
      return s;
    };
    switch (ino.type) {
      case T_DIR: {
        const b = await more(16);
        ino.dirStart = b.readUInt32LE(0); ino.nlink = b.readUInt32LE(4);
        ino.dirSize = b.readUInt16LE(8); ino.dirOffset = b.readUInt16LE(10);
        break;
      }
      case T_LDIR: {
        const b = await more(24);
        ino.nlink = b.readUInt32LE(0); ino.dirSize = b.readUInt32LE(4); ino.dirStart = b.readUInt32LE(8);
        ino.dirOffset = b.readUInt16LE(18); ino.xattr = b.readUInt32LE(20);
        break; // directory index entries follow; we read directories linearly and skip them
      }
      case T_REG: {
        const b = await more(16);
        ino.blocksStart = b.readUInt32LE(0); ino.fragment = b.readUInt32LE(4);
        ino.fragOffset = b.readUInt32LE(8); ino.fileSize = b.readUInt32LE(12);
        ino.blockSizes = await readSizes(ino.fileSize, ino.fragment);
        break;
      }
      case T_LREG: {
        const b = await more(40);
        ino.blocksStart = Number(b.readBigUInt64LE(0)); ino.fileSize = Number(b.readBigUInt64LE(8));
        ino.nlink = b.readUInt32LE(24); ino.fragment = b.readUInt32LE(28); ino.fragOffset = b.readUInt32LE(32);
        ino.xattr = b.readUInt32LE(36);
        if (!Number.isSafeInteger(ino.fileSize)) throw new Error('file size beyond 2^53');
        ino.blockSizes = await readSizes(ino.fileSize, ino.fragment);
        break;
      }
      case T_SYMLINK:
      case T_LSYMLINK: {
        const b = await more(8);
        ino.nlink = b.readUInt32LE(0);
        const targetLen = b.readUInt32LE(4);
        if (targetLen > SYMLINK_MAX) throw new Error(`symlink target of ${targetLen} bytes`);
        ino.target = Buffer.from(await more(targetLen));
        if (ino.type === T_LSYMLINK) ino.xattr = (await more(4)).readUInt32LE(0);
        break;
      }
      case T_BLKDEV: case T_CHRDEV: case T_LBLKDEV: case T_LCHRDEV: {
        const b = await more(8);
        ino.nlink = b.readUInt32LE(0); ino.rdev = b.readUInt32LE(4);
        if (ino.type >= T_LDIR) ino.xattr = (await more(4)).readUInt32LE(0);
        break;
      }
      case T_FIFO: case T_SOCKET: case T_LFIFO: case T_LSOCKET: {
        ino.nlink = (await more(4)).readUInt32LE(0);
        if (ino.type >= T_LDIR) ino.xattr = (await more(4)).readUInt32LE(0);
        break;
      }
      default:
        throw new Error(`unknown inode type ${ino.type}`);
    }
    return ino;
  }

  /** Entries of a directory inode: [name bytes, inode ref]. */
  async readdir(dir: RawInode): Promise<{ name: Buffer; ref: bigint }[]> {
    const out: { name: Buffer; ref: bigint }[] = [];
    let left = (dir.dirSize ?? 3) - 3;
    if (left <= 0) return out;
    let r = await this.metaRead(this.dirTableStart + dir.dirStart!, dir.dirOffset!, 12);
    for (;;) {
      const count = r.buf.readUInt32LE(0) + 1;
      const start = r.buf.readUInt32LE(4);
      left -= 12;
      for (let i = 0; i < count; i++) {
        r = await this.metaRead(r.pos, r.off, 8);
        const offset = r.buf.readUInt16LE(0);
        const nameLen = r.buf.readUInt16LE(6) + 1;
        if (nameLen > NAME_MAX) throw new Error(`directory entry name of ${nameLen} bytes`);
        r = await this.metaRead(r.pos, r.off, nameLen);
        out.push({ name: Buffer.from(r.buf), ref: (BigInt(start) << 16n) | BigInt(offset) });
        left -= 8 + nameLen;
      }
      if (left <= 0) break;
      r = await this.metaRead(r.pos, r.off, 12);
    }
    if (left < 0) throw new Error('directory listing overruns its size');
    return out;
  }

  private async fragment(index: number): Promise<Buffer> {
    const hit = this.fragCache.get(index);
    if (hit) return hit;
    const f = this.fragTable[index];
    if (!f) throw new Error(`fragment ${index} out of range`);
    const len = (f.size & ~DATA_UNCOMPRESSED) >>> 0;
    if (len > this.sb.block_size) throw new Error(`fragment ${index} of ${len} bytes on disk (block size ${this.sb.block_size})`);
    const raw = await this.read(f.start, len);
    const data = f.size & DATA_UNCOMPRESSED ? raw : await this.decompress(raw, this.sb.block_size);
    this.fragCache.set(index, data);
    return data;
  }

  /** Stream a regular file's bytes into `sink` (holes as skips). */
  async readFile(ino: RawInode, sink: { write(b: Buffer): Promise<void>; skip(n: number): Promise<void> }): Promise<void> {
    const bs = this.sb.block_size;
    const size = ino.fileSize!;
    const sizes = ino.blockSizes!;
    let pos = ino.blocksStart!;
    const jobs: (Promise<Buffer> | number)[] = [];
    const WINDOW = 8;
    let next = 0;
    let remaining = size;
    const launch = () => {
      const i = jobs.length;
      const w = sizes[i];
      // unsigned: bit 31 set would make it negative; a stored block is never larger than the block size
      const len = (w & ~DATA_UNCOMPRESSED) >>> 0;
      if (len > bs) throw new Error(`data block ${i} of ${len} bytes on disk (block size ${bs})`);
      const expect = Math.min(bs, size - i * bs);
      if (len === 0) {
        jobs.push(expect); // sparse block
        return;
      }
      const at = pos;
      pos += len;
      const p = this.read(at, len).then((raw) => (w & DATA_UNCOMPRESSED ? raw : this.decompress(raw, bs))).then((b) => {
        if (b.length !== expect) throw new Error(`data block ${i} has ${b.length} bytes, expected ${expect}`);
        return b;
      });
      p.catch(() => { /* reported when awaited in order */ });
      jobs.push(p);
    };
    while (jobs.length < Math.min(WINDOW, sizes.length)) launch();
    for (; next < sizes.length; next++) {
      const j = jobs[next];
      if (typeof j === 'number') await sink.skip(j);
      else await sink.write(await j);
      remaining -= Math.min(bs, size - next * bs);
      jobs[next] = 0;
      if (jobs.length < sizes.length) launch();
    }
    if (remaining > 0) {
      if (ino.fragment === NO_FRAGMENT) throw new Error('file is shorter than its size');
      const frag = await this.fragment(ino.fragment!);
      const off = ino.fragOffset!;
      if (off + remaining > frag.length) throw new Error('tail fragment out of range');
      await sink.write(frag.subarray(off, off + remaining));
    }
  }

  /** Walk the whole image into a Tree, storing file content in `pool`. */
  async ingest(pool: PoolWriter, progress?: Progress): Promise<Tree> {
    return this.wrap('filesystem', () => this.ingestInner(pool, progress));
  }

  private async ingestInner(pool: PoolWriter, progress?: Progress): Promise<Tree> {
    const rootRaw = await this.inode(this.sb.root_inode);
    if (rootRaw.type !== T_DIR && rootRaw.type !== T_LDIR) throw new Error('root inode is not a directory');
    const tree = new Tree(rootRaw.mode & 0o7777, BigInt(rootRaw.mtime) * 1_000_000_000n);
    Object.assign(tree.root, { uid: rootRaw.uid, gid: rootRaw.gid, xattrs: await this.xattrs(rootRaw.xattr) });
    const seen = new Map<number, number>(); // squashfs inode number -> tree ino
    const visitedDirs = new Set<number>([rootRaw.number]);
    let reported = 0;
    // Depth-first in name order (the order tar views list entries), so pool
    // blocks are laid out in the order views read them.
    const visit = async (raw: RawInode, dirIno: number, depth: number): Promise<void> => {
      if (depth > 4096) throw new Error('directory nesting too deep (loop?)');
      for (const ent of await this.readdir(raw)) {
        const name = ent.name.toString('latin1');
        if (name === '.' || name === '..' || name.includes('/') || name === '') throw new Error(`bad entry name "${name}"`);
        const r = await this.inode(ent.ref);
        const known = seen.get(r.number);
        if (known !== undefined) {
          if (r.type === T_DIR || r.type === T_LDIR) throw new Error('directory hard link (loop)');
          tree.link(dirIno, name, known);
          continue;
        }
        const type = entryTypeOf(r.type);
        const base = {
          type, mode: r.mode & 0o7777, uid: r.uid, gid: r.gid, mtimeNs: BigInt(r.mtime) * 1_000_000_000n,
          rdevMajor: 0, rdevMinor: 0, xattrs: await this.xattrs(r.xattr), sparse: false,
        };
        let inode: Inode;
        switch (type) {
          case EntryType.Dir:
            if (visitedDirs.has(r.number)) throw new Error('directory loop');
            visitedDirs.add(r.number);
            inode = tree.newInode(base);
            tree.link(dirIno, name, inode.ino);
            seen.set(r.number, inode.ino);
            await visit(r, inode.ino, depth + 1);
            continue;
          case EntryType.File: {
            const w = pool.file();
            await this.readFile(r, w);
            const content = await w.end(r.fileSize!);
            const sparse = r.blockSizes!.some((s) => (s & ~DATA_UNCOMPRESSED) === 0);
            inode = tree.newInode({ ...base, content, sparse });
            progress?.add(this.bytesRead - reported);
            reported = this.bytesRead;
            break;
          }
          case EntryType.Symlink:
            inode = tree.newInode({ ...base, target: r.target!.toString('latin1') });
            break;
          case EntryType.CharDev:
          case EntryType.BlockDev: {
            const { major, minor } = decodeRdev(r.rdev!);
            inode = tree.newInode({ ...base, rdevMajor: major, rdevMinor: minor });
            break;
          }
          default:
            inode = tree.newInode(base);
        }
        tree.link(dirIno, name, inode.ino);
        seen.set(r.number, inode.ino);
      }
    };
    await visit(rootRaw, ROOT_INO, 0);
    return tree;
  }
}

function entryTypeOf(t: number): EntryType {
  switch (t) {
    case T_DIR: case T_LDIR: return EntryType.Dir;
    case T_REG: case T_LREG: return EntryType.File;
    case T_SYMLINK: case T_LSYMLINK: return EntryType.Symlink;
    case T_BLKDEV: case T_LBLKDEV: return EntryType.BlockDev;
    case T_CHRDEV: case T_LCHRDEV: return EntryType.CharDev;
    case T_FIFO: case T_LFIFO: return EntryType.Fifo;
    case T_SOCKET: case T_LSOCKET: return EntryType.Socket;
    default: throw new Error(`unknown inode type ${t}`);
  }
}
