// CRC-32 and Adler-32 helpers against independent implementations: zlib's
// crc32 (Node) and Python's zlib.adler32.

import t from 'tap';
import { pseudoRandom } from '../lib/fixture';
import * as zlib from 'node:zlib';
import { spawnSync } from 'node:child_process';
import { crc32, crc32Combine, crc32Zeros, Crc32Accumulator } from '../../src/checksum/crc32';
import { adler32, adler32Combine, adler32Zeros } from '../../src/checksum/adler32';

const rand = pseudoRandom;

function pyAdler(b: Buffer): number {
  const r = spawnSync('python3', ['-c', 'import sys,zlib; print(zlib.adler32(sys.stdin.buffer.read()))'], { input: b, encoding: 'utf8' });
  return Number(r.stdout.trim());
}

t.test('crc32Combine equals the CRC of the concatenation', async (t) => {
  for (const [la, lb] of [[0, 5], [5, 0], [1, 1], [1000, 65536], [65536, 12345], [3, 1 << 20]]) {
    const a = rand(la, la + 7);
    const b = rand(lb, lb + 11);
    t.equal(crc32Combine(crc32(a), crc32(b), b.length), zlib.crc32(Buffer.concat([a, b])) >>> 0, `${la}+${lb}`);
  }
});

t.test('crc32Zeros equals the CRC of a zero run', async (t) => {
  for (const n of [0, 1, 2, 511, 512, 65535, 65536, 1_000_003]) {
    t.equal(crc32Zeros(n), zlib.crc32(Buffer.alloc(n)) >>> 0, `n=${n}`);
  }
});

t.test('Crc32Accumulator mixes bytes, CRCs and zeros', async (t) => {
  const parts = [rand(100, 1), Buffer.alloc(70000), rand(65536, 2), Buffer.alloc(1), rand(3, 3)];
  const acc = new Crc32Accumulator();
  acc.addBytes(parts[0]);
  acc.addZeros(parts[1].length);
  acc.addCrc(crc32(parts[2]), parts[2].length);
  acc.addZeros(1);
  acc.addBytes(parts[4]);
  t.equal(acc.crc, zlib.crc32(Buffer.concat(parts)) >>> 0);
  t.equal(acc.length, parts.reduce((s, p) => s + p.length, 0));
});

t.test('adler32 matches Python zlib, and combines', async (t) => {
  for (const n of [0, 1, 5551, 5552, 5553, 65536, 200000]) {
    const b = rand(n, n + 3);
    t.equal(adler32(b), pyAdler(b), `adler32 of ${n} bytes`);
  }
  const a = rand(70000, 5);
  const b = rand(65536, 6);
  t.equal(adler32Combine(adler32(a), adler32(b), b.length), pyAdler(Buffer.concat([a, b])), 'combine');
  t.equal(adler32Zeros(100000), pyAdler(Buffer.alloc(100000)), 'zeros');
  t.equal(adler32Combine(adler32(a), adler32Zeros(65536), 65536), pyAdler(Buffer.concat([a, Buffer.alloc(65536)])), 'combine with zeros');
});
