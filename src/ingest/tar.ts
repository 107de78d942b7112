// Tar reader: ustar, GNU (long names, old sparse) and pax (path, size,
// uid/gid, fractional mtime, SCHILY.xattr / LIBARCHIVE.xattr, GNU sparse
// 0.0, 0.1 and 1.0). Builds a Tree and streams file content into the pool.
// Absolute paths and ".." components are refused, never stripped.

import { StreamReader } from '../io/stream-reader';
import { EntryType, Inode, Tree, Xattr, ROOT_INO } from '../tree';
import { PoolWriter, ContentWriter } from '../pool/writer';
import { fileError } from '../util/errors';
import type { Progress } from '../util/progress';

// ---- on-disk constants -------------------------------------------------
const BLOCK = 512;
const T_REG = '0', T_AREG = '\0', T_LINK = '1', T_SYM = '2', T_CHR = '3', T_BLK = '4', T_DIR = '5', T_FIFO = '6', T_CONT = '7';
const T_PAX = 'x', T_PAXG = 'g', T_GNU_LONGNAME = 'L', T_GNU_LONGLINK = 'K', T_GNU_SPARSE = 'S', T_GNU_DUMPDIR = 'D', T_VOLUME = 'V';

/** Largest pax header or GNU long name/link entry read into memory (they hold names and xattrs). */
const META_ENTRY_MAX = 16 * 2 ** 20;
/** Largest (sparse) file size accepted: 2 TiB, as for squashfs input (sparse files cost memory in proportion to their size). */
const MAX_FILE_SIZE = 2 * 2 ** 40;

interface Header {
  name: string;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  mtime: number;
  type: string;
  linkname: string;
  devmajor: number;
  devminor: number;
  gnu: boolean;
  raw: Buffer;
}

function cstr(b: Buffer, o: number, n: number): string {
  const end = b.indexOf(0, o);
  return b.toString('latin1', o, end < 0 || end > o + n ? o + n : end);
}

function numeric(b: Buffer, o: number, n: number, what: string): number {
  if (b[o] & 0x80) {
    // base-256: big-endian two's complement in the remaining bits
    const neg = b[o] === 0xff;
    let v = BigInt(b[o] & 0x7f);
    for (let i = 1; i < n; i++) v = (v << 8n) | BigInt(b[o + i]);
    if (neg) v -= 1n << BigInt(8 * n - 1);
    if (v > BigInt(Number.MAX_SAFE_INTEGER) || v < -BigInt(Number.MAX_SAFE_INTEGER)) throw new Error(`${what} out of range`);
    return Number(v);
  }
  const s = b.toString('latin1', o, o + n).replace(/[\0 ]+$/, '').trim();
  if (s === '') return 0;
  if (!/^[0-7]+$/.test(s)) throw new Error(`bad ${what} field "${s}"`);
  const v = parseInt(s, 8);
  if (!Number.isSafeInteger(v)) throw new Error(`${what} out of range`);
  return v;
}

function checksumOk(b: Buffer): boolean {
  let stored: number;
  try {
    stored = numeric(b, 148, 8, 'checksum');
  } catch {
    return false;
  }
  let unsigned = 0;
  let signed = 0;
  for (let i = 0; i < BLOCK; i++) {
    const c = i >= 148 && i < 156 ? 0x20 : b[i];
    unsigned += c;
    signed += c > 127 ? c - 256 : c;
  }
  return stored === unsigned || stored === signed;
}

function parseHeader(b: Buffer): Header {
  const magic = b.toString('latin1', 257, 263);
  const gnu = magic === 'ustar ';
  let name = cstr(b, 0, 100);
  if (magic === 'ustar\0') {
    const prefix = cstr(b, 345, 155);
    if (prefix) name = `${prefix}/${name}`;
  }
  return {
    name,
    mode: numeric(b, 100, 8, 'mode'),
    uid: numeric(b, 108, 8, 'uid'),
    gid: numeric(b, 116, 8, 'gid'),
    size: numeric(b, 124, 12, 'size'),
    mtime: numeric(b, 136, 12, 'mtime'),
    type: String.fromCharCode(b[156]),
    linkname: cstr(b, 157, 100),
    devmajor: b[329] ? numeric(b, 329, 8, 'devmajor') : 0,
    devminor: b[337] ? numeric(b, 337, 8, 'devminor') : 0,
    gnu,
    raw: b,
  };
}

/** Parse pax records; values stay raw bytes (latin1 strings). */
function parsePax(data: Buffer): Map<string, string> {
  const out = new Map<string, string>();
  let o = 0;
  while (o < data.length) {
    if (data[o] === 0) break;
    const sp = data.indexOf(0x20, o);
    if (sp < 0) throw new Error('bad pax record');
    const len = parseInt(data.toString('latin1', o, sp), 10);
    if (!Number.isInteger(len) || len <= sp - o || o + len > data.length || data[o + len - 1] !== 0x0a) {
      throw new Error('bad pax record length');
    }
    const rec = data.subarray(sp + 1, o + len - 1);
    const eq = rec.indexOf(0x3d);
    if (eq < 0) throw new Error('bad pax record (no =)');
    const key = rec.toString('utf8', 0, eq);
    const value = rec.toString('latin1', eq + 1);
    if (key === 'GNU.sparse.offset' || key === 'GNU.sparse.numbytes') {
      // sparse 0.0 repeats these keys in order: keep them all
      const prev = out.get(key);
      out.set(key, prev === undefined ? value : `${prev},${value}`);
    } else {
      out.set(key, value);
    }
    o += len;
  }
  return out;
}

function paxMtimeNs(v: string): bigint {
  const m = /^(-?)(\d+)(?:\.(\d+))?$/.exec(v);
  if (!m) throw new Error(`bad pax mtime "${v}"`);
  const frac = (m[3] ?? '').slice(0, 9).padEnd(9, '0');
  const ns = BigInt(m[2]) * 1_000_000_000n + BigInt(frac);
  return m[1] ? -ns : ns;
}

function paxInt(v: string, what: string): number {
  if (!/^\d+$/.test(v)) throw new Error(`bad pax ${what} "${v}"`);
  const n = Number(v);
  if (!Number.isSafeInteger(n)) throw new Error(`pax ${what} out of range`);
  return n;
}

/** Validate and split an archive path; [] is the root. */
export function tarPathParts(p: string, archive: string): string[] {
  if (p.startsWith('/')) throw fileError(archive, `refusing absolute path "${p}" in archive`);
  const parts = p.split('/').filter((x) => x !== '' && x !== '.');
  if (parts.includes('..')) throw fileError(archive, `refusing path with ".." in archive: "${p}"`);
  return parts;
}

interface SparseMap {
  realsize: number;
  regions: [number, number][];
}

function sparseFromOldGnu(h: Buffer, extra: Buffer[]): SparseMap {
  const regions: [number, number][] = [];
  const take = (b: Buffer, o: number, n: number) => {
    for (let i = 0; i < n; i++) {
      const off = o + i * 24;
      if (b[off] === 0) return;
      regions.push([numeric(b, off, 12, 'sparse offset'), numeric(b, off + 12, 12, 'sparse size')]);
    }
  };
  take(h, 386, 4);
  for (const e of extra) take(e, 0, 21);
  return { realsize: numeric(h, 483, 12, 'sparse realsize'), regions };
}

export interface TarIngestResult {
  tree: Tree;
  warnings: string[];
}

export async function ingestTar(stream: AsyncIterable<Buffer>, archive: string, pool: PoolWriter, progress?: Progress): Promise<TarIngestResult> {
  const r = new StreamReader(stream);
  const tree = new Tree();
  const warnings: string[] = [];
  const byPath = new Map<string, number>(); // normalized path -> ino (for hard links)
  let global = new Map<string, string>();
  let pax = new Map<string, string>();
  let longName: string | undefined;
  let longLink: string | undefined;
  let sawRoot = false;
  let entries = 0;
  let reported = 0;

  const fail = (msg: string): never => { throw fileError(archive, msg); };

  for (;;) {
    const hb = await r.read(BLOCK);
    if (hb.length === 0) {
      if (entries === 0) fail('empty archive (not a tar file?)');
      warnings.push(`${archive}: archive ends without the end-of-archive marker`);
      break;
    }
    if (hb.length < BLOCK) fail(`truncated tar header at offset ${r.consumed - hb.length}`);
    if (hb.every((x) => x === 0)) break; // end of archive (one zero block is enough for us)
    if (!checksumOk(hb)) fail(entries === 0 ? 'not a tar archive (bad header checksum)' : `corrupt tar header at offset ${r.consumed - BLOCK}`);
    let h: Header;
    try {
      h = parseHeader(hb);
    } catch (e) {
      return fail(`corrupt tar header at offset ${r.consumed - BLOCK} (${(e as Error).message})`);
    }
    entries++;
    const readData = async (n: number) => {
      if (n > META_ENTRY_MAX) fail(`${h.type === T_VOLUME ? 'volume' : 'metadata'} entry of ${n} bytes at offset ${r.consumed - BLOCK} (at most ${META_ENTRY_MAX})`);
      const d = await r.read(n);
      if (d.length < n) fail('truncated tar archive (entry data ends early)');
      await r.skip((BLOCK - (n % BLOCK)) % BLOCK);
      return d;
    };
    switch (h.type) {
      case T_PAX:
        try { pax = parsePax(await readData(h.size)); } catch (e) { fail((e as Error).message); }
        continue;
      case T_PAXG:
        try { global = new Map([...global, ...parsePax(await readData(h.size))]); } catch (e) { fail((e as Error).message); }
        continue;
      case T_GNU_LONGNAME:
        longName = cstr(await readData(h.size), 0, h.size);
        continue;
      case T_GNU_LONGLINK:
        longLink = cstr(await readData(h.size), 0, h.size);
        continue;
      case T_VOLUME:
        await r.skip(h.size + ((BLOCK - (h.size % BLOCK)) % BLOCK));
        continue;
    }
    const attrs = new Map([...global, ...pax]);
    pax = new Map();
    let path = attrs.get('path') ?? longName ?? h.name;
    const link = attrs.get('linkpath') ?? longLink ?? h.linkname;
    longName = longLink = undefined;
    let size = attrs.has('size') ? paxInt(attrs.get('size')!, 'size') : h.size;
    const uid = attrs.has('uid') ? paxInt(attrs.get('uid')!, 'uid') : h.uid;
    const gid = attrs.has('gid') ? paxInt(attrs.get('gid')!, 'gid') : h.gid;
    let mtimeNs: bigint;
    try {
      mtimeNs = attrs.has('mtime') ? paxMtimeNs(attrs.get('mtime')!) : BigInt(h.mtime) * 1_000_000_000n;
    } catch (e) {
      return fail((e as Error).message);
    }
    const xattrs: Xattr[] = [];
    for (const [k, v] of attrs) {
      if (k.startsWith('SCHILY.xattr.')) {
        xattrs.push({ name: Buffer.from(k.slice(13), 'utf8').toString('latin1'), value: Buffer.from(v, 'latin1') });
      } else if (k.startsWith('LIBARCHIVE.xattr.')) {
        const name = Buffer.from(decodeURIComponent(k.slice(17)), 'utf8').toString('latin1');
        if (!xattrs.some((x) => x.name === name)) xattrs.push({ name, value: Buffer.from(v, 'base64') });
      }
    }
    xattrs.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    let sparse: SparseMap | undefined;
    if (h.type === T_GNU_SPARSE) {
      const ext: Buffer[] = [];
      let more = hb[482] !== 0;
      while (more) {
        const e = await r.read(BLOCK);
        if (e.length < BLOCK) fail('truncated GNU sparse header');
        ext.push(e);
        more = e[504] !== 0;
      }
      sparse = sparseFromOldGnu(hb, ext);
    } else if (attrs.has('GNU.sparse.major') && attrs.get('GNU.sparse.major') === '1') {
      if (attrs.has('GNU.sparse.name')) path = attrs.get('GNU.sparse.name')!;
      sparse = { realsize: paxInt(attrs.get('GNU.sparse.realsize') ?? '0', 'sparse realsize'), regions: [] }; // map in data
    } else if (attrs.has('GNU.sparse.map') || attrs.has('GNU.sparse.offset')) {
      if (attrs.has('GNU.sparse.name')) path = attrs.get('GNU.sparse.name')!;
      const realsize = paxInt(attrs.get('GNU.sparse.realsize') ?? attrs.get('GNU.sparse.size') ?? '0', 'sparse realsize');
      const nums = attrs.has('GNU.sparse.map')
        ? attrs.get('GNU.sparse.map')!.split(',')
        : attrs.get('GNU.sparse.offset')!.split(',').flatMap((o, i) => [o, attrs.get('GNU.sparse.numbytes')!.split(',')[i]]);
      const regions: [number, number][] = [];
      for (let i = 0; i + 1 < nums.length; i += 2) regions.push([paxInt(nums[i], 'sparse map'), paxInt(nums[i + 1], 'sparse map')]);
      sparse = { realsize, regions };
    }
    const parts = tarPathParts(path, archive);
    const key = parts.join('/');
    const fields = {
      mode: h.mode & 0o7777, uid, gid, mtimeNs, rdevMajor: 0, rdevMinor: 0, xattrs, sparse: false,
    };
    let dataLeft = h.type === T_DIR || h.type === T_SYM || h.type === T_LINK || h.type === T_CHR || h.type === T_BLK || h.type === T_FIFO ? 0 : size;

    if (h.type === T_DIR || h.type === T_GNU_DUMPDIR) {
      if (parts.length === 0) {
        Object.assign(tree.root, fields);
        sawRoot = true;
      } else {
        const parent = tree.ensureDir(parts.slice(0, -1));
        const existing = tree.children(parent).get(parts[parts.length - 1]);
        if (existing !== undefined && tree.inodes.get(existing)!.type === EntryType.Dir) {
          Object.assign(tree.inodes.get(existing)!, fields);
        } else {
          const d = tree.newInode({ ...fields, type: EntryType.Dir });
          tree.link(parent, parts[parts.length - 1], d.ino);
          byPath.set(key, d.ino);
        }
      }
      await r.skip(dataLeft + ((BLOCK - (dataLeft % BLOCK)) % BLOCK));
      continue;
    }
    if (parts.length === 0) fail(`entry "${path}" names the archive root but is not a directory`);
    const parent = tree.ensureDir(parts.slice(0, -1));
    const leaf = parts[parts.length - 1];
    if (h.type === T_LINK) {
      const target = byPath.get(tarPathParts(link, archive).join('/'));
      if (target === undefined || !tree.inodes.has(target)) fail(`hard link "${path}" points to "${link}", which is not earlier in the archive`);
      if (tree.inodes.get(target!)!.type === EntryType.Dir) fail(`hard link "${path}" points to a directory`);
      tree.link(parent, leaf, target!);
      byPath.set(key, target!);
      // A hard link entry may carry data (pax archives from some tools): skip it.
      await r.skip(size + ((BLOCK - (size % BLOCK)) % BLOCK));
      continue;
    }
    let inode: Inode;
    switch (h.type) {
      case T_SYM:
        inode = tree.newInode({ ...fields, type: EntryType.Symlink, target: link });
        break;
      case T_CHR:
      case T_BLK: {
        const maj = attrs.has('SCHILY.devmajor') ? paxInt(attrs.get('SCHILY.devmajor')!, 'devmajor') : h.devmajor;
        const min = attrs.has('SCHILY.devminor') ? paxInt(attrs.get('SCHILY.devminor')!, 'devminor') : h.devminor;
        inode = tree.newInode({ ...fields, type: h.type === T_CHR ? EntryType.CharDev : EntryType.BlockDev, rdevMajor: maj, rdevMinor: min });
        break;
      }
      case T_FIFO:
        inode = tree.newInode({ ...fields, type: EntryType.Fifo });
        break;
      default: {
        if (h.type !== T_REG && h.type !== T_AREG && h.type !== T_CONT && h.type !== T_GNU_SPARSE) {
          warnings.push(`${archive}: entry "${path}" has unknown type '${h.type}', stored as a regular file`);
        }
        const w = pool.file();
        let consumed = 0;
        if (sparse) {
          if (sparse.regions.length === 0 && attrs.get('GNU.sparse.major') === '1') {
            // sparse 1.0: the map is at the start of the data, in decimal lines, padded to 512
            const lines: number[] = [];
            let text = '';
            let need = -1;
            while (need < 0 || lines.length < 1 + 2 * need) {
              const blk = await r.read(BLOCK);
              if (blk.length < BLOCK) fail('truncated GNU sparse map');
              consumed += BLOCK;
              text += blk.toString('latin1');
              const all = text.split('\n');
              text = all.pop()!;
              for (const l of all) {
                if (need >= 0 && lines.length >= 1 + 2 * need) break;
                lines.push(paxInt(l, 'sparse map'));
                if (lines.length === 1) need = lines[0];
              }
            }
            for (let i = 0; i < need; i++) sparse.regions.push([lines[1 + 2 * i], lines[2 + 2 * i]]);
          }
          if (sparse.realsize > MAX_FILE_SIZE) fail(`sparse file "${path}" of ${sparse.realsize} bytes (at most ${MAX_FILE_SIZE})`);
          for (const [off, len] of sparse.regions) {
            if (off < w.position) fail(`sparse map of "${path}" goes backwards`);
            // checked before the hole is made: the map's numbers size the file
            if (off + len > sparse.realsize) fail(`sparse map of "${path}" reaches ${off + len}, beyond its size ${sparse.realsize}`);
            await w.skip(off - w.position);
            await pipeData(r, w, len, archive);
            consumed += len;
          }
          if (consumed > size) fail(`sparse data of "${path}" is longer than its entry`);
          await r.skip(size - consumed);
          size = sparse.realsize;
        } else {
          await pipeData(r, w, size, archive);
          consumed = size;
        }
        await r.skip((BLOCK - (dataLeft % BLOCK)) % BLOCK);
        dataLeft = 0;
        const content = await w.end(size);
        inode = tree.newInode({ ...fields, type: EntryType.File, content, sparse: !!sparse });
        progress?.add(r.consumed - reported);
        reported = r.consumed;
      }
    }
    if (dataLeft > 0) await r.skip(dataLeft + ((BLOCK - (dataLeft % BLOCK)) % BLOCK));
    tree.link(parent, leaf, inode.ino);
    byPath.set(key, inode.ino);
  }
  if (!sawRoot) Object.assign(tree.root, { mode: 0o755 });
  await r.drain();
  void ROOT_INO;
  return { tree, warnings };
}

async function pipeData(r: StreamReader, w: ContentWriter, n: number, archive: string): Promise<void> {
  let left = n;
  while (left > 0) {
    const b = await r.readSome(Math.min(left, 1 << 20));
    if (b.length === 0) throw fileError(archive, 'truncated tar archive (file data ends early)');
    await w.write(b);
    left -= b.length;
  }
}
