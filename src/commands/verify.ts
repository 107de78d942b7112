// `uniso verify IMAGE`: check every pool block (stored bytes against their
// XXH3 check, inflated bytes against their CRC-32), check the catalog's
// integrity, recompute every view's SHA-256 against the one recorded at
// build time, and the live squashfs's (its file on the image, every byte:
// the views read only the first copy of each block, not the zlib framing
// or the blocks written twice, which the kernel reads when booting live).
// With --trust, the manifest's signature is checked first (openImage): the
// SHA-256s checked here are then the ones the signer vouched for.

import { openImage, OpenImage, OpenOptions } from '../image/open';
import { Namespace, SEQUENTIAL_READAHEAD } from '../image/namespace';
import { sha256Source } from '../util/hash';
import { Progress } from '../util/progress';
import { UserError } from '../util/errors';
import { PoolPart } from '../image/layout';
import { SquashfsTable } from '../image/squashfs-tables';

/** What verifyImage found: the problems (one line each) and what was checked. */
export interface VerifyResult {
  problems: string[];
  blocks: number;
  views: number;
  squashfs: boolean;
}

/** Check an open image's blocks, catalog, views and live squashfs; every problem is one line naming what is damaged. */
export async function verifyImage(img: OpenImage, progress: Progress): Promise<VerifyResult> {
  const problems: string[] = [];
  const sqlite = img.catalog.integrityProblems();
  for (const p of sqlite) problems.push(`catalog: ${p}`);
  const t = img.blocks.table;
  progress.phase('checking pool blocks', t.count, 'items');
  const WINDOW = 16;
  let next = 1;
  const worker = async () => {
    while (next <= t.count) {
      const id = next++;
      try {
        await img.blocks.checkBlock(id);
      } catch (e) {
        problems.push((e as Error).message);
      }
      progress.add(1);
    }
  };
  await Promise.all(Array.from({ length: WINDOW }, worker));
  const ns = new Namespace(img.catalog, img.blocks);
  const views = ns.fileViews();
  progress.phase('checking view checksums', views.reduce((s, v) => s + v.size, 0));
  const seen = new Map<number, string>();
  for (const v of views) {
    const node = ns.lookup('/' + v.path)!;
    let sha = v.recipe !== null ? seen.get(v.recipe) : undefined;
    try {
      if (!sha) {
        sha = await sha256Source(ns.source(node, SEQUENTIAL_READAHEAD), (n) => progress.add(n));
        if (v.recipe !== null) seen.set(v.recipe, sha);
      } else {
        progress.add(v.size);
      }
      if (sha !== v.sha256) problems.push(`${v.path}: SHA-256 ${sha} does not match the recorded ${v.sha256}`);
    } catch (e) {
      problems.push(`${v.path}: ${(e as Error).message}`);
    }
  }
  const sqSha = img.catalog.meta('squashfs_sha256');
  const squash = img.manifest.pool.parts.find((p) => p.role === 'squashfs');
  if (sqSha && squash) {
    progress.phase(`checking /${squash.path}`, squash.size);
    try {
      const sha = await sha256Source(img.pool.slice(squash.at, squash.size), (n) => progress.add(n));
      if (sha !== sqSha) {
        const blocksBad = problems.some((p) => /\bblock \d+\b/.test(p));
        problems.push(...await damagedTables(img, squash, img.catalog.meta('squashfs_tables'), blocksBad,
          `SHA-256 ${sha} does not match the recorded ${sqSha}`));
      }
    } catch (e) {
      problems.push(`/${squash.path}: ${(e as Error).message}`);
    }
  }
  progress.end();
  return { problems, blocks: t.count, views: views.length, squashfs: !!(sqSha && squash) };
}

/**
 * Which of the live squashfs's tables (recorded at build time, see
 * src/image/squashfs-tables.ts) are damaged: one line each, or one line
 * saying where else the damage is (its pool blocks, named above, or the
 * rest of its data area).
 */
async function damagedTables(img: OpenImage, squash: PoolPart, recorded: string | undefined, blocksBad: boolean, mismatch: string): Promise<string[]> {
  const whole = `/${squash.path}: ${mismatch} (the live squashfs is damaged`;
  let tables: SquashfsTable[];
  try {
    tables = recorded ? JSON.parse(recorded) as SquashfsTable[] : [];
  } catch {
    tables = [];
  }
  const bad: string[] = [];
  for (const t of tables) {
    if (!(Number.isSafeInteger(t.start) && Number.isSafeInteger(t.end) && t.start <= t.end && t.end <= squash.size)) continue;
    const sha = await sha256Source(img.pool.slice(squash.at + t.start, t.end - t.start));
    if (sha !== t.sha256) bad.push(`/${squash.path}: the live squashfs's ${t.name} (bytes ${t.start}..${t.end - 1}) is damaged`);
  }
  if (bad.length) return bad;
  if (blocksBad) return [`${whole}: in its pool blocks)`];
  return [`${whole}${tables.length ? ': in its data area, outside the pool blocks' : ''})`];
}

export async function verify(image: string, opts: { quiet?: boolean }, open: OpenOptions = {}): Promise<void> {
  const img = await openImage(image, { ...open, cacheBytes: 8 << 20 });
  try {
    const r = await verifyImage(img, new Progress(!opts.quiet));
    const { problems } = r;
    if (problems.length) {
      for (const p of problems.slice(0, 20)) process.stderr.write(`uniso: ${p}\n`);
      throw new UserError(`${image}: verification failed (${problems.length} problem${problems.length > 1 ? 's' : ''})`);
    }
    if (!opts.quiet) {
      const signed = img.signature.trustedKey ? `, signature good (key ${img.signature.trustedKey})` : '';
      process.stderr.write(`uniso: ${image}: ${r.blocks} blocks, ${r.views} views${r.squashfs ? ' and the live squashfs' : ''} verified${signed}\n`);
    }
  } finally {
    img.close();
  }
}
