#!/usr/bin/env node
'use strict';
// The soak readers of bench/run.sh (14.): W worker threads read random ranges of
// random files under TARGET for S seconds and compare every byte with the same
// range of a reference copy (pread both; a short read must be as short as the
// reference's, at its end of file). With --pid, the main thread samples that
// process (the uniso daemon) every --sample seconds: VmRSS, VmHWM, open fds,
// threads. It drops the page cache (echo 1 > drop_caches) every --drop seconds
// (0: never), so reads keep reaching the daemon (the mount caches in the kernel),
// and the references' pages go too (the local baseline gets the same).
//   node bench/soak.js --files FILES.json --target DIR --seconds S [--workers 16]
//        [--pid PID] [--sample 5] [--drop 20] [--seed 1] --samples OUT.tsv --out OUT.json
// FILES.json: [{ path, ref, size, extents? }]: path under TARGET, ref the reference
// copy, extents [[start, end], ...] its data regions (sparse files; offsets are
// drawn from them half the time). With TARGET the references' own directory and
// path = ref, the same readers measure the local-disk baseline.
// Ranges: length 1 B .. 4 MiB, log-uniform (most small); offset uniform over the
// file (30%), a few bytes either side of a 64 KiB boundary, where pool blocks and
// recipe segments meet (30%), inside a data extent (30%) or up to and past the
// end of file (10%). Each worker reopens a file now and then (1 read in 16) so
// opens and releases keep coming.

const fs = require('fs');
const path = require('path');
const { Worker, isMainThread, parentPort, workerData } = require('worker_threads');

const MAX_LEN = 4 * 1024 * 1024;
const GRAIN = 65536;

// a small seeded generator per worker: runs are repeatable for a given seed and timing
function prng(seed) {
  let s = seed >>> 0 || 1;
  return () => {
    s = (s + 0x9e3779b9) >>> 0;
    let z = s;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
    return ((z ^ (z >>> 16)) >>> 0) / 2 ** 32;
  };
}

// read len bytes at off (fewer at end of file); returns the count
function preadFull(fd, buf, len, off) {
  let got = 0;
  while (got < len) {
    const n = fs.readSync(fd, buf, got, len - got, off + got);
    if (n === 0) break;
    got += n;
  }
  return got;
}

function worker() {
  const { files, target, deadline, seed, id } = workerData;
  const rand = prng(seed);
  const a = Buffer.allocUnsafe(MAX_LEN);
  const b = Buffer.allocUnsafe(MAX_LEN);
  const fds = new Map(); // index -> { t, r }
  const stats = { id, reads: 0, bytes: 0, mismatches: 0, errors: 0, details: [], perFile: {} };
  const open = (i) => {
    let e = fds.get(i);
    if (!e) {
      e = { t: fs.openSync(path.join(target, files[i].path), 'r'), r: fs.openSync(files[i].ref, 'r') };
      fds.set(i, e);
    }
    return e;
  };
  const close = (i) => {
    const e = fds.get(i);
    if (!e) return;
    fds.delete(i);
    for (const fd of [e.t, e.r]) { try { fs.closeSync(fd); } catch { /* already gone */ } }
  };
  let lastPost = Date.now();
  while (Date.now() < deadline) {
    const i = Math.floor(rand() * files.length);
    const f = files[i];
    const len = Math.max(1, Math.floor(2 ** (rand() * 22)));
    const mode = rand();
    let off;
    if (mode < 0.3 || f.size <= GRAIN) off = Math.floor(rand() * f.size);
    else if (mode < 0.6) off = Math.floor(rand() * (f.size / GRAIN)) * GRAIN + Math.floor(rand() * 64) - 32 - (rand() < 0.5 ? Math.floor(len / 2) : 0);
    else if (mode < 0.9 && f.extents && f.extents.length) {
      const [s, e] = f.extents[Math.floor(rand() * f.extents.length)];
      off = s + Math.floor(rand() * (e - s));
    } else off = f.size - Math.floor(rand() * len);
    off = Math.min(Math.max(0, off), f.size);
    const pf = stats.perFile[f.path] || (stats.perFile[f.path] = { reads: 0, bytes: 0 });
    try {
      if (rand() < 1 / 16) close(i);
      const e = open(i);
      const n = preadFull(e.t, a, len, off);
      const m = preadFull(e.r, b, len, off);
      stats.reads++;
      stats.bytes += n;
      pf.reads++;
      pf.bytes += n;
      if (n !== m || a.compare(b, 0, m, 0, n) !== 0) {
        stats.mismatches++;
        let d = 0;
        while (d < Math.min(n, m) && a[d] === b[d]) d++;
        if (stats.details.length < 20) stats.details.push(`${f.path} offset ${off} length ${len}: read ${n} bytes, reference ${m}; first difference at +${d}`);
      }
    } catch (err) {
      stats.errors++;
      if (stats.details.length < 20) stats.details.push(`${f.path} offset ${off} length ${len}: ${err.code || ''} ${err.message}`);
      close(i);
    }
    if (Date.now() - lastPost > 2000) {
      parentPort.postMessage({ partial: true, reads: stats.reads, bytes: stats.bytes, id });
      lastPost = Date.now();
    }
  }
  for (const i of [...fds.keys()]) close(i);
  parentPort.postMessage({ done: true, stats });
}

function arg(name, dflt) {
  const i = process.argv.indexOf(`--${name}`);
  if (i < 0) {
    if (dflt === undefined) { process.stderr.write(`soak.js: --${name} is required\n`); process.exit(2); }
    return dflt;
  }
  return process.argv[i + 1];
}

function procStatus(pid) {
  const s = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const g = (k) => { const m = new RegExp(`^${k}:\\s+(\\d+)`, 'm').exec(s); return m ? Number(m[1]) : NaN; };
  return { rss: g('VmRSS'), hwm: g('VmHWM'), threads: g('Threads'), fds: fs.readdirSync(`/proc/${pid}/fd`).length };
}

async function main() {
  const files = JSON.parse(fs.readFileSync(arg('files'), 'utf8'));
  const target = arg('target');
  const seconds = Number(arg('seconds'));
  const nWorkers = Number(arg('workers', '16'));
  const pid = arg('pid', '');
  const sampleS = Number(arg('sample', '5'));
  const dropS = Number(arg('drop', '20'));
  const seed = Number(arg('seed', '1'));
  const samplesOut = arg('samples');
  const out = arg('out');
  const t0 = Date.now();
  const deadline = t0 + seconds * 1000;
  const partial = new Array(nWorkers).fill(null).map(() => ({ reads: 0, bytes: 0 }));
  const samples = [];
  const sample = (phaseName) => {
    let phase = phaseName;
    const t = (Date.now() - t0) / 1000;
    const tot = partial.reduce((x, p) => ({ reads: x.reads + p.reads, bytes: x.bytes + p.bytes }), { reads: 0, bytes: 0 });
    let s = { rss: NaN, hwm: NaN, threads: NaN, fds: NaN };
    try {
      if (pid) s = procStatus(pid);
    } catch {
      phase = `${phase} (no such process)`; // the daemon died: the readers' errors say the rest
    }
    samples.push({ t, phase, ...s, ...tot });
    fs.appendFileSync(samplesOut, `${t.toFixed(1)}\t${phase}\t${s.rss}\t${s.hwm}\t${s.fds}\t${s.threads}\t${tot.reads}\t${tot.bytes}\n`);
  };
  fs.writeFileSync(samplesOut, '');
  if (pid) sample('before');
  const sampler = setInterval(() => sample('reading'), sampleS * 1000);
  // dropping takes seconds on a busy machine: off the main thread (libuv's pool), one at a time, so sampling keeps its pace
  let dropping = false;
  const dropper = dropS > 0 ? setInterval(() => {
    if (dropping) return;
    dropping = true;
    fs.promises.writeFile('/proc/sys/vm/drop_caches', '1').catch(() => {}).finally(() => { dropping = false; });
  }, dropS * 1000) : null;
  const results = await Promise.all(Array.from({ length: nWorkers }, (_, id) => new Promise((resolve, reject) => {
    const w = new Worker(__filename, { workerData: { files, target, deadline, seed: seed * 1000 + id + 1, id } });
    w.on('message', (msg) => {
      if (msg.partial) partial[msg.id] = { reads: msg.reads, bytes: msg.bytes };
      else if (msg.done) {
        partial[id] = { reads: msg.stats.reads, bytes: msg.stats.bytes };
        resolve(msg.stats);
      }
    });
    w.on('error', reject);
    w.on('exit', (code) => { if (code !== 0) reject(new Error(`worker ${id} exited with ${code}`)); });
  })));
  const t1 = Date.now();
  clearInterval(sampler);
  if (dropper) clearInterval(dropper);
  if (pid) {
    sample('stopped');
    await new Promise((r) => setTimeout(r, 3000));
    sample('idle');
  }
  const perFile = {};
  for (const r of results) for (const [p, v] of Object.entries(r.perFile)) {
    const x = perFile[p] || (perFile[p] = { reads: 0, bytes: 0 });
    x.reads += v.reads;
    x.bytes += v.bytes;
  }
  const sum = (k) => results.reduce((x, r) => x + r[k], 0);
  const summary = {
    target, seconds: (t1 - t0) / 1000, workers: nWorkers, files: files.length,
    reads: sum('reads'), bytes: sum('bytes'), mismatches: sum('mismatches'), errors: sum('errors'),
    details: results.flatMap((r) => r.details).slice(0, 40), perFile,
  };
  fs.writeFileSync(out, JSON.stringify(summary, null, 1));
  process.stderr.write(`soak: ${summary.reads} reads, ${summary.bytes} bytes in ${summary.seconds.toFixed(1)} s by ${nWorkers} readers; ${summary.mismatches} mismatches, ${summary.errors} errors\n`);
}

if (isMainThread) main().catch((e) => { process.stderr.write(`soak.js: ${e.stack || e}\n`); process.exit(1); });
else worker();
