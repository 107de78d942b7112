// Worker thread of HashPool: hashes recipes it is sent, reading the pool
// files through its own BlockStore. One recipe at a time, in the order they
// came, each loaded only when its turn comes: a build sends every view's
// recipe at once, and a 1M-entry tree's tarballs and disks are large.

import { parentPort, workerData } from 'node:worker_threads';
import { FileSource } from '../io/source';
import { BlockStore, BlockTable } from '../pool/reader';
import { digestRecipe, unbundle } from './hash-recipe';

/** Inflated pool blocks kept per worker. */
const CACHE_BYTES = 32 << 20;

const { poolFiles, table } = workerData as { poolFiles: string[]; table: BlockTable };
const source = FileSource.concat('pool', poolFiles.map((f) => FileSource.open(f)));
const blocks = new BlockStore(source, table, { name: poolFiles.join(' + '), cacheBytes: CACHE_BYTES });

interface Job { id: number; alg: string; urgent: boolean; recipes: Uint8Array[] }
/** Jobs not started yet, in the order they came (urgent ones first): one runs at a time, so only its recipe is loaded. */
const queue: Job[] = [];
let running = false;

async function hash(m: Job): Promise<void> {
  const r = unbundle(m.recipes, `recipe ${m.id}`);
  m.recipes = [];
  let pending = 0;
  const flush = () => {
    if (pending) parentPort!.postMessage({ id: m.id, progress: pending });
    pending = 0;
  };
  const hex = await digestRecipe(r, blocks, m.alg, (n) => {
    pending += n;
    if (pending >= 64 << 20) flush();
  });
  flush();
  parentPort!.postMessage({ id: m.id, hex });
}

async function drain(): Promise<void> {
  running = true;
  for (let m = queue.shift(); m; m = queue.shift()) {
    try {
      await hash(m);
    } catch (e) {
      parentPort!.postMessage({ id: m.id, error: (e as Error).message });
    }
  }
  running = false;
}

parentPort!.on('message', (m: Job) => {
  const at = m.urgent ? queue.findIndex((j) => !j.urgent) : -1;
  queue.splice(at < 0 ? queue.length : at, 0, m);
  if (!running) void drain();
});
