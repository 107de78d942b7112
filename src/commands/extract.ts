// `uniso extract IMAGE PATH -o OUT|-`: copy one file of the mount namespace
// out without FUSE, through the same reader the daemon uses. Writes to a
// temp name and renames, so a failure leaves nothing behind (a device or
// FIFO given as the output is written in place). A regular output file is
// written sparse: all-zero runs of SPARSE_UNIT bytes (a 20 GiB raw disk's
// free space) become holes, as `cp --sparse=always` would make them.

import * as fs from 'node:fs';
import * as path from 'node:path';
import { openImage, OpenOptions } from '../image/open';
import { Progress } from '../util/progress';
import { Namespace, SEQUENTIAL_READAHEAD } from '../image/namespace';
import { checkOutputDir, commitOutput, isSpecialOutput, removeQuietly, tempNameFor } from '../util/atomic';
import { describeErrno, fileError, UserError } from '../util/errors';

const CHUNK = 4 << 20;
/** Views of a remote image from this size on get progress output. */
const PROGRESS_MIN = 16 << 20;
/** Aligned all-zero runs of this size are left as holes in a regular output file. */
const SPARSE_UNIT = 64 * 1024;
const ZEROS = Buffer.alloc(SPARSE_UNIT);

/** Write `buf` at `pos`, skipping its aligned all-zero SPARSE_UNITs (the file is extended to its size at the end). */
function writeSparse(fd: number, buf: Buffer, pos: number): void {
  for (let o = 0; o < buf.length;) {
    const unitEnd = Math.min(buf.length, (Math.floor((pos + o) / SPARSE_UNIT) + 1) * SPARSE_UNIT - pos);
    const piece = buf.subarray(o, unitEnd);
    if (piece.length !== SPARSE_UNIT || !piece.equals(ZEROS)) {
      for (let w = 0; w < piece.length;) w += fs.writeSync(fd, piece, w, piece.length - w, pos + o + w);
    }
    o = unitEnd;
  }
}

function writeAll(fd: number, buf: Buffer): void {
  let o = 0;
  while (o < buf.length) {
    try {
      o += fs.writeSync(fd, buf, o, buf.length - o);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'EAGAIN') continue;
      throw e;
    }
  }
}

export async function extract(image: string, viewPath: string, output: string, open: OpenOptions = {}, quiet = false): Promise<void> {
  const toStdout = output === '-';
  if (!toStdout) checkOutputDir(output);
  const img = await openImage(image, open);
  let tmp: string | undefined;
  try {
    const ns = new Namespace(img.catalog, img.blocks);
    const node = ns.lookup('/' + viewPath.replace(/^\/+/, ''));
    if (!node) throw fileError(image, `no file "${viewPath}" in this image (see: uniso ls ${image})`);
    if (ns.isDir(node)) throw fileError(image, `"${viewPath}" is a directory`);
    let src;
    try {
      src = ns.source(node, SEQUENTIAL_READAHEAD);
    } catch {
      throw fileError(image, `"${viewPath}" is not a regular file`);
    }
    let fd: number;
    if (toStdout) {
      fd = 1;
    } else if (isSpecialOutput(output)) {
      try {
        fd = fs.openSync(output, 'w');
      } catch (e) {
        throw fileError(output, describeErrno(e));
      }
    } else {
      tmp = tempNameFor(path.resolve(output));
      fd = fs.openSync(tmp, 'w');
    }
    // a large view of a remote image may take a while: say how far it is
    const progress = new Progress(!!img.remote && !quiet && src.size >= PROGRESS_MIN);
    progress.phase(`${viewPath}`, src.size);
    try {
      const bufs = [Buffer.allocUnsafe(CHUNK), Buffer.allocUnsafe(CHUNK)];
      let off = 0;
      let cur = 0;
      let pending = src.size > 0 ? src.pread(bufs[0].subarray(0, Math.min(CHUNK, src.size)), 0) : undefined;
      while (pending) {
        const n = await pending;
        const buf = bufs[cur];
        off += n;
        cur ^= 1;
        pending = off < src.size ? src.pread(bufs[cur].subarray(0, Math.min(CHUNK, src.size - off)), off) : undefined;
        if (tmp) writeSparse(fd, buf.subarray(0, n), off - n);
        else writeAll(fd, buf.subarray(0, n)); // EPIPE: the CLI ends quietly, as on SIGPIPE
        progress.add(n);
      }
      if (tmp) fs.ftruncateSync(fd, src.size);
      progress.end();
    } finally {
      if (!toStdout) fs.closeSync(fd);
    }
    if (tmp) {
      commitOutput(tmp, output);
      tmp = undefined;
    }
  } catch (e) {
    if ((e as Error).name === 'BlockCorruptError' || (e as { code?: string }).code === 'EUNISO_CORRUPT') {
      throw new UserError((e as Error).message);
    }
    throw e;
  } finally {
    if (tmp) removeQuietly(tmp);
    img.close();
  }
}
