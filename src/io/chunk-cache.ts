// On-disk cache of a remote file's chunks (--cache-dir). Each version of a
// remote file (its URL, size, ETag and Last-Modified hashed into a
// directory name, so a replaced file never finds the old one's bytes) has
// segment files of SEGMENT_CHUNKS chunks: `S.data`, sparse, holding chunk
// i at its own offset in the segment, and `S.idx`, an append-only list of
// 16-byte records (magic, chunk index, XXH3-64 of the chunk's bytes), one
// appended after the chunk's bytes are written. A chunk is used only when
// its bytes match its record, so a torn write (a crash between the two, a
// partial record) is never used; several daemons may share a directory
// (records are appended atomically, and every writer writes the same bytes
// for a chunk). A run of cached chunks is read back in one read.
// Least recently used segments are evicted (their files deleted), across
// every version in the directory, when the directory grows past its cap;
// a segment's use is its index file's modification time.

import * as fs from 'node:fs';
import * as path from 'node:path';
import * as crypto from 'node:crypto';
import { XXHash3 } from 'xxhash-addon';
import { UserError, describeErrno } from '../util/errors';
import { nativeIfBuilt } from '../native';

// ---- segment files -------------------------------------------------------
/** Chunks per segment file (8 MiB: eviction frees a segment at a time, and the smallest cap is 16 MiB). */
const SEGMENT_CHUNKS = 128;
/** Index record: u32 LE magic, u32 LE chunk index, 8 bytes XXH3-64 of the chunk's bytes. */
const RECORD = 16;
const RECORD_MAGIC = 0x31434e55; // "UNC1"
const DATA_SUFFIX = '.data';
const INDEX_SUFFIX = '.idx';
/** A segment's use (its index file's mtime) is refreshed at most this often. */
const TOUCH_EVERY_MS = 30 * 1000;
/** How often a segment being written to is checked for having been evicted by another process. */
const UNLINK_CHECK_MS = 5000;
/** Eviction brings the directory down to this share of its cap. */
const EVICT_TO = 0.9;
/** Most bytes read from disk in one read. */
const READ_MAX = 1 << 20;

/** Identity of the remote file a cache directory holds chunks of. */
export interface CachedFileId {
  url: string;
  size: number;
  etag?: string;
  lastModified?: string;
}

interface Segment {
  data: number;
  idx: number;
  touchedAt: number;
  checkedAt: number;
  /** reads and writes in flight: its files are closed only when none is (closing under one could send it to a reused fd) */
  busy: number;
  /** closed (evicted, or the cache closed): the files close after the last read or write */
  dead: boolean;
}

function closeFiles(seg: Segment): void {
  for (const fd of [seg.data, seg.idx]) {
    try { fs.closeSync(fd); } catch { /* closed */ }
  }
}

function segmentName(s: number): string {
  return s.toString(16).padStart(6, '0');
}

function readvAt(fd: number, bufs: Buffer[], pos: number): Promise<number> {
  return new Promise((resolve, reject) => fs.readv(fd, bufs, pos, (err, n) => (err ? reject(err) : resolve(n))));
}

function writeAt(fd: number, buf: Buffer, pos: number | null): Promise<void> {
  return new Promise((resolve, reject) => fs.write(fd, buf, 0, buf.length, pos, (err) => (err ? reject(err) : resolve())));
}

export class DiskChunkCache {
  /** chunks of this version on disk: their XXH3-64 */
  private readonly present = new Map<number, Buffer>();
  private readonly segments = new Map<number, Segment>();
  private readonly dir: string;
  /** allocated bytes of the whole cache directory, as last counted plus what this process wrote since */
  private total = 0;
  private evicting = false;
  private closed = false;

  constructor(readonly root: string, id: CachedFileId, private readonly chunkBytes: number, private readonly capBytes: number,
    private readonly log?: (line: string) => void) {
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
      if (name.endsWith(INDEX_SUFFIX)) this.loadIndex(path.join(this.dir, name), parseInt(name, 16));
    }
    this.total = this.count();
    if (this.total > this.capBytes) this.evict();
  }

  /** Read a segment's index records (a partial record at the end, or garbage, is skipped). */
  private loadIndex(file: string, seg: number): void {
    let b: Buffer;
    try {
      b = fs.readFileSync(file);
    } catch {
      return;
    }
    for (let o = 0; o + RECORD <= b.length; o += RECORD) {
      const chunk = b.readUInt32LE(o + 4);
      if (b.readUInt32LE(o) !== RECORD_MAGIC || Math.floor(chunk / SEGMENT_CHUNKS) !== seg) continue;
      this.present.set(chunk, Buffer.from(b.subarray(o + 8, o + 16)));
    }
  }

  has(i: number): boolean {
    return this.present.has(i);
  }

  /** Segment `s`'s files, open (made when `create`). */
  private segment(s: number, create: boolean): Segment | undefined {
    let seg = this.segments.get(s);
    if (seg) return seg;
    const base = path.join(this.dir, segmentName(s));
    try {
      // read-write either way: a segment opened to read a chunk is written to when another is fetched
      const made = create ? fs.constants.O_CREAT : 0;
      const data = fs.openSync(base + DATA_SUFFIX, fs.constants.O_RDWR | made, 0o600);
      let idx: number;
      try {
        idx = fs.openSync(base + INDEX_SUFFIX, fs.constants.O_WRONLY | fs.constants.O_APPEND | made, 0o600);
      } catch (e) {
        fs.closeSync(data);
        throw e;
      }
      seg = { data, idx, touchedAt: 0, checkedAt: Date.now(), busy: 0, dead: false };
      this.segments.set(s, seg);
      return seg;
    } catch {
      return undefined;
    }
  }

  private closeSegment(s: number): void {
    const seg = this.segments.get(s);
    if (!seg) return;
    this.segments.delete(s);
    seg.dead = true;
    if (seg.busy === 0) closeFiles(seg);
  }

  /** Refresh the segment's last use (its index file's mtime), at most every TOUCH_EVERY_MS. */
  private touch(s: number, seg: Segment): void {
    const now = Date.now();
    if (seg.dead || now - seg.touchedAt < TOUCH_EVERY_MS) return;
    seg.touchedAt = now;
    const t = new Date(now);
    fs.futimes(seg.idx, t, t, () => { /* evicted meanwhile: fine */ });
  }

  /**
   * Read chunks [a, a + bufs.length) (present, in one segment) into `bufs`
   * (each its chunk's size) with one read; for each, whether its bytes match
   * its record (a chunk that does not, torn, damaged or evicted, is
   * forgotten).
   */
  async getRun(a: number, bufs: Buffer[]): Promise<boolean[]> {
    const s = Math.floor(a / SEGMENT_CHUNKS);
    const ok: boolean[] = new Array(bufs.length).fill(false);
    const seg = this.segment(s, false);
    if (!seg) {
      for (let k = 0; k < bufs.length; k++) this.present.delete(a + k);
      return ok;
    }
    let got = 0;
    seg.busy++;
    try {
      got = await readvAt(seg.data, bufs, (a - s * SEGMENT_CHUNKS) * this.chunkBytes);
    } catch { /* treated as missing */ } finally {
      if (--seg.busy === 0 && seg.dead) closeFiles(seg);
    }
    this.touch(s, seg);
    for (let k = 0, at = 0; k < bufs.length; at += bufs[k].length, k++) {
      const i = a + k;
      const want = this.present.get(i);
      if (want && at + bufs[k].length <= got && XXHash3.hash(bufs[k]).equals(want)) {
        ok[k] = true;
      } else if (want) {
        this.present.delete(i);
        this.log?.(`cache: chunk ${i} in ${path.join(this.dir, segmentName(s) + DATA_SUFFIX)} is damaged or incomplete; fetching it again`);
      }
    }
    return ok;
  }

  /** Have the kernel read chunks [a, a + n) (those present) into the page cache in the background (advice). */
  advise(a: number, n: number): void {
    const addon = nativeIfBuilt();
    if (!addon) return;
    for (let i = a; i < a + n;) {
      while (i < a + n && !this.present.has(i)) i++;
      const s = Math.floor(i / SEGMENT_CHUNKS);
      let e = i;
      while (e < a + n && this.present.has(e) && Math.floor(e / SEGMENT_CHUNKS) === s) e++;
      if (e > i) {
        const seg = this.segment(s, false);
        if (seg) addon.willNeed(seg.data, (i - s * SEGMENT_CHUNKS) * this.chunkBytes, (e - i) * this.chunkBytes);
      }
      i = e;
    }
  }

  /** Chunks from `a` that are present, consecutive and in the same segment as `a`, at most `max` of them. */
  runLength(a: number, max: number): number {
    const segEnd = (Math.floor(a / SEGMENT_CHUNKS) + 1) * SEGMENT_CHUNKS;
    const limit = Math.min(max, segEnd - a, Math.floor(READ_MAX / this.chunkBytes));
    let n = 0;
    while (n < limit && this.present.has(a + n)) n++;
    return n;
  }

  /** Store chunks from `a` (consecutive), in the background; a failure only means they are fetched again. */
  put(a: number, chunks: Buffer[]): void {
    for (let k = 0; k < chunks.length;) {
      const n = Math.min(chunks.length - k, (Math.floor((a + k) / SEGMENT_CHUNKS) + 1) * SEGMENT_CHUNKS - (a + k));
      this.putInSegment(a + k, chunks.slice(k, k + n));
      k += n;
    }
  }

  private putInSegment(a: number, chunks: Buffer[]): void {
    if (!chunks.length) return;
    const s = Math.floor(a / SEGMENT_CHUNKS);
    let seg = this.segment(s, true);
    if (!seg) return;
    const now = Date.now();
    if (now - seg.checkedAt > UNLINK_CHECK_MS) {
      seg.checkedAt = now;
      try {
        if (fs.fstatSync(seg.data).nlink === 0) {
          // evicted by another process: write to a new segment, not to a deleted file
          this.closeSegment(s);
          seg = this.segment(s, true);
          if (!seg) return;
        }
      } catch { return; }
    }
    // a copy: the chunks' buffers go back to their owner's free list while this write waits
    const data = Buffer.concat(chunks);
    const records = Buffer.alloc(RECORD * chunks.length);
    const sums: Buffer[] = [];
    chunks.forEach((c, k) => {
      const sum = XXHash3.hash(c);
      sums.push(sum);
      records.writeUInt32LE(RECORD_MAGIC, k * RECORD);
      records.writeUInt32LE(a + k, k * RECORD + 4);
      sum.copy(records, k * RECORD + 8);
    });
    const target = seg;
    target.busy++;
    writeAt(target.data, data, (a - s * SEGMENT_CHUNKS) * this.chunkBytes)
      .then(() => writeAt(target.idx, records, null)) // after the bytes: a record never names bytes not yet written
      .then(() => {
        sums.forEach((sum, k) => this.present.set(a + k, sum));
        this.touch(s, target);
        this.total += data.length + records.length;
        if (this.total > this.capBytes) this.evict();
      }, () => { /* not cached: fetched again when read */ })
      .finally(() => {
        // chunks fetched for a reader that closed the cache meanwhile are kept too; their segment closes after
        if (this.closed && this.segments.get(s) === target) this.closeSegment(s);
        if (--target.busy === 0 && target.dead) closeFiles(target);
      });
  }

  /** Every segment in the cache directory: allocated bytes and last use. */
  private segmentsOnDisk(): { base: string; bytes: number; used: number; dir: string; seg: number }[] {
    const out: { base: string; bytes: number; used: number; dir: string; seg: number }[] = [];
    let dirs: string[];
    try {
      dirs = fs.readdirSync(this.root);
    } catch {
      return out;
    }
    for (const d of dirs) {
      const dir = path.join(this.root, d);
      let names: string[];
      try {
        names = fs.readdirSync(dir);
      } catch {
        continue;
      }
      for (const name of names) {
        if (!name.endsWith(INDEX_SUFFIX)) continue;
        const base = path.join(dir, name.slice(0, -INDEX_SUFFIX.length));
        try {
          const idx = fs.statSync(base + INDEX_SUFFIX);
          let bytes = idx.size;
          try { bytes += fs.statSync(base + DATA_SUFFIX).blocks * 512; } catch { /* index only */ }
          out.push({ base, bytes, used: idx.mtimeMs, dir, seg: parseInt(name, 16) });
        } catch { /* removed meanwhile */ }
      }
    }
    return out;
  }

  private count(): number {
    return this.segmentsOnDisk().reduce((s, x) => s + x.bytes, 0);
  }

  /** Delete the least recently used segments of the whole directory until it is under EVICT_TO of its cap. */
  private evict(): void {
    if (this.evicting) return;
    this.evicting = true;
    try {
      const segs = this.segmentsOnDisk().sort((x, y) => x.used - y.used);
      let total = segs.reduce((s, x) => s + x.bytes, 0);
      for (const x of segs) {
        if (total <= this.capBytes * EVICT_TO) break;
        // the index first: its records must never outlive the bytes they name
        fs.rmSync(x.base + INDEX_SUFFIX, { force: true });
        fs.rmSync(x.base + DATA_SUFFIX, { force: true });
        total -= x.bytes;
        if (x.dir === this.dir) {
          this.closeSegment(x.seg);
          for (let i = x.seg * SEGMENT_CHUNKS; i < (x.seg + 1) * SEGMENT_CHUNKS; i++) this.present.delete(i);
        }
      }
      this.total = total;
    } finally {
      this.evicting = false;
    }
  }

  /** No more writes; each segment's files close once its reads and writes in flight are done. */
  close(): void {
    this.closed = true;
    for (const s of [...this.segments.keys()]) this.closeSegment(s);
  }
}
