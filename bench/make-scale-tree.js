#!/usr/bin/env node
'use strict';
// Creates (once) a synthetic tree of exactly N entries for the scale section of
// bench/run.sh (13.): directories of small text files, deterministic (a seeded
// PRNG, fixed names, modes and mtimes), cached under bench/cache/scale-KEY/ where
// KEY hashes this script and N. Prints the cache directory, which holds tree/,
// entries (N) and bytes (the files' bytes).
//   node bench/make-scale-tree.js N
// Layout: tree/tNN/dNNN/ holding 99 files each; a top directory holds 100 leaf
// directories. Entries are counted in creation order (a directory, then what it
// holds) until N: N = 100,000 gives 10 top and 991 leaf directories and 98,999
// files. File sizes 0..4095 bytes (cubed uniform: mean about 1 KiB, many tiny),
// lines of words; 1 file in 16 is mode 0755, every mtime is 2024-01-01.

const fs = require('fs');
const path = require('path');
const crypto = require('crypto');

const FILES_PER_DIR = 99;
const DIRS_PER_TOP = 100;
const MAX_SIZE = 4096;
const MTIME = 1704067200; // 2024-01-01 00:00:00 UTC
const WORDS = ('lorem ipsum dolor sit amet config value daemon socket buffer kernel module package '
  + 'systemd service timer network address route table index header footer python import return '
  + 'struct static const unsigned include define ifdef endif true false null default').split(' ');
const EXTS = ['txt', 'conf', 'py', 'h', 'c', 'md', 'json', 'sh'];

const n = Number(process.argv[2]);
if (!Number.isInteger(n) || n < 1) {
  process.stderr.write('usage: make-scale-tree.js N\n');
  process.exit(2);
}
const here = __dirname;
const key = crypto.createHash('sha256').update(fs.readFileSync(__filename)).update(`\n${n}`).digest('hex').slice(0, 12);
const out = path.join(here, 'cache', `scale-${n}-${key}`);
if (fs.existsSync(path.join(out, 'done'))) {
  process.stdout.write(`${out}\n`);
  process.exit(0);
}

// a splitmix32-style generator with a fixed seed: the same tree every time
let state = 0x9e3779b9;
const rand = () => {
  state = (state + 0x9e3779b9) >>> 0;
  let z = state;
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
  return ((z ^ (z >>> 16)) >>> 0) / 2 ** 32;
};
const pick = (xs) => xs[Math.floor(rand() * xs.length)];

function content(size) {
  const parts = [];
  let len = 0;
  while (len < size) {
    const line = `${pick(WORDS)} ${pick(WORDS)} = ${Math.floor(rand() * 100000)} ${pick(WORDS)}\n`;
    parts.push(line);
    len += line.length;
  }
  return Buffer.from(parts.join('')).subarray(0, size);
}

const tree = path.join(out, 'tree');
fs.rmSync(out, { recursive: true, force: true });
fs.mkdirSync(tree, { recursive: true });
const t0 = Date.now();
let count = 0;
let bytes = 0;
const dirs = [];
const mkdir = (p) => {
  fs.mkdirSync(p);
  dirs.push(p);
  count++;
};
outer: for (let t = 0; ; t++) {
  const top = path.join(tree, `t${String(t).padStart(3, '0')}`);
  mkdir(top);
  if (count >= n) break;
  for (let d = 0; d < DIRS_PER_TOP; d++) {
    const leaf = path.join(top, `d${String(d).padStart(3, '0')}`);
    mkdir(leaf);
    if (count >= n) break outer;
    for (let f = 0; f < FILES_PER_DIR; f++) {
      const size = Math.floor(rand() ** 3 * MAX_SIZE);
      const name = `${pick(WORDS)}-${f}.${pick(EXTS)}`;
      const p = path.join(leaf, name);
      fs.writeFileSync(p, content(size), { mode: rand() < 1 / 16 ? 0o755 : 0o644 });
      fs.utimesSync(p, MTIME, MTIME);
      bytes += size;
      count++;
      if (count >= n) break outer;
    }
    if (count % 100000 < FILES_PER_DIR + 1) process.stderr.write(`make-scale-tree: ${count}/${n} entries\n`);
  }
}
// directories last: creating their entries moved their mtimes
for (const d of dirs.reverse()) fs.utimesSync(d, MTIME, MTIME);
fs.utimesSync(tree, MTIME, MTIME);
fs.writeFileSync(path.join(out, 'entries'), `${count}\n`);
fs.writeFileSync(path.join(out, 'bytes'), `${bytes}\n`);
fs.writeFileSync(path.join(out, 'done'), `${((Date.now() - t0) / 1000).toFixed(1)}\n`);
process.stderr.write(`make-scale-tree: ${count} entries, ${bytes} bytes of files in ${((Date.now() - t0) / 1000).toFixed(1)} s\n`);
process.stdout.write(`${out}\n`);
