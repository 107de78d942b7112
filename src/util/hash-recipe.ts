// Digest of a recipe's bytes, and a small pool of worker threads that
// compute them in parallel with the rest of the build. Zero runs are hashed
// from a shared zero buffer without reading or filling anything (a 20 GiB
// sparse disk image is mostly that).

import * as crypto from 'node:crypto';
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import { Recipe, SegKind, findSegment, segmentLength, serializeRecipe, deserializeRecipe } from '../recipe/recipe';
import { RecipeReader } from '../recipe/reader';
import { BlockStore, BlockTable } from '../pool/reader';

const CHUNK = 4 << 20;
const ZEROS = Buffer.alloc(CHUNK);

/** Hex digest of the recipe's bytes; `onBytes` reports progress. */
export async function digestRecipe(r: Recipe, blocks: BlockStore, alg = 'sha256', onBytes?: (n: number) => void): Promise<string> {
  const h = crypto.createHash(alg);
  const reader = new RecipeReader(r, blocks);
  const buf = Buffer.allocUnsafe(CHUNK);
  let pos = 0;
  while (pos < r.size) {
    const i = findSegment(r, pos);
    if (r.kinds[i] === SegKind.Zero) {
      const end = r.starts[i] + segmentLength(r, i);
      while (pos < end) {
        const n = Math.min(CHUNK, end - pos);
        h.update(n === CHUNK ? ZEROS : ZEROS.subarray(0, n));
        pos += n;
        onBytes?.(n);
      }
      continue;
    }
    // read up to the next zero run (or CHUNK bytes)
    let end = Math.min(r.size, pos + CHUNK);
    for (let k = i + 1; k < r.count && r.starts[k] < end; k++) {
      if (r.kinds[k] === SegKind.Zero) {
        end = r.starts[k];
        break;
      }
    }
    const got = await reader.pread(buf.subarray(0, end - pos), pos);
    if (got !== end - pos) throw new Error(`short read at ${pos}`);
    h.update(buf.subarray(0, got));
    pos = end;
    onBytes?.(got);
  }
  return h.digest('hex');
}

/**
 * A recipe and every recipe it includes, serialized for a worker: the
 * included ones first, each naming the others by its place in the list
 * (1-based); the last is `r`.
 */
export function bundle(r: Recipe): Buffer[] {
  const order = new Map<Recipe, number>();
  const out: Buffer[] = [];
  const add = (x: Recipe) => {
    if (order.has(x)) return;
    for (const s of x.subs) add(s);
    out.push(serializeRecipe(x, (s) => order.get(s)!));
    order.set(x, out.length);
  };
  add(r);
  return out;
}

/** The last recipe of a bundle, with those it includes. */
export function unbundle(list: Uint8Array[], what: string): Recipe {
  const loaded: Recipe[] = [];
  for (const [k, b] of list.entries()) {
    loaded.push(deserializeRecipe(Buffer.from(b), `${what} (${k + 1})`, (id) => {
      if (!(id >= 1 && id <= loaded.length)) throw new Error(`${what}: bad bundle`);
      return loaded[id - 1];
    }));
  }
  return loaded[loaded.length - 1];
}

interface Job {
  id: number;
  resolve: (hex: string) => void;
  reject: (e: Error) => void;
  size: number;
}

/** Worker threads hashing recipes over the pool (its files read one after another). */
export class HashPool {
  private readonly workers: { w: Worker; load: number; jobs: Map<number, Job> }[] = [];
  private nextId = 1;

  constructor(poolFiles: string[], table: BlockTable, threads: number, private readonly onBytes?: (n: number) => void) {
    const file = path.join(__dirname, `hash-worker${path.extname(__filename)}`);
    for (let i = 0; i < threads; i++) {
      const w = new Worker(file, { workerData: { poolFiles, table } });
      const entry = { w, load: 0, jobs: new Map<number, Job>() };
      w.on('message', (m: { id: number; hex?: string; error?: string; progress?: number }) => {
        if (m.progress) {
          this.onBytes?.(m.progress);
          return;
        }
        const job = entry.jobs.get(m.id);
        if (!job) return;
        entry.jobs.delete(m.id);
        entry.load -= job.size;
        if (m.error !== undefined) job.reject(new Error(m.error));
        else job.resolve(m.hex!);
      });
      w.on('error', (e) => {
        for (const job of entry.jobs.values()) job.reject(e);
        entry.jobs.clear();
      });
      this.workers.push(entry);
    }
  }

  /**
   * Digest of a recipe, computed by the least loaded worker; an `urgent` one
   * (someone waits for it to go on) goes before the jobs queued there.
   */
  digest(r: Recipe, alg = 'sha256', urgent = false): Promise<string> {
    const entry = this.workers.reduce((a, b) => (b.load < a.load ? b : a));
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      entry.jobs.set(id, { id, resolve, reject, size: r.size });
      entry.load += r.size;
      entry.w.postMessage({ id, alg, urgent, recipes: bundle(r) });
    });
  }

  async close(): Promise<void> {
    await Promise.all(this.workers.map((e) => e.w.terminate()));
  }
}
