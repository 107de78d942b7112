// SHA-256 (or another digest) of a ByteSource, read in large chunks with the next read in flight
// while the current chunk is hashed.

import * as crypto from 'node:crypto';
import { ByteSource } from '../io/source';

const CHUNK = 4 << 20;

/** Hex digest (sha256 by default) of a ByteSource's bytes. */
export async function sha256Source(src: ByteSource, onBytes?: (n: number) => void, alg = 'sha256'): Promise<string> {
  const h = crypto.createHash(alg);
  let bufs = [Buffer.allocUnsafe(CHUNK), Buffer.allocUnsafe(CHUNK)];
  let off = 0;
  let pending: Promise<number> | undefined = src.size > 0 ? src.pread(bufs[0], 0) : undefined;
  while (pending) {
    const n = await pending;
    if (n <= 0) throw new Error(`short read at offset ${off}`);
    const cur = bufs[0];
    const next = off + n;
    bufs = [bufs[1], cur];
    pending = next < src.size ? src.pread(bufs[0].subarray(0, Math.min(CHUNK, src.size - next)), next) : undefined;
    h.update(cur.subarray(0, n));
    onBytes?.(n);
    off = next;
  }
  return h.digest('hex');
}
