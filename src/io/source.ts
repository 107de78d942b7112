// The one read interface (in the spirit of nbdkit plugins): a source has a
// size and a positional read. Files, byte ranges inside an ISO image, pool
// blocks and recipe views all implement it, so every consumer (mount,
// extract, serve, verify) reads through the same code.

import * as fs from 'node:fs';
import { nativeIfBuilt } from '../native';
import { lastAtOrBefore } from '../util/search';

export interface ByteSource {
  readonly size: number;
  /** Read up to buf.length bytes at `offset`; returns the count (short only at EOF). */
  pread(buf: Buffer, offset: number): Promise<number>;
  /**
   * Optional: pread that answers with the count itself when the read was
   * done at once (no promise, no turn of the event loop), else a promise
   * of it. May throw where pread would reject.
   */
  preadNow?(buf: Buffer, offset: number): number | Promise<number>;
  /** Optional scatter read: consecutive bytes at `offset` into `bufs` in turn; returns the total count. */
  preadv?(bufs: Buffer[], offset: number): Promise<number>;
  /**
   * Optional: read into `bufs` (one after another) at `offset` only what
   * can be read at once without waiting for the disk (page-cached bytes);
   * returns the count, 0 when nothing can be. Synchronous.
   */
  preadCached?(bufs: Buffer[], offset: number): number;
  /** Optional: have [offset, offset + len) read into the page cache in the background (advice). */
  willNeed?(offset: number, len: number): void;
  /**
   * Optional: how many bytes ahead of themselves sequential readers should
   * announce with willNeed (a remote source: enough to keep its connections
   * busy). Readers use their own default when absent.
   */
  readonly announceAhead?: number;
  /** Optional: the file descriptor and position holding [offset, offset+len), if contiguous in one file. */
  locate?(offset: number, len: number): { fd: number; pos: number } | undefined;
  /** Optional: every piece of the source: `len` bytes at `pos` in `fd` hold its bytes from `at`. */
  extents?(): (Extent & { at: number })[];
}

/**
 * A source that hands out sub-ranges of itself as sources: a local file
 * (FileSource) or a remote image (RangesSource over an HTTP source). The
 * ISO reader, the image opener and verify need no more than this.
 */
export interface SliceableSource extends ByteSource {
  readonly name: string;
  slice(offset: number, length: number, name?: string): SliceableSource;
}

/** Most buffers one preadCached() call takes (the addon's limit). */
const READ_CACHED_MAX_BUFS = 64;

/** Fill `bufs` one after another from `offset` with src.pread; stops at the first short read. */
export async function preadEach(src: ByteSource, bufs: Buffer[], offset: number): Promise<number> {
  let done = 0;
  for (const b of bufs) {
    const n = await src.pread(b, offset + done);
    done += n;
    if (n < b.length) break;
  }
  return done;
}

function readvAt(fd: number, bufs: Buffer[], pos: number): Promise<number> {
  return new Promise((resolve, reject) => {
    fs.readv(fd, bufs, pos, (err, n) => (err ? reject(err) : resolve(n)));
  });
}

function readAt(fd: number, buf: Buffer, off: number, len: number, pos: number): Promise<number> {
  return new Promise((resolve, reject) => {
    fs.read(fd, buf, off, len, pos, (err, n) => (err ? reject(err) : resolve(n)));
  });
}

/** Read exactly buf.length bytes or fail with a clear message. */
export async function preadFully(src: ByteSource, buf: Buffer, offset: number, what: string): Promise<void> {
  const n = await src.pread(buf, offset);
  if (n !== buf.length) {
    throw new Error(`${what}: short read at offset ${offset} (${n} of ${buf.length} bytes; truncated?)`);
  }
}

/** `len` bytes at `pos` in the file open as `fd`: one piece of a FileSource. */
export interface Extent {
  fd: number;
  pos: number;
  len: number;
}

/**
 * An open file, a run of extents inside one (e.g. a file inside an ISO), or
 * pieces of several files one after another (the pool of an extracted
 * image: its squashfs, then the side pool).
 */
export class FileSource implements SliceableSource {
  readonly size: number;
  private readonly ext: Extent[];
  private readonly starts: number[] = []; // logical start of each extent
  /** the source is the whole of `fd`, at the same offsets */
  private readonly whole: boolean;
  private owned = false;

  /**
   * @param fd the file (of every [pos, len] extent)
   * @param extents [physical offset, length] pairs in `fd`, or extents of
   *   their own files, making up the logical file; default: the whole file.
   */
  constructor(readonly fd: number, readonly name: string, extents?: readonly ([number, number] | Extent)[]) {
    this.whole = !extents;
    this.ext = extents
      ? extents.map((e) => (Array.isArray(e) ? { fd, pos: e[0], len: e[1] } : { ...(e as Extent) }))
      : [{ fd, pos: 0, len: fs.fstatSync(fd).size }];
    let s = 0;
    for (const e of this.ext) {
      this.starts.push(s);
      s += e.len;
    }
    this.size = s;
  }

  static open(path: string): FileSource {
    const src = new FileSource(fs.openSync(path, 'r'), path);
    src.owned = true;
    return src;
  }

  /** `parts` one after another, as one source (the parts stay open while it is used). */
  static concat(name: string, parts: FileSource[]): FileSource {
    if (!parts.length) throw new Error(`${name}: nothing to concatenate`);
    return new FileSource(parts[0].fd, name, parts.flatMap((p) => p.ext));
  }

  async pread(buf: Buffer, offset: number): Promise<number> {
    const len = Math.max(0, Math.min(buf.length, this.size - offset));
    if (len === 0) return 0;
    if (this.whole) return readAll(this.fd, buf, 0, len, offset);
    let done = 0;
    let i = this.extentIndex(offset);
    while (done < len && i < this.ext.length) {
      const e = this.ext[i];
      const within = offset + done - this.starts[i];
      const n = Math.min(len - done, e.len - within);
      const got = await readAll(e.fd, buf, done, n, e.pos + within);
      done += got;
      if (got < n) break;
      i++;
    }
    return done;
  }

  locate(offset: number, len: number): { fd: number; pos: number } | undefined {
    if (offset < 0 || offset + len > this.size) return undefined;
    const i = this.extentIndex(offset);
    const e = this.ext[i];
    const within = offset - this.starts[i];
    return within + len <= e.len ? { fd: e.fd, pos: e.pos + within } : undefined;
  }

  /** The extents, each with its logical start (`at`): for the addon, which reads them itself. */
  extents(): (Extent & { at: number })[] {
    return this.ext.map((e, i) => ({ ...e, at: this.starts[i] }));
  }

  preadCached(bufs: Buffer[], offset: number): number {
    const addon = nativeIfBuilt();
    if (!addon || bufs.length > READ_CACHED_MAX_BUFS) return 0;
    const where = this.locate(offset, bufs.reduce((s, b) => s + b.length, 0));
    return where ? addon.readCached(where.fd, bufs, where.pos) : 0;
  }

  willNeed(offset: number, len: number): void {
    const addon = nativeIfBuilt();
    const where = addon && len > 0 ? this.locate(offset, len) : undefined;
    if (where) addon!.willNeed(where.fd, where.pos, len);
  }

  /** Scatter read; one readv system call when the range lies in one extent. */
  async preadv(bufs: Buffer[], offset: number): Promise<number> {
    const total = bufs.reduce((s, b) => s + b.length, 0);
    const where = this.locate(offset, total);
    if (!where) return preadEach(this, bufs, offset); // crosses extents or the end
    const { fd, pos } = where;
    let done = await readvAt(fd, bufs, pos);
    if (done < total && done > 0) {
      // short read (rare): finish the rest buffer by buffer
      let skip = done;
      for (const b of bufs) {
        if (skip >= b.length) { skip -= b.length; continue; }
        const n = await readAll(fd, b, skip, b.length - skip, pos + done);
        done += n;
        if (n < b.length - skip) break;
        skip = 0;
      }
    }
    return done;
  }

  private extentIndex(offset: number): number {
    return lastAtOrBefore(this.starts, offset);
  }

  /** A sub-range of this source as its own source. */
  slice(offset: number, length: number, name = this.name): FileSource {
    const ext: Extent[] = [];
    let pos = offset;
    let left = length;
    while (left > 0) {
      const i = this.extentIndex(pos);
      const e = this.ext[i];
      const within = pos - this.starts[i];
      const n = Math.min(left, e.len - within);
      if (n <= 0) throw new Error(`${name}: range beyond the end of ${this.name}`);
      ext.push({ fd: e.fd, pos: e.pos + within, len: n });
      pos += n;
      left -= n;
    }
    return new FileSource(this.fd, name, ext);
  }

  /** Close the file, when this source opened it (open()); other sources leave their files to their owner. */
  close(): void {
    if (!this.owned) return;
    try { fs.closeSync(this.fd); } catch { /* already closed */ }
  }
}

/**
 * [pos, len] ranges of another source read one after another, as a source
 * of its own: a file inside a remote ISO, or the pool's files on it. What
 * FileSource is for local files, without file descriptors (so without the
 * addon's fast paths, which need them).
 */
export class RangesSource implements SliceableSource {
  readonly size: number;
  private readonly starts: number[] = [];

  constructor(readonly base: ByteSource, readonly name: string, private readonly ranges: readonly [number, number][]) {
    let s = 0;
    for (const [pos, len] of ranges) {
      if (pos < 0 || len < 0 || pos + len > base.size) throw new Error(`${name}: range ${pos}+${len} beyond the end of the source`);
      this.starts.push(s);
      s += len;
    }
    this.size = s;
  }

  /** `parts` (ranges of one base source) one after another, as one source. */
  static concat(name: string, parts: RangesSource[]): RangesSource {
    if (!parts.length) throw new Error(`${name}: nothing to concatenate`);
    const base = parts[0].base;
    if (parts.some((p) => p.base !== base)) throw new Error(`${name}: parts of different sources`);
    return new RangesSource(base, name, parts.flatMap((p) => p.ranges));
  }

  async pread(buf: Buffer, offset: number): Promise<number> {
    const len = Math.max(0, Math.min(buf.length, this.size - offset));
    let done = 0;
    for (let i = len > 0 ? lastAtOrBefore(this.starts, offset) : this.ranges.length; done < len && i < this.ranges.length; i++) {
      const [pos, rlen] = this.ranges[i];
      const within = offset + done - this.starts[i];
      const n = Math.min(len - done, rlen - within);
      const got = await this.base.pread(buf.subarray(done, done + n), pos + within);
      done += got;
      if (got < n) break;
    }
    return done;
  }

  /** Where [offset, offset + len) lies in the base source, when inside one range. */
  private within(offset: number, len: number): number | undefined {
    if (offset < 0 || len <= 0 || offset + len > this.size) return undefined;
    const i = lastAtOrBefore(this.starts, offset);
    const at = offset - this.starts[i];
    return at + len <= this.ranges[i][1] ? this.ranges[i][0] + at : undefined;
  }

  preadv(bufs: Buffer[], offset: number): Promise<number> {
    const pos = this.within(offset, bufs.reduce((n, b) => n + b.length, 0));
    if (pos !== undefined && this.base.preadv) return this.base.preadv(bufs, pos);
    return preadEach(this, bufs, offset);
  }

  get announceAhead(): number | undefined {
    return this.base.announceAhead;
  }

  preadCached(bufs: Buffer[], offset: number): number {
    const pos = this.base.preadCached ? this.within(offset, bufs.reduce((n, b) => n + b.length, 0)) : undefined;
    return pos === undefined ? 0 : this.base.preadCached!(bufs, pos);
  }

  willNeed(offset: number, len: number): void {
    if (!this.base.willNeed || len <= 0 || offset >= this.size) return;
    const end = Math.min(this.size, offset + len);
    for (let i = lastAtOrBefore(this.starts, offset); i < this.ranges.length && this.starts[i] < end; i++) {
      const [pos, rlen] = this.ranges[i];
      const from = Math.max(offset, this.starts[i]) - this.starts[i];
      const to = Math.min(end - this.starts[i], rlen);
      if (to > from) this.base.willNeed(pos + from, to - from);
    }
  }

  slice(offset: number, length: number, name = this.name): RangesSource {
    const out: [number, number][] = [];
    let at = offset;
    let left = length;
    while (left > 0) {
      const i = lastAtOrBefore(this.starts, at);
      const [pos, rlen] = this.ranges[i];
      const within = at - this.starts[i];
      const n = Math.min(left, rlen - within);
      if (n <= 0 || at >= this.size) throw new Error(`${name}: range beyond the end of ${this.name}`);
      out.push([pos + within, n]);
      at += n;
      left -= n;
    }
    return new RangesSource(this.base, name, out);
  }
}

/** `parts` one after another as one source: files (FileSource.concat) or ranges of one remote source. */
export function concatSources(name: string, parts: SliceableSource[]): SliceableSource {
  if (parts.length && parts.every((p) => p instanceof FileSource)) return FileSource.concat(name, parts as FileSource[]);
  if (parts.length && parts.every((p) => p instanceof RangesSource)) return RangesSource.concat(name, parts as RangesSource[]);
  throw new Error(`${name}: cannot concatenate these sources`);
}

/** Read up to `len` bytes into buf[off..] at `pos`, looping over short reads; the count (short at EOF). */
async function readAll(fd: number, buf: Buffer, off: number, len: number, pos: number): Promise<number> {
  let done = 0;
  while (done < len) {
    const n = await readAt(fd, buf, off + done, len - done, pos + done);
    if (n === 0) break;
    done += n;
  }
  return done;
}

/** Read a whole (small) source into memory. */
export async function readAllBytes(src: ByteSource, what: string): Promise<Buffer> {
  const buf = Buffer.allocUnsafe(src.size);
  await preadFully(src, buf, 0, what);
  return buf;
}
