// On-disk cache of a remote file's chunks (--cache-dir): one file per
// chunk, under a directory per remote file version (named by a hash of its
// URL, size, ETag and Last-Modified, so a replaced file never finds the old
// one's bytes). A chunk file is written under a temporary name and renamed
// into place, and carries its length and an XXH3 of its bytes: a torn or
// damaged file is never used (it is deleted and fetched again). Least
// recently used chunks are evicted, across every version in the directory,
// when the directory grows past its cap. Several daemons may share one
// directory: renames are atomic, and a chunk evicted by another daemon is
// just fetched again.

import * as fs from 'node:fs';
import * as path from 'node:path';
import * as crypto from 'node:crypto';
import { XXHash3 } from 'xxhash-addon';
import { UserError, describeErrno } from '../util/errors';

// ---- chunk file layout ---------------------------------------------------
/** 8 bytes of magic, u32 LE length of the data, u32 reserved (0), 8 bytes XXH3-64 of the data, then the data. */
const MAGIC = Buffer.from('UNISOCK1', 'latin1');
const HEADER = 24;
const SUFFIX = '.chunk';
/** Temporary files older than this are a writer's leftovers (it died before the rename). */
const STALE_TEMP_MS = 10 * 60 * 1000;
/** A chunk's modification time (its last use) is refreshed at most this often. */
const TOUCH_EVERY_MS = 60 * 1000;
/** Eviction brings the directory down to this share of its cap. */
const EVICT_TO = 0.9;

/** Identity of the remote file a cache directory holds chunks of. */
export interface CachedFileId {
  url: string;
  size: number;
  etag?: string;
  lastModified?: string;
}

function chunkName(i: number): string {
  return `${i.toString(16).padStart(8, '0')}${SUFFIX}`;
}

export class DiskChunkCache {
  /** chunks of this file version known to be on disk */
  private readonly present = new Set<number>();
  private readonly touched = new Map<number, number>();
  private readonly dir: string;
  /** bytes in the whole cache directory, as last counted plus what this process wrote since */
  private total = 0;
  private evicting = false;
  private seq = 0;

  constructor(readonly root: string, id: CachedFileId, private readonly capBytes: number, private readonly log?: (line: string) => void) {
    const key = crypto.createHash('sha256').update(JSON.stringify([id.url, id.size, id.etag ?? '', id.lastModified ?? ''])).digest('hex').slice(0, 32);
    this.dir = path.join(root, key);
    try {
      fs.mkdirSync(this.dir, { recursive: true, mode: 0o700 });
      // a temporary name of this process's own: daemons starting at once on one directory must not rename each other's
      const tmp = path.join(this.dir, `source.json.${process.pid}.tmp`);
      fs.writeFileSync(tmp, `${JSON.stringify(id)}\n`);
      fs.renameSync(tmp, path.join(this.dir, 'source.json'));
    } catch (e) {
      throw new UserError(`${root}: cannot use as a cache directory (${describeErrno(e)})`);
    }
    for (const name of fs.readdirSync(this.dir)) {
      if (name.endsWith(SUFFIX)) this.present.add(parseInt(name, 16));
    }
    this.total = this.count();
    if (this.total > this.capBytes) this.evict();
  }

  has(i: number): boolean {
    return this.present.has(i);
  }

  /** Chunk `i` of `len` bytes, or undefined (not there, or torn/damaged: then removed). */
  async get(i: number, len: number): Promise<Buffer | undefined> {
    if (!this.present.has(i)) return undefined;
    const file = path.join(this.dir, chunkName(i));
    let data: Buffer;
    try {
      data = await fs.promises.readFile(file);
    } catch {
      this.present.delete(i); // evicted by another daemon
      return undefined;
    }
    if (data.length !== HEADER + len || !data.subarray(0, 8).equals(MAGIC) || data.readUInt32LE(8) !== len ||
        !XXHash3.hash(data.subarray(HEADER)).equals(data.subarray(16, 24))) {
      this.log?.(`cache: ${file} is damaged; fetching it again`);
      this.present.delete(i);
      fs.rm(file, { force: true }, () => { /* best effort */ });
      return undefined;
    }
    const now = Date.now();
    if (now - (this.touched.get(i) ?? 0) > TOUCH_EVERY_MS) {
      this.touched.set(i, now);
      const t = new Date(now);
      fs.utimes(file, t, t, () => { /* evicted meanwhile: fine */ });
    }
    return data.subarray(HEADER);
  }

  /** Store chunk `i` (in the background; a failure only means it is fetched again later). */
  put(i: number, data: Buffer): void {
    if (this.present.has(i)) return;
    const head = Buffer.alloc(HEADER);
    MAGIC.copy(head, 0);
    head.writeUInt32LE(data.length, 8);
    XXHash3.hash(data).copy(head, 16);
    const file = path.join(this.dir, chunkName(i));
    const tmp = `${file}.${process.pid}.${this.seq++}.tmp`;
    fs.writeFile(tmp, Buffer.concat([head, data]), { mode: 0o600 }, (err) => {
      if (err) {
        fs.rm(tmp, { force: true }, () => { /* best effort */ });
        return;
      }
      fs.rename(tmp, file, (err2) => {
        if (err2) {
          fs.rm(tmp, { force: true }, () => { /* best effort */ });
          return;
        }
        this.present.add(i);
        this.total += HEADER + data.length;
        if (this.total > this.capBytes) this.evict();
      });
    });
  }

  /** Bytes of every chunk file under the cache directory. */
  private count(): number {
    let n = 0;
    for (const f of this.files()) n += f.size;
    return n;
  }

  private files(): { file: string; size: number; mtime: number; dir: string }[] {
    const out: { file: string; size: number; mtime: number; dir: string }[] = [];
    let dirs: string[];
    try {
      dirs = fs.readdirSync(this.root);
    } catch {
      return out;
    }
    const now = Date.now();
    for (const d of dirs) {
      const dir = path.join(this.root, d);
      let names: string[];
      try {
        names = fs.readdirSync(dir);
      } catch {
        continue;
      }
      for (const name of names) {
        const file = path.join(dir, name);
        try {
          const st = fs.statSync(file);
          if (name.endsWith('.tmp')) {
            if (now - st.mtimeMs > STALE_TEMP_MS) fs.rmSync(file, { force: true });
          } else if (name.endsWith(SUFFIX)) {
            out.push({ file, size: st.size, mtime: st.mtimeMs, dir });
          }
        } catch { /* removed meanwhile */ }
      }
    }
    return out;
  }

  /** Delete the least recently used chunks of the whole directory until it is under EVICT_TO of its cap. */
  private evict(): void {
    if (this.evicting) return;
    this.evicting = true;
    try {
      const files = this.files().sort((a, b) => a.mtime - b.mtime);
      let total = files.reduce((s, f) => s + f.size, 0);
      for (const f of files) {
        if (total <= this.capBytes * EVICT_TO) break;
        try {
          fs.rmSync(f.file, { force: true });
        } catch { /* gone */ }
        total -= f.size;
        if (f.dir === this.dir) this.present.delete(parseInt(path.basename(f.file), 16));
      }
      this.total = total;
    } finally {
      this.evicting = false;
    }
  }
}
