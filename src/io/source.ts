// The one read interface (in the spirit of nbdkit plugins): a source has a
// size and a positional read. Files, byte ranges inside an ISO image, pool
// blocks and recipe views all implement it, so every consumer (mount,
// extract, serve, verify) reads through the same code.

import * as fs from 'node:fs';
import { nativeIfBuilt } from '../native';

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
  /** Optional: the file descriptor and position holding [offset, offset+len), if contiguous in one file. */
  locate?(offset: number, len: number): { fd: number; pos: number } | undefined;
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

/** An open file, or a run of extents inside one (e.g. a file inside an ISO). */
export class FileSource implements ByteSource {
  readonly size: number;
  private readonly starts: number[] = []; // logical start of each extent

  /**
   * @param extents [physical offset, length] pairs making up the logical file;
   *   default: the whole file.
   */
  constructor(readonly fd: number, readonly name: string, private readonly extents?: [number, number][]) {
    if (extents) {
      let s = 0;
      for (const [, len] of extents) {
        this.starts.push(s);
        s += len;
      }
      this.size = s;
    } else {
      this.size = fs.fstatSync(fd).size;
    }
  }

  static open(path: string): FileSource {
    return new FileSource(fs.openSync(path, 'r'), path);
  }

  async pread(buf: Buffer, offset: number): Promise<number> {
    const len = Math.max(0, Math.min(buf.length, this.size - offset));
    if (len === 0) return 0;
    if (!this.extents) return this.readAll(buf, 0, len, offset);
    let done = 0;
    let i = this.extentIndex(offset);
    while (done < len && i < this.extents.length) {
      const [phys, elen] = this.extents[i];
      const within = offset + done - this.starts[i];
      const n = Math.min(len - done, elen - within);
      const got = await this.readAll(buf, done, n, phys + within);
      done += got;
      if (got < n) break;
      i++;
    }
    return done;
  }

  locate(offset: number, len: number): { fd: number; pos: number } | undefined {
    if (offset < 0 || offset + len > this.size) return undefined;
    if (!this.extents) return { fd: this.fd, pos: offset };
    const i = this.extentIndex(offset);
    const [start, elen] = this.extents[i];
    const within = offset - this.starts[i];
    return within + len <= elen ? { fd: this.fd, pos: start + within } : undefined;
  }

  preadCached(bufs: Buffer[], offset: number): number {
    const addon = nativeIfBuilt();
    if (!addon || bufs.length > READ_CACHED_MAX_BUFS) return 0;
    const where = this.locate(offset, bufs.reduce((s, b) => s + b.length, 0));
    return where ? addon.readCached(this.fd, bufs, where.pos) : 0;
  }

  willNeed(offset: number, len: number): void {
    const addon = nativeIfBuilt();
    const where = addon && len > 0 ? this.locate(offset, len) : undefined;
    if (where) addon!.willNeed(this.fd, where.pos, len);
  }

  /** Scatter read; one readv system call when the range lies in one extent. */
  async preadv(bufs: Buffer[], offset: number): Promise<number> {
    const total = bufs.reduce((s, b) => s + b.length, 0);
    const where = this.locate(offset, total);
    if (!where) return preadEach(this, bufs, offset); // crosses extents or the end
    const phys = where.pos;
    let done = await readvAt(this.fd, bufs, phys);
    if (done < total && done > 0) {
      // short read (rare): finish the rest buffer by buffer
      let skip = done;
      for (const b of bufs) {
        if (skip >= b.length) { skip -= b.length; continue; }
        const n = await this.readAll(b, skip, b.length - skip, phys + done);
        done += n;
        if (n < b.length - skip) break;
        skip = 0;
      }
    }
    return done;
  }

  private extentIndex(offset: number): number {
    let lo = 0;
    let hi = this.starts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.starts[mid] <= offset) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  }

  private async readAll(buf: Buffer, off: number, len: number, pos: number): Promise<number> {
    let done = 0;
    while (done < len) {
      const n = await readAt(this.fd, buf, off + done, len - done, pos + done);
      if (n === 0) break;
      done += n;
    }
    return done;
  }

  /** A sub-range of this source as its own source. */
  slice(offset: number, length: number, name = this.name): FileSource {
    if (!this.extents) return new FileSource(this.fd, name, [[offset, length]]);
    const ext: [number, number][] = [];
    let pos = offset;
    let left = length;
    while (left > 0) {
      const i = this.extentIndex(pos);
      const [phys, elen] = this.extents[i];
      const within = pos - this.starts[i];
      const n = Math.min(left, elen - within);
      if (n <= 0) throw new Error(`${name}: range beyond the end of ${this.name}`);
      ext.push([phys + within, n]);
      pos += n;
      left -= n;
    }
    return new FileSource(this.fd, name, ext);
  }

  close(): void {
    try { fs.closeSync(this.fd); } catch { /* already closed */ }
  }
}

/** Read a whole (small) source into memory. */
export async function readAllBytes(src: ByteSource, what: string): Promise<Buffer> {
  const buf = Buffer.allocUnsafe(src.size);
  await preadFully(src, buf, 0, what);
  return buf;
}
