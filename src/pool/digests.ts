// Cryptographic digests of pool blocks, for signed images: the first 128
// bits of the SHA-256 of each block's stored bytes (what the pool file
// holds), kept in the catalog. The signature covers the manifest, the
// manifest the catalog's SHA-256, and these digests every pool byte a view
// reads, so under --trust no byte reaches a reader that the key's owner
// did not sign (the 32-bit checks beside them only catch accidents).

import * as crypto from 'node:crypto';
import { ByteSource, preadFully } from '../io/source';

/** Bytes kept per block. */
export const DIGEST_BYTES = 16;
/** Pool bytes read at a time when computing the digests at build time. */
const WINDOW = 8 << 20;

/** Digest of a block's stored bytes, given in pieces. */
export function blockDigest(pieces: readonly Buffer[]): Buffer {
  const h = crypto.createHash('sha256');
  for (const p of pieces) h.update(p);
  return h.digest().subarray(0, DIGEST_BYTES);
}

/** Digests of every block (id order, DIGEST_BYTES each) of a pool, read a window at a time. */
export async function digestBlocks(pool: ByteSource, table: { count: number; offset: Float64Array; csize: Uint32Array }): Promise<Buffer> {
  const out = Buffer.alloc(table.count * DIGEST_BYTES);
  let win = Buffer.alloc(0);
  let winStart = 0;
  for (let i = 0; i < table.count; i++) {
    const s = table.offset[i];
    const n = table.csize[i];
    if (s < winStart || s + n > winStart + win.length) {
      winStart = s;
      win = Buffer.allocUnsafe(Math.min(Math.max(WINDOW, n), pool.size - s));
      await preadFully(pool, win, s, 'pool');
    }
    blockDigest([win.subarray(s - winStart, s - winStart + n)]).copy(out, i * DIGEST_BYTES);
  }
  return out;
}
