// Directory ingest: a physical walk (symlinks are not followed) with
// lstat (ns mtimes), raw byte names, hard links by (dev, ino), device
// numbers, sockets, sparse detection (allocated < size) and extended
// attributes (one `getfattr -R` run, since Node has no xattr API).

import * as fs from 'node:fs';
import { spawn } from 'node:child_process';
import { EntryType, Inode, NO_XATTRS, Tree, Xattr, ROOT_INO } from '../tree';
import { PoolWriter, ContentWriter } from '../pool/writer';
import { native } from '../native';
import { fileError, describeErrno } from '../util/errors';
import type { Progress } from '../util/progress';

const READ_CHUNK = 1 << 20;

function unescapeGetfattr(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
}

/** All extended attributes under `root`, keyed by absolute path (latin1 bytes). */
async function readXattrs(root: string): Promise<Map<string, Xattr[]>> {
  const out = new Map<string, Xattr[]>();
  const child = spawn('getfattr', ['-R', '-h', '-d', '-m', '-', '-e', 'hex', '--absolute-names', root], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const chunks: Buffer[] = [];
  let err = '';
  child.stdout.on('data', (c: Buffer) => chunks.push(c));
  child.stderr.on('data', (c: Buffer) => { err += c.toString(); });
  const code: number = await new Promise((resolve, reject) => {
    child.on('error', (e) => reject(new Error(`cannot run getfattr (install the "attr" package): ${e.message}`)));
    child.on('close', (c) => resolve(c ?? 1));
  });
  if (code !== 0 && chunks.length === 0 && err.trim()) throw new Error(`getfattr failed: ${err.trim().split('\n')[0]}`);
  let current: Xattr[] | undefined;
  for (const line of Buffer.concat(chunks).toString('latin1').split('\n')) {
    if (line.startsWith('# file: ')) {
      current = [];
      out.set(unescapeGetfattr(line.slice(8)), current);
    } else if (current && line.includes('=')) {
      const eq = line.indexOf('=');
      const name = unescapeGetfattr(line.slice(0, eq));
      const v = line.slice(eq + 1);
      const value = v.startsWith('0x') ? Buffer.from(v.slice(2), 'hex') : Buffer.alloc(0);
      current.push({ name, value });
    }
  }
  for (const xs of out.values()) xs.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  return out;
}

function rdevParts(rdev: bigint): [number, number] {
  const major = Number(((rdev >> 8n) & 0xfffn) | ((rdev >> 32n) & ~0xfffn));
  const minor = Number((rdev & 0xffn) | ((rdev >> 12n) & ~0xffn));
  return [major, minor];
}

async function copyRange(fd: number, start: number, len: number, w: ContentWriter, buf: Buffer, progress?: Progress): Promise<void> {
  let pos = start;
  const end = start + len;
  while (pos < end) {
    const n = fs.readSync(fd, buf, 0, Math.min(READ_CHUNK, end - pos), pos);
    if (n === 0) break;
    await w.write(buf.subarray(0, n));
    progress?.add(n);
    pos += n;
  }
}

export async function ingestDirectory(root: string, pool: PoolWriter, progress?: Progress): Promise<Tree> {
  const absRoot = fs.realpathSync(root);
  const rootSt = fs.lstatSync(absRoot, { bigint: true });
  if (!rootSt.isDirectory()) throw fileError(root, 'not a directory');
  const xattrs = await readXattrs(absRoot);
  const tree = new Tree(Number(rootSt.mode & 0o7777n), rootSt.mtimeNs);
  Object.assign(tree.root, {
    uid: Number(rootSt.uid), gid: Number(rootSt.gid), xattrs: xattrs.get(absRoot) ?? NO_XATTRS,
  });
  const hardlinks = new Map<string, number>();
  const visited = new Set<string>([`${rootSt.dev}:${rootSt.ino}`]);
  const buf = Buffer.allocUnsafe(READ_CHUNK);

  const walk = async (dirPath: Buffer, dirIno: number, depth: number): Promise<void> => {
    if (depth > 4096) throw fileError(root, 'directory nesting too deep');
    let names: Buffer[];
    try {
      names = fs.readdirSync(dirPath, { encoding: 'buffer' });
    } catch (e) {
      throw fileError(dirPath.toString(), describeErrno(e));
    }
    names.sort(Buffer.compare);
    for (const nameBuf of names) {
      const p = Buffer.concat([dirPath, Buffer.from('/'), nameBuf]);
      const pLatin = p.toString('latin1');
      const name = nameBuf.toString('latin1');
      const st = fs.lstatSync(p, { bigint: true });
      const key = `${st.dev}:${st.ino}`;
      if (!st.isDirectory() && st.nlink > 1n) {
        const known = hardlinks.get(key);
        if (known !== undefined) {
          tree.link(dirIno, name, known);
          continue;
        }
      }
      const fields = {
        mode: Number(st.mode & 0o7777n), uid: Number(st.uid), gid: Number(st.gid), mtimeNs: st.mtimeNs,
        rdevMajor: 0, rdevMinor: 0, xattrs: xattrs.get(pLatin) ?? NO_XATTRS, sparse: false,
      };
      let inode: Inode;
      if (st.isDirectory()) {
        if (visited.has(key)) throw fileError(p.toString(), 'directory loop (this directory is already part of the tree)');
        visited.add(key);
        inode = tree.newInode({ ...fields, type: EntryType.Dir });
        tree.link(dirIno, name, inode.ino);
        await walk(p, inode.ino, depth + 1);
        continue;
      } else if (st.isFile()) {
        const w = pool.file();
        let fd: number;
        try {
          fd = fs.openSync(p, 'r');
        } catch (e) {
          throw fileError(p.toString(), describeErrno(e));
        }
        const sparse = st.blocks * 512n < st.size;
        const size = Number(st.size);
        try {
          if (sparse) {
            // read only the data regions; holes become zero blocks for free
            for (let pos = 0; pos < size;) {
              const data = native().seekData(fd, pos, false);
              if (data < 0 || data >= size) break;
              const hole = Math.min(size, native().seekData(fd, data, true));
              await w.skip(data - w.position);
              await copyRange(fd, data, hole - data, w, buf);
              progress?.add(hole - data);
              pos = hole;
            }
          } else {
            await copyRange(fd, 0, Infinity, w, buf, progress);
          }
        } finally {
          fs.closeSync(fd);
        }
        const content = await w.end(Math.max(size, w.position));
        inode = tree.newInode({ ...fields, type: EntryType.File, content, sparse });
      } else if (st.isSymbolicLink()) {
        inode = tree.newInode({ ...fields, type: EntryType.Symlink, target: fs.readlinkSync(p, { encoding: 'buffer' }).toString('latin1') });
      } else if (st.isCharacterDevice() || st.isBlockDevice()) {
        const [maj, min] = rdevParts(st.rdev);
        inode = tree.newInode({ ...fields, type: st.isCharacterDevice() ? EntryType.CharDev : EntryType.BlockDev, rdevMajor: maj, rdevMinor: min });
      } else if (st.isFIFO()) {
        inode = tree.newInode({ ...fields, type: EntryType.Fifo });
      } else if (st.isSocket()) {
        inode = tree.newInode({ ...fields, type: EntryType.Socket });
      } else {
        throw fileError(p.toString(), 'unknown file type');
      }
      tree.link(dirIno, name, inode.ino);
      if (st.nlink > 1n) hardlinks.set(key, inode.ino);
    }
  };
  await walk(Buffer.from(absRoot), ROOT_INO, 0);
  return tree;
}

/** Bytes the directory reader will read under `root` (for the progress bar). */
export function directoryBytes(root: string): number {
  let total = 0;
  const seen = new Set<string>();
  const stack = [Buffer.from(root)];
  while (stack.length) {
    const d = stack.pop()!;
    let names: Buffer[];
    try { names = fs.readdirSync(d, { encoding: 'buffer' }); } catch { continue; }
    for (const n of names) {
      const p = Buffer.concat([d, Buffer.from('/'), n]);
      const st = fs.lstatSync(p);
      if (st.isDirectory()) stack.push(p);
      else if (st.isFile()) {
        if (st.nlink > 1) { // only a file with more names can be met again
          const key = `${st.dev}:${st.ino}`;
          if (seen.has(key)) continue;
          seen.add(key);
        }
        total += Math.min(st.size, st.blocks * 512);
      }
    }
  }
  return total;
}
