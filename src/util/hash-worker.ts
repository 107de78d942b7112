// Worker thread of HashPool: hashes recipes it is sent, reading the pool
// files through its own BlockStore.

import { parentPort, workerData } from 'node:worker_threads';
import { FileSource } from '../io/source';
import { BlockStore, BlockTable } from '../pool/reader';
import { digestRecipe, unbundle } from './hash-recipe';

const { poolFiles, table } = workerData as { poolFiles: string[]; table: BlockTable };
const source = FileSource.concat('pool', poolFiles.map((f) => FileSource.open(f)));
const blocks = new BlockStore(source, table, { name: poolFiles.join(' + '), cacheBytes: 64 << 20 });

parentPort!.on('message', (m: { id: number; alg: string; recipes: Uint8Array[] }) => {
  const r = unbundle(m.recipes, `recipe ${m.id}`);
  let pending = 0;
  const flush = () => {
    if (pending) parentPort!.postMessage({ id: m.id, progress: pending });
    pending = 0;
  };
  digestRecipe(r, blocks, m.alg, (n) => {
    pending += n;
    if (pending >= 64 << 20) flush();
  }).then(
    (hex) => { flush(); parentPort!.postMessage({ id: m.id, hex }); },
    (e: Error) => parentPort!.postMessage({ id: m.id, error: e.message }),
  );
});
