// Block digests (src/pool/digests.ts): the catalog of a built image holds
// the SHA-256 (first 128 bits) of every block's stored bytes, and a block
// store given digests refuses a block whose bytes pass the 32-bit check
// but not its digest (what a forged block from a hostile mirror would do).

import t from 'tap';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { buildUniversal, tempDir } from '../lib/fixture';
import { openImage } from '../../src/image/open';
import { BlockStore, BlockCorruptError } from '../../src/pool/reader';
import { DIGEST_BYTES } from '../../src/pool/digests';

t.test('the catalog pins every block with a digest, and a store with digests checks them', async (t) => {
  const dir = tempDir(t);
  const iso = buildUniversal(dir);
  const img = await openImage(iso);
  t.teardown(() => img.close());
  const table = img.blocks.table;
  const digests = img.catalog.blockDigests(table.count)!;
  t.ok(digests, 'catalog has block digests');
  t.equal(digests.length, table.count * DIGEST_BYTES, 'one per block');
  // recompute them from the ISO's bytes with node's crypto, independently of the reader
  const fd = fs.openSync(iso, 'r');
  t.teardown(() => fs.closeSync(fd));
  let mismatches = 0;
  for (let i = 0; i < table.count; i++) {
    const buf = Buffer.alloc(table.csize[i]);
    const n = await img.pool.pread(buf, table.offset[i]);
    t.equal(n, buf.length);
    const want = crypto.createHash('sha256').update(buf).digest().subarray(0, DIGEST_BYTES);
    if (!want.equals(digests.subarray(i * DIGEST_BYTES, (i + 1) * DIGEST_BYTES))) mismatches++;
  }
  t.equal(mismatches, 0, `all ${table.count} digests match the pool bytes`);

  const victim = Math.ceil(table.count / 2);
  const forged = Buffer.from(digests);
  forged[(victim - 1) * DIGEST_BYTES] ^= 1;
  const strict = new BlockStore(img.pool, table, { name: path.basename(iso), digests: forged });
  await t.rejects(strict.stored(victim), BlockCorruptError, 'a block whose digest does not match is refused');
  await t.rejects(strict.checkBlock(victim), BlockCorruptError, 'and verify names it');
  const other = victim === 1 ? 2 : 1;
  t.ok((await strict.stored(other)).length > 0, 'other blocks still read');
  const lax = new BlockStore(img.pool, table, { name: path.basename(iso) });
  t.ok((await lax.stored(victim)).length > 0, 'without digests the same block passes its 32-bit check (so the digest made the difference)');
});
