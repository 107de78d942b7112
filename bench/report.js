#!/usr/bin/env node
'use strict';
// Turns the raw measurements bench/run.sh left in its work directory
// (facts.tsv, conv-times.tsv, conv-sizes.tsv, reads.tsv, build-progress.log,
// views.json, remote.tsv, ...) into bench/results.md and a compact summary on
// stdout. After BENCH_ONLY=11 to 14 (fact bench_only) only that section's files
// are there, and only its figures are written.
//   node bench/report.js WORKDIR RESULTS.md
// Exits 1 when BENCH_STRICT=1 and a target is missed.

const fs = require('fs');
const path = require('path');

const [work, out] = process.argv.slice(2);
if (!work || !out) {
  process.stderr.write('usage: report.js WORKDIR RESULTS.md\n');
  process.exit(2);
}
// set from the facts: the sections a BENCH_ONLY run skipped left no files (read as empty)
let only = '';
const rd = (f) => {
  const p = path.join(work, f);
  if (only && !fs.existsSync(p)) return f.endsWith('.json') ? '{}' : '';
  return fs.readFileSync(p, 'utf8');
};
const tsv = (f) => rd(f).split('\n').filter(Boolean).map((l) => l.split('\t'));
// sections 13 and 14 record as they go: a file a failed part never wrote reads as empty, in any run
const rdOpt = (f) => (fs.existsSync(path.join(work, f)) ? rd(f) : f.endsWith('.json') ? '{}' : '');
const tsvOpt = (f) => rdOpt(f).split('\n').filter(Boolean).map((l) => l.split('\t'));

const facts = Object.fromEntries(tsv('facts.tsv').map(([k, ...v]) => [k, v.join('\t')]));
only = facts.bench_only || '';
const convTimes = tsv('conv-times.tsv').map(([p, s]) => [p, Number(s)]);
const convSizes = tsv('conv-sizes.tsv').map(([p, b]) => [p, Number(b)]);
const reads = tsv('reads.tsv').map(([kind, rep, file, v]) => ({ kind, rep: Number(rep), file, v: Number(v) }));
const viewsJson = JSON.parse(rd('views.json'));
const views = Array.isArray(viewsJson) ? viewsJson : [];
const num = (k) => Number(facts[k]);
const disk = tsv('disk.tsv').map(([kind, rep, v]) => ({ kind, rep: Number(rep), v: Number(v) }));
const marks = tsv('marks.tsv').map(([name, t, busy, ours, daemon]) => ({ name, t: Number(t), busy: Number(busy), ours: Number(ours), daemon: Number(daemon) }));
const serve = tsv('serve.tsv').map(([kind, rep, v]) => ({ kind, rep: Number(rep), v: Number(v) }));
const checks = tsv('checks.tsv').map(([name, result, detail]) => ({ name, ok: result === 'ok', detail }));
const kernel = tsv('kernel.tsv').map(([kind, rep, v]) => ({ kind, rep: Number(rep), v: Number(v) }));
const catalog = JSON.parse(rd('catalog.json'));
const remote = tsv('remote.tsv').map(([kind, rep, v]) => ({ kind, rep: Number(rep), v: Number(v) }));
const remoteChecks = tsv('remote-checks.tsv').map(([name, result, detail]) => ({ name, ok: result === 'ok', detail }));
const newdisk = tsv('newdisk.tsv').map(([kind, rep, v]) => ({ kind, rep: Number(rep), v: Number(v) }));
const ndChecks = tsv('newdisk-checks.tsv').map(([name, result, detail]) => ({ name, ok: result === 'ok', detail }));
const ndRecipesJson = JSON.parse(rd('newdisk-recipes.json'));
const ndRecipes = Array.isArray(ndRecipesJson) ? ndRecipesJson : [];
const scale = tsvOpt('scale.tsv').map(([n, kind, rep, v]) => ({ n: Number(n), kind, rep: Number(rep), v: Number(v) }));

const MB = 1e6;
const MiB = 1 << 20;
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
const f1 = (x) => x.toFixed(1);
const f2 = (x) => x.toFixed(2);
const f3 = (x) => x.toFixed(3);
const mb = (b) => `${(b / MB).toFixed(1)} MB`;

// ---- headline metrics ---------------------------------------------------------
const viewBytes = num('view_bytes');
const isoBytes = num('universal_iso_bytes');
const uRates = reads.filter((r) => r.kind === 'uniso').map((r) => viewBytes / r.v / MB);
const pRates = reads.filter((r) => r.kind === 'passthrough').map((r) => isoBytes / r.v / MB);
const uHwm = Math.max(...reads.filter((r) => r.kind === 'uniso-vmhwm').map((r) => r.v)) * 1024;
const pHwm = Math.max(...reads.filter((r) => r.kind === 'passthrough-vmhwm').map((r) => r.v)) * 1024;
const sepSum = num('input_iso_bytes') + convSizes.reduce((s, [, b]) => s + b, 0);
const diskMed = (k) => median(disk.filter((r) => r.kind === k).map((r) => r.v));
const checkOf = (names) => {
  const cs = checks.filter((c) => names.includes(c.name));
  return cs.length === names.length && cs.every((c) => c.ok) ? 'ok' : 'FAIL';
};
// serving (section 9): MB/s from the median seconds of a kind
const sMed = (k) => median(serve.filter((r) => r.kind === k).map((r) => r.v));
const sRate = (k, bytes) => bytes / sMed(k) / MB;
const dockerBytes = num('docker_view_bytes');
const ovaBytes = num('ova_view_bytes');
const warmRate = median(reads.filter((r) => r.kind === 'uniso-warm').map((r) => viewBytes / r.v / MB));
const read8Hwm = Math.max(...serve.filter((r) => r.kind === 'read8-vmhwm').map((r) => r.v)) * 1024;
const checkNames = { u: ['uniso-ova', 'uniso-ova-vmdk', 'uniso-qcow2'], b: ['conv-vmdk', 'conv-qcow2', 'conv-qcow2c'] };
// kernel reads of every file of the tree, through each squashfs (MB/s of the tree's bytes)
const kRate = (k) => median(kernel.filter((r) => r.kind === k).map((r) => num('tree_bytes') / r.v / MB));

const metrics = [
  {
    name: 'build time, all views (s)', u: num('uniso_build_s'), b: num('conventional_build_s'),
    fmt: f1, ratio: num('uniso_build_s') / num('conventional_build_s'), target: '<= 0.5', ok: (r) => r <= 0.5,
  },
  {
    name: 'size: universal ISO vs separate files (MB)', u: isoBytes / MB, b: sepSum / MB,
    fmt: f1, ratio: isoBytes / sepSum, target: '<= 0.35', ok: (r) => r <= 0.35,
  },
  {
    name: 'size: universal ISO vs the input ISO rebuilt with mksquashfs -comp gzip (MB)', u: isoBytes / MB, b: num('conv_gzip_iso_bytes') / MB,
    fmt: f1, ratio: isoBytes / num('conv_gzip_iso_bytes'), target: '<= 1.05', ok: (r) => r <= 1.05,
  },
  {
    name: 'size: universal ISO vs the input ISO as given, xz squashfs (MB)', u: isoBytes / MB, b: num('input_iso_bytes') / MB,
    fmt: f1, ratio: isoBytes / num('input_iso_bytes'), target: '<= 1.20', ok: (r) => r <= 1.2,
  },
  {
    name: `kernel read of every file, uniso's squashfs vs mksquashfs gzip, cold, median of ${num('reps')} (MB/s)`, u: kRate('uniso'), b: kRate('mksquashfs'),
    fmt: f1, ratio: kRate('uniso') / kRate('mksquashfs'), target: '>= 0.9', ok: (r) => r >= 0.9,
  },
  {
    name: `FUSE cold read, spliced tar.gz vs passthrough, median of ${uRates.length} (MB/s)`, u: median(uRates), b: median(pRates),
    fmt: f1, ratio: median(uRates) / median(pRates), target: '>= 0.8', ok: (r) => r >= 0.8,
  },
  {
    name: 'daemon peak RSS, one reader at a time, VmHWM (MB)', u: uHwm / MB, b: pHwm / MB,
    fmt: f1, ratio: uHwm / pHwm, target: '<= 250 MB', ok: () => uHwm / MB <= 250,
  },
  {
    name: 'build time with disk views / without (s)', u: num('uniso_build_s'), b: num('uniso_nodisk_build_s'),
    fmt: f1, ratio: num('uniso_build_s') / num('uniso_nodisk_build_s'), target: '<= 1.25', ok: (r) => r <= 1.25,
  },
  {
    name: `OVA copy-out, median of ${num('reps')} (s); ratio = speedup`, u: diskMed('uniso-ova'), b: diskMed('conv-vmdk'),
    fmt: f2, ratio: diskMed('conv-vmdk') / diskMed('uniso-ova'), target: '>= 5', ok: (r) => r >= 5,
  },
  {
    name: 'qcow2 copy-out vs convert -O qcow2 (s); speedup', u: diskMed('uniso-qcow2'), b: diskMed('conv-qcow2'),
    fmt: f2, ratio: diskMed('conv-qcow2') / diskMed('uniso-qcow2'), target: 'info', ok: () => null,
  },
  {
    name: 'qcow2 copy-out vs convert -c -O qcow2 (s); speedup', u: diskMed('uniso-qcow2'), b: diskMed('conv-qcow2c'),
    fmt: f2, ratio: diskMed('conv-qcow2c') / diskMed('uniso-qcow2'), target: 'info', ok: () => null,
  },
  {
    name: 'OVA size vs conventional OVA (MB)', u: num('uniso_ova_bytes') / MB, b: num('conv_ova_bytes') / MB,
    fmt: f1, ratio: num('uniso_ova_bytes') / num('conv_ova_bytes'), target: '<= 1.10', ok: (r) => r <= 1.1,
  },
  {
    name: 'inflating view (docker tar) vs squashfuse, cold (MB/s)', u: sRate('uniso-docker', dockerBytes), b: sRate('squashfuse', dockerBytes),
    fmt: f1, ratio: sRate('uniso-docker', dockerBytes) / sRate('squashfuse', dockerBytes), target: '>= 2', ok: (r) => r >= 2,
  },
  {
    name: 'spliced view (OVA) vs passthrough, cold (MB/s)', u: sRate('uniso-ova', ovaBytes), b: median(pRates),
    fmt: f1, ratio: sRate('uniso-ova', ovaBytes) / median(pRates), target: '>= 0.8', ok: (r) => r >= 0.8,
  },
  {
    name: 'warm re-read (tar.gz) vs cat of a cached plain file (MB/s)', u: warmRate, b: sRate('plain-warm', viewBytes),
    fmt: f1, ratio: warmRate / sRate('plain-warm', viewBytes), target: '>= 0.5', ok: (r) => r >= 0.5,
  },
  {
    name: 'HTTP GET vs FUSE, inflating docker tar, cold (MB/s)', u: sRate('http-docker', dockerBytes), b: sRate('uniso-docker', dockerBytes),
    fmt: f1, ratio: sRate('http-docker', dockerBytes) / sRate('uniso-docker', dockerBytes), target: '>= 0.8', ok: (r) => r >= 0.8,
  },
  {
    name: 'HTTP GET vs FUSE, spliced tar.gz, cold (MB/s)', u: sRate('http-targz', viewBytes), b: median(uRates),
    fmt: f1, ratio: sRate('http-targz', viewBytes) / median(uRates), target: '>= 0.8', ok: (r) => r >= 0.8,
  },
  {
    name: 'daemon peak RSS, 8 concurrent readers, VmHWM (MB)', u: read8Hwm / MB, b: pHwm / MB,
    fmt: f1, ratio: read8Hwm / pHwm, target: '<= 250 MB', ok: () => read8Hwm / MB <= 250,
  },
  {
    name: 'qemu-img check of the copied-out disks', u: checkOf(checkNames.u), b: checkOf(checkNames.b),
    fmt: String, ratio: null, target: 'no errors', ok: () => checkOf(checkNames.u) === 'ok' && checkOf(checkNames.b) === 'ok',
  },
];
// remote mount (section 11): median seconds and bytes fetched of a kind (NaN: not measured)
const rVals = (k) => remote.filter((r) => r.kind === k).map((r) => r.v);
const rMed = (k) => (rVals(k).length ? median(rVals(k)) : NaN);
const rMax = (k) => (rVals(k).length ? Math.max(...rVals(k)) : NaN);
const remoteError = facts.remote_error || '';
const notMeasured = remoteError ? `not measured: \`uniso mount URL\` failed (${remoteError})` : 'not measured';
const rawPool = facts.remote_raw_pool_bytes ? Number(facts.remote_raw_pool_bytes) : null;
const RAW_POOL_PENDING = 'pending: needs uniso info field views[].poolBytes';
const remoteMetrics = [
  {
    name: 'remote mount: bytes fetched to copy the tar.gz, fresh cache dir, vs its size (MB)', u: rMax('uniso-bytes') / MB, b: viewBytes / MB,
    fmt: f1, ratio: rMax('uniso-bytes') / viewBytes, target: '<= 1.05', ok: (r) => (Number.isNaN(r) ? null : r <= 1.05),
    pending: Number.isNaN(rMax('uniso-bytes')) ? notMeasured : '',
  },
  {
    name: 'remote mount: bytes fetched to copy the raw disk vs the pool bytes its recipe uses (MB)', u: rMax('raw-bytes') / MB,
    b: rawPool === null ? RAW_POOL_PENDING : rawPool / MB,
    fmt: f1, ratio: rawPool === null ? NaN : rMax('raw-bytes') / rawPool, target: '<= 1.05', ok: (r) => (Number.isNaN(r) ? null : r <= 1.05),
    pending: Number.isNaN(rMax('raw-bytes')) ? notMeasured : rawPool === null ? RAW_POOL_PENDING : '',
  },
  {
    name: `remote mount: tar.gz copy, fresh cache dir, vs curl -o of a plain copy, ${facts.remote_delay_ms} ms each way, median of ${num('reps')} (s)`,
    u: rMed('uniso'), b: rMed('curl'),
    fmt: f2, ratio: rMed('uniso') / rMed('curl'), target: '<= 1.5', ok: (r) => (Number.isNaN(r) ? null : r <= 1.5),
    pending: Number.isNaN(rMed('uniso')) ? notMeasured : '',
  },
  {
    name: 'remote mount vs uniso mount of the ISO on httpdirfs --cache, tar.gz copy (s); speedup', u: rMed('uniso'), b: rMed('httpdirfs'),
    fmt: f2, ratio: rMed('httpdirfs') / rMed('uniso'), target: '>= 2', ok: (r) => (Number.isNaN(r) ? null : r >= 2),
    pending: Number.isNaN(rMed('uniso')) ? notMeasured : '',
  },
  {
    name: 'remote mount from its disk cache (fresh daemon) vs a local mount, tar.gz copy, cold (MB/s)',
    u: viewBytes / rMed('uniso-cached') / MB, b: viewBytes / rMed('local') / MB,
    fmt: f1, ratio: rMed('local') / rMed('uniso-cached'), target: '>= 0.8', ok: (r) => (Number.isNaN(r) ? null : r >= 0.8),
    pending: Number.isNaN(rMed('uniso-cached')) ? notMeasured : '',
  },
];
// new disk formats (section 12): median seconds of a kind; the ISO sizes of its three builds
const ndMed = (k) => { const v = newdisk.filter((r) => r.kind === k).map((r) => r.v); return v.length ? median(v) : NaN; };
const ndIso = (t) => num(`nd_iso_${t}_bytes`);
const ndCheckOf = (pred) => {
  const cs = ndChecks.filter((c) => pred(c.name));
  return cs.length && cs.every((c) => c.ok) ? 'ok' : 'FAIL';
};
const ndU = () => ndCheckOf((n) => n.startsWith('uniso-'));
const ndB = () => ndCheckOf((n) => !n.startsWith('uniso-'));
const newDiskMetrics = [
  {
    name: `VHDX copy-out vs qemu-img convert -O vhdx -o subformat=dynamic,block_size=1M, median of ${num('reps')} (s); speedup`,
    u: ndMed('uniso-vhdx'), b: ndMed('conv-vhdx'), fmt: f2, ratio: ndMed('conv-vhdx') / ndMed('uniso-vhdx'), target: 'info', ok: () => null,
  },
  {
    name: 'VDI copy-out vs qemu-img convert -O vdi (s); speedup', u: ndMed('uniso-vdi'), b: ndMed('conv-vdi'),
    fmt: f2, ratio: ndMed('conv-vdi') / ndMed('uniso-vdi'), target: 'info', ok: () => null,
  },
  {
    name: 'GCE tar.gz copy-out vs tar --format=oldgnu -Sczf disk.raw (s); speedup', u: ndMed('uniso-gce'), b: ndMed('conv-gce'),
    fmt: f2, ratio: ndMed('conv-gce') / ndMed('uniso-gce'), target: '>= 5', ok: (r) => r >= 5,
  },
  {
    name: 'universal ISO, all formats + hybrid disks vs the views before (--formats ... --firmware bios) (MB)', u: ndIso('default') / MB, b: ndIso('oldviews') / MB,
    fmt: f1, ratio: ndIso('default') / ndIso('oldviews'), target: '<= 1.01', ok: (r) => r <= 1.01,
  },
  {
    name: 'new disk formats: qemu-img check + compare with the raw view; GCE: gzip -t, disk.raw sha256', u: ndU(), b: ndB(),
    fmt: String, ratio: null, target: 'no errors', ok: () => ndU() === 'ok' && ndB() === 'ok',
  },
];
// scale (section 13): per tree size (entries) and kind, the median of the reps (NaN: not measured)
const SC_SMALL = 100000;
const SC_LARGE = 1000000;
const scVals = (n, k) => scale.filter((r) => r.n === n && r.kind === k).map((r) => r.v);
const scMed = (n, k) => (scVals(n, k).length ? median(scVals(n, k)) : NaN);
const scNot = (n) => (scVals(n, 'entries').length ? (scMed(n, 'build-rc') ? `not measured: uniso build of the ${n}-entry tree failed (exit ${scMed(n, 'build-rc')})` : '') : `not measured: the ${n}-entry tree was skipped (BENCH_SCALE_${n === SC_SMALL ? '100K' : '1M'}=0)`);
const kbMiB = (kb) => kb * 1024 / MiB;
const scaleMetrics = [
  {
    name: 'scale 100k entries: mount ready, cold (`uniso mount` until `ls MNT` answers) vs squashfuse -f, median (s)', u: scMed(SC_SMALL, 'mount-ready-s'), b: scMed(SC_SMALL, 'sq-ready-s'),
    fmt: f2, ratio: scMed(SC_SMALL, 'mount-ready-s') / scMed(SC_SMALL, 'sq-ready-s'), target: '<= 1 s', ok: () => scMed(SC_SMALL, 'mount-ready-s') <= 1, pending: scNot(SC_SMALL),
  },
  {
    name: 'scale 100k entries: daemon VmHWM after `ls -lR` of rootfs/ vs squashfuse\'s (MiB)', u: kbMiB(scMed(SC_SMALL, 'hwm-walk-kb')), b: kbMiB(scMed(SC_SMALL, 'sq-hwm-walk-kb')),
    fmt: f1, ratio: scMed(SC_SMALL, 'hwm-walk-kb') / scMed(SC_SMALL, 'sq-hwm-walk-kb'), target: '<= 250 MiB', ok: () => kbMiB(scMed(SC_SMALL, 'hwm-walk-kb')) <= 250, pending: scNot(SC_SMALL),
  },
  {
    name: 'scale 100k entries: catalog bytes per entry', u: scMed(SC_SMALL, 'catalog-bytes') / scMed(SC_SMALL, 'entries'), b: NaN,
    fmt: f1, ratio: null, target: '<= 200', ok: () => scMed(SC_SMALL, 'catalog-bytes') / scMed(SC_SMALL, 'entries') <= 200, pending: scNot(SC_SMALL),
  },
  {
    name: 'scale 100k entries: build time, uniso build (all views) vs mksquashfs -comp gzip (s)', u: scMed(SC_SMALL, 'build-s'), b: scMed(SC_SMALL, 'sq-build-s'),
    fmt: f1, ratio: scMed(SC_SMALL, 'build-s') / scMed(SC_SMALL, 'sq-build-s'), target: 'info', ok: () => null, pending: scNot(SC_SMALL),
  },
  {
    // a build that failed has a peak RSS too, but fails the target: it never got to the end
    name: 'scale 1M entries: build peak RSS vs mksquashfs\'s (MiB)', u: scMed(SC_LARGE, 'build-rc') ? `${f1(kbMiB(scMed(SC_LARGE, 'build-maxrss-kb')))} (the build failed: exit ${scMed(SC_LARGE, 'build-rc')})` : kbMiB(scMed(SC_LARGE, 'build-maxrss-kb')),
    b: kbMiB(scMed(SC_LARGE, 'sq-build-maxrss-kb')),
    fmt: f1, ratio: scMed(SC_LARGE, 'build-maxrss-kb') / scMed(SC_LARGE, 'sq-build-maxrss-kb'), target: '<= 2 GiB', ok: () => !scMed(SC_LARGE, 'build-rc') && kbMiB(scMed(SC_LARGE, 'build-maxrss-kb')) <= 2048,
    // a failed build still has its peak RSS
    pending: scVals(SC_LARGE, 'build-maxrss-kb').length ? '' : scNot(SC_LARGE) || 'not measured',
  },
  {
    name: 'scale 1M entries: build time per 100k entries, uniso vs mksquashfs (s)', u: scMed(SC_LARGE, 'build-s') / 10, b: scMed(SC_LARGE, 'sq-build-s') / 10,
    fmt: f1, ratio: scMed(SC_LARGE, 'build-s') / scMed(SC_LARGE, 'sq-build-s'), target: 'info', ok: () => null, pending: scNot(SC_LARGE),
  },
  {
    name: 'scale 1M entries: build peak RSS per 100k entries, uniso vs mksquashfs (MiB)', u: kbMiB(scMed(SC_LARGE, 'build-maxrss-kb')) / 10, b: kbMiB(scMed(SC_LARGE, 'sq-build-maxrss-kb')) / 10,
    fmt: f1, ratio: null, target: 'info', ok: () => null, pending: scVals(SC_LARGE, 'build-maxrss-kb').length ? '' : scNot(SC_LARGE) || 'not measured',
  },
  {
    name: 'scale 1M entries: mount ready vs squashfuse -f, median (s)', u: scMed(SC_LARGE, 'mount-ready-s'), b: scMed(SC_LARGE, 'sq-ready-s'),
    fmt: f2, ratio: scMed(SC_LARGE, 'mount-ready-s') / scMed(SC_LARGE, 'sq-ready-s'), target: 'info', ok: () => null, pending: scNot(SC_LARGE),
  },
  {
    name: 'scale 1M entries: daemon VmHWM after `ls -lR` vs squashfuse\'s (MiB)', u: kbMiB(scMed(SC_LARGE, 'hwm-walk-kb')), b: kbMiB(scMed(SC_LARGE, 'sq-hwm-walk-kb')),
    fmt: f1, ratio: scMed(SC_LARGE, 'hwm-walk-kb') / scMed(SC_LARGE, 'sq-hwm-walk-kb'), target: 'info', ok: () => null, pending: scNot(SC_LARGE),
  },
];
// soak (section 14): the daemon's samples while 16 readers read (t, phase, VmRSS kB, VmHWM kB, fds, threads, reads, bytes)
const soak = JSON.parse(rdOpt('soak.json'));
const soakBase = JSON.parse(rdOpt('soak-base.json'));
const soakSamples = tsvOpt('soak-samples.tsv').map(([t, phase, rss, hwm, fds, threads, reads, bytes]) => ({
  t: Number(t), phase, rss: Number(rss), hwm: Number(hwm), fds: Number(fds), threads: Number(threads), reads: Number(reads), bytes: Number(bytes),
}));
const soakChecks = tsvOpt('soak-checks.tsv').map(([name, result, detail]) => ({ name, ok: result === 'ok', detail }));
const SOAK_WARMUP = 30;
const soakReading = soakSamples.filter((x) => x.phase === 'reading');
// start: the first sample after the warm-up; end: the last one while the readers ran
const soakStart = soakReading.find((x) => x.t >= SOAK_WARMUP) || null;
const soakEnd = soakReading.length ? soakReading[soakReading.length - 1] : null;
// fds and threads at the start: the most over the minute after the warm-up (requests in flight vary)
const soakStartWin = soakReading.filter((x) => x.t >= SOAK_WARMUP && x.t < SOAK_WARMUP + 60);
const soakStartMax = (k) => (soakStartWin.length ? Math.max(...soakStartWin.map((x) => x[k])) : NaN);
const soakSv = (x, k) => (x ? x[k] : NaN);
const soakPending = soak.reads === undefined ? 'not measured: the soak readers did not finish' : '';
const soakRate = (o) => o.bytes / o.seconds / MB;
const soakRefsOk = () => (soakChecks.length && soakChecks.every((c) => c.ok) ? 'ok' : 'FAIL');
const soakMetrics = [
  {
    name: `soak: daemon VmRSS at the end vs ${SOAK_WARMUP} s in, ${facts.soak_readers} readers for ${facts.soak_seconds} s (MiB)`, u: kbMiB(soakSv(soakEnd, 'rss')), b: kbMiB(soakSv(soakStart, 'rss')),
    fmt: f1, ratio: soakSv(soakEnd, 'rss') / soakSv(soakStart, 'rss'), target: '<= 1.1', ok: (r) => r <= 1.1, pending: soakStart ? soakPending : soakPending || 'not measured: no sample after the warm-up',
  },
  {
    name: 'soak: daemon open fds, end vs start (the most in the minute after the warm-up)', u: soakSv(soakEnd, 'fds'), b: soakStartMax('fds'),
    fmt: String, ratio: soakSv(soakEnd, 'fds') / soakStartMax('fds'), target: 'no growth', ok: () => soakSv(soakEnd, 'fds') <= soakStartMax('fds'), pending: soakStart ? soakPending : soakPending || 'not measured',
  },
  {
    name: 'soak: daemon threads, end vs start (likewise)', u: soakSv(soakEnd, 'threads'), b: soakStartMax('threads'),
    fmt: String, ratio: soakSv(soakEnd, 'threads') / soakStartMax('threads'), target: 'no growth', ok: () => soakSv(soakEnd, 'threads') <= soakStartMax('threads'), pending: soakStart ? soakPending : soakPending || 'not measured',
  },
  {
    name: 'soak: reads checked byte for byte against the references, mismatches', u: soak.mismatches, b: NaN,
    fmt: String, ratio: null, target: '0', ok: () => soak.mismatches === 0, pending: soakPending,
  },
  {
    name: 'soak: read errors', u: soak.errors, b: NaN, fmt: String, ratio: null, target: '0', ok: () => soak.errors === 0, pending: soakPending,
  },
  {
    name: 'soak: checked throughput through FUSE vs the same readers on the local reference copies (MB/s)', u: soakRate(soak), b: soakRate(soakBase),
    fmt: f1, ratio: soakRate(soak) / soakRate(soakBase), target: 'info', ok: () => null, pending: soakPending,
  },
  {
    name: 'soak: reference copies (uniso extract: sha256 as listed; disks: qemu-img compare with the raw view)', u: soakRefsOk(), b: NaN,
    fmt: String, ratio: null, target: 'all ok', ok: () => soakRefsOk() === 'ok', pending: soakChecks.length ? '' : 'not measured',
  },
];
// BENCH_ONLY=11 to 14: the other sections' metrics were not measured
if (only) metrics.length = 0;
if (!only || only === '11') metrics.push(...remoteMetrics);
if (!only || only === '12') metrics.push(...newDiskMetrics);
if (!only || only === '13') metrics.push(...scaleMetrics);
if (!only || only === '14') metrics.push(...soakMetrics);
for (const m of metrics) m.pass = m.ok(m.ratio);
const verdict = (m, bold) => (m.pending ? m.pending.replace(/:.*/, '') : m.pass === null ? 'info' : m.pass ? 'pass' : bold ? '**FAIL**' : 'FAIL');
const ratioStr = (m) => (m.ratio === null || Number.isNaN(m.ratio) ? '-' : f3(m.ratio));
// a figure of a metric: '-' when not measured, a string (a check's result, a pending note) as it is
const cellStr = (m, x) => (typeof x === 'string' ? x : Number.isNaN(x) ? '-' : m.fmt(x));

// ---- uniso build phases from the stamped progress logs ----------------------------
// phases(log, start, end, total): [{ name, detail, s }] from "uniso: <phase> (detail)" lines
function phasesOf(log, start, end, total) {
  const progress = rd(log).split('\n').filter(Boolean).map((l) => {
    const i = l.indexOf(' ');
    return { t: Number(l.slice(0, i)), text: l.slice(i + 1) };
  });
  const out = [];
  let prev = { name: 'start-up (node, catalog, input detection)', detail: '', t: start };
  for (const p of progress) {
    const m = /^uniso: (.*)$/.exec(p.text);
    if (!m || /\s\d+%/.test(m[1])) continue; // a percentage line inside a phase
    out.push({ name: prev.name, detail: prev.detail, s: p.t - prev.t });
    const d = / \(([^)]*)\)$/.exec(m[1]);
    prev = m[1].startsWith('wrote ')
      ? { name: 'exit', detail: '', t: p.t }
      : { name: m[1].replace(/ \([^)]*\)$/, ''), detail: d ? d[1] : '', t: p.t };
  }
  out.push({ name: prev.name, detail: prev.detail, s: end - prev.t });
  out.push({ name: 'sync', detail: '', s: total - (end - start) });
  return out;
}
const phases = phasesOf('build-progress.log', num('build_start'), num('build_end'), num('uniso_build_s'));
const phasesNoDisk = phasesOf('build-nodisk-progress.log', num('nodisk_build_start'), num('nodisk_build_end'), num('uniso_nodisk_build_s'));

// ---- per-format sizes -----------------------------------------------------------
const viewOf = (re) => views.find((v) => re.test(v.path));
const sizeRows = [
  ['input ISO (xz squashfs)', num('input_iso_bytes'), null],
  ...convSizes.map(([p, b]) => {
    const re = {
      openvz: /^openvz\/.*\.tar\.gz$/, opennode: /^opennode\/.*\.tar\.gz$/, 'opennode.ovf': /^opennode\/.*\.ovf$/,
      proxmox: /^proxmox\/.*\.tar\.gz$/, xen: /^xen\/.*\.tar\.gz$/, lxc: /^lxc\/.*\.tar\.gz$/, docker: /^docker\/.*\.tar$/,
    }[p];
    const v = re && viewOf(re);
    return [p === 'squashfs' ? 'squashfs (mksquashfs -comp gzip)' : p, b, v ? v.size : null];
  }),
];

// ---- write results.md -----------------------------------------------------------
const L = [];
L.push('# uniso benchmark results', '');
L.push(`Written by \`make bench\` (bench/run.sh) on ${facts.date}; every baseline was measured in the same run.`, '');
L.push('| metric | uniso | baseline | ratio | target | result |', '|---|---:|---:|---:|---|---|');
for (const m of metrics) {
  L.push(`| ${m.name} | ${cellStr(m, m.u)} | ${cellStr(m, m.b)} | ${ratioStr(m)} | ${m.target} | ${verdict(m, true)} |`);
}
L.push('');
const pendings = [...new Set(metrics.filter((m) => m.pending).map((m) => m.pending))];
for (const p of pendings) L.push(`**${p.replace(/:.*/, '')}:** ${p.replace(/^[^:]*: /, '')}.`, '');
if (!only) L.push('Baselines: build time = the conventional pipeline (bench/conventional.sh); size = input ISO + every',
  'format file + a gzip squashfs made separately; FUSE read = the universal ISO read through a minimal',
  'fuse-native passthrough (bench/passthrough.js); RSS = that passthrough\'s VmHWM (for scale only: the',
  'RSS target is the absolute 250 MiB).',
  `Disk views: build time with disk views = the same \`uniso build\` as the first row; without = \`uniso build --formats ${facts.nodisk_formats}\`;`,
  'OVA copy-out = `cp MNT/vm/*.ova` through `uniso mount` vs `qemu-img convert -O vmdk -o subformat=streamOptimized`',
  'of a conventional raw disk of the same tree (bench/make-disk.sh), ratio = baseline time / uniso time;',
  'qcow2 copy-out = `cp MNT/openstack/*.qcow2` vs `qemu-img convert [-c] -O qcow2` of that raw disk (uniso\'s',
  'qcow2 view has compressed clusters, like `-c`); OVA size = uniso\'s OVA vs a tar of uniso\'s .ovf, a SHA256',
  'manifest and the conventional streamOptimized VMDK.', '');

L.push('## Machine and input', '');
L.push('| | |', '|---|---|');
L.push(`| date | ${facts.date} |`);
L.push(`| CPU | ${facts.cpu}, ${facts.cores} cores |`);
L.push(`| memory | ${facts.mem} |`);
L.push(`| OS, kernel | ${facts.os}, ${facts.kernel} |`);
L.push(`| file system of bench/work | ${facts.fs} |`);
L.push(`| Node, libfuse2 | ${facts.node}, ${facts.libfuse} |`);
L.push(`| tools | ${facts.tools} |`);
L.push(`| uniso commit | ${facts.commit} |`);
L.push(`| tree | debootstrap --variant=minbase bookworm + extra packages (bench/make-tree.sh): ${mb(num('tree_bytes'))} (du -sb), ${num('tree_entries')} entries, ${facts.tree_packages} packages |`);
L.push(`| input ISO | ${facts.input_iso}, ${mb(num('input_iso_bytes'))} (xz squashfs, isolinux) |`);
const nViews = views.filter((v) => !v.path.endsWith('.sha256') && v.path !== 'README.txt').length;
if (Number.isFinite(isoBytes)) L.push(`| universal ISO | ${mb(isoBytes)}, ${nViews} views (plus README.txt and a .sha256 per view) |`);
L.push(`| whole \`bench/run.sh\` | ${f1(num('bench_s'))} s |`);
const foreignCpu = Math.max(0, num('machine_cpu_s') - num('own_cpu_s'));
const foreignShare = foreignCpu / (num('measured_s') * num('cores'));
const busy = foreignShare > 0.05;
L.push(`| CPU time spent by other processes while measuring | ${f1(foreignCpu)} s of ${f1(num('machine_cpu_s'))} s used by the machine (${(100 * foreignShare).toFixed(0)}% of ${num('cores')} cores over ${f1(num('measured_s'))} s) |`);
L.push('');
if (busy) L.push(`**Note:** other processes used ${(100 * foreignShare).toFixed(0)}% of the machine's CPU while this run measured; its timings are skewed (ratios less so).`, '');
// per section: CPU the machine spent vs what this script, its children and the uniso daemons spent
const hz = num('clk_tck') || 100;
const sections = marks.slice(0, -1).map((m, i) => {
  const n = marks[i + 1];
  const wall = n.t - m.t;
  const machine = (n.busy - m.busy) / hz;
  const own = n.ours - m.ours + (n.daemon - m.daemon) / hz;
  const foreign = Math.max(0, machine - own);
  return { name: m.name, wall, machine, own, foreign, share: foreign / (wall * num('cores')) };
});
if (sections.length) {
  L.push('| measured section | wall (s) | machine CPU (s) | this run\'s CPU (s) | other CPU (s) | other share of the cores |', '|---|---:|---:|---:|---:|---:|');
  for (const x of sections) L.push(`| ${x.name} | ${f1(x.wall)} | ${f1(x.machine)} | ${f1(x.own)} | ${f1(x.foreign)} | ${(100 * x.share).toFixed(0)}%${x.share > 0.05 ? ' **skewed**' : ''} |`);
  const sk = sections.filter((x) => x.share > 0.05);
  if (sk.length && !busy) L.push('', `**Note:** other processes used more than 5% of the cores during: ${sk.map((x) => x.name).join('; ')}; those timings are skewed.`);
  L.push('', 'Machine CPU from /proc/stat; this run\'s CPU = bash `times` (this script and its children) plus the detached uniso daemons. Kernel work nobody is billed for (page-cache writeback, reclaim after drop_caches) counts as "other".', '');
}

// BENCH_ONLY=11 to 14: that section alone
if (only) {
  ({ 11: remoteSection, 12: newDiskSection, 13: scaleSection, 14: soakSection })[only]();
  finish();
  process.exit();
}

L.push('## Build time breakdown', '');
L.push('Phases from the progress lines uniso prints on stderr (stamped as they arrive); a phase\'s detail in parentheses.', '');
L.push(`| uniso build phase | all views (s) | without disk views, --formats ${facts.nodisk_formats} (s) | difference (s) |`, '|---|---:|---:|---:|');
{
  const names = [];
  for (const p of [...phases, ...phasesNoDisk]) if (!names.includes(p.name)) names.push(p.name);
  // keep the order of the full build; phases only in the other build go before "exit"
  const sum = (ps, n) => ps.filter((p) => p.name === n).reduce((a, p) => a + p.s, 0);
  const det = (ps, n) => ps.filter((p) => p.name === n && p.detail).map((p) => p.detail).join(', ');
  const cell = (ps, n) => (ps.some((p) => p.name === n) ? `${f1(sum(ps, n))}${det(ps, n) ? ` (${det(ps, n)})` : ''}` : '-');
  for (const n of names) L.push(`| ${n} | ${cell(phases, n)} | ${cell(phasesNoDisk, n)} | ${f1(sum(phases, n) - sum(phasesNoDisk, n))} |`);
  L.push(`| **total** | **${f1(num('uniso_build_s'))}** | **${f1(num('uniso_nodisk_build_s'))}** | **${f1(num('uniso_build_s') - num('uniso_nodisk_build_s'))}** |`);
}
const rss = (k) => (facts[k] ? `${f1(num(k) * 1024 / MiB)} MiB` : '?');
if (facts.uniso_build_maxrss_kb) L.push('', `uniso build peak RSS: ${rss('uniso_build_maxrss_kb')} (all views), ${rss('uniso_nodisk_build_maxrss_kb')} (without disk views). Universal ISO: ${isoBytes} bytes (all views), ${num('universal_iso_nodisk_bytes')} bytes (without disk views).`);
L.push('');
L.push('| conventional part | s |', '|---|---:|');
for (const [p, s] of convTimes) L.push(`| ${p} | ${f1(s)} |`);
L.push(`| **total** | **${f1(num('conventional_build_s'))}** |`, '');

L.push('## Sizes', '');
L.push('| file | conventional | uniso view |', '|---|---:|---:|');
for (const [p, b, v] of sizeRows) L.push(`| ${p} | ${b} | ${v === null ? '-' : v} |`);
L.push(`| **sum of separate files** | **${sepSum}** | |`);
L.push(`| **universal ISO** (input ISO with uniso's squashfs, + /uniso/ catalog and side pool) | | **${isoBytes}** |`, '');

L.push('## Single copy', '');
L.push('| part of the universal ISO | bytes |', '|---|---:|');
L.push(`| live squashfs (${num('uniso_squashfs_bytes') ? 'its data blocks are the pool' : '-'}) | ${num('uniso_squashfs_bytes')} |`);
L.push(`| side pool (/uniso/pool.bin: blocks only the vm family's tree has) | ${num('uniso_side_pool_bytes')} |`);
L.push(`| catalog (/uniso/catalog.sqlite) | ${num('catalog_bytes')} |`);
L.push(`| the rest (the input ISO's other files, ISO 9660 structures and padding) | ${isoBytes - num('uniso_squashfs_bytes') - num('uniso_side_pool_bytes') - num('catalog_bytes')} |`);
L.push(`| for comparison: mksquashfs -comp gzip (defaults: 128 KiB blocks, fragments) of the tree | ${num('conv_gzip_squashfs_bytes')} |`);
L.push(`| for comparison: the input ISO rebuilt with it | ${num('conv_gzip_iso_bytes')} |`, '');
L.push('What the catalog is made of (SQLite dbstat: pages of each table and index):', '');
L.push('| table | bytes |', '|---|---:|');
for (const r of catalog.tables) L.push(`| ${r.name} | ${r.bytes} |`);
L.push('', '| recipe | stored bytes | views |', '|---:|---:|---|');
for (const r of catalog.recipes.filter((x) => x.bytes >= 1024)) L.push(`| ${r.id} | ${r.bytes} | ${r.views ?? '(included by another recipe)'} |`);
L.push('', `Kernel reads: \`mount -t squashfs -o loop,ro\` (uniso's at its offset inside U.iso), page cache dropped, \`find -type f | xargs cat > /dev/null\`; MB/s of the tree's ${num('tree_bytes')} bytes.`, '');
{
  const reps = [...new Set(kernel.map((r) => r.rep))].sort((a, b) => a - b);
  L.push(`| squashfs | ${reps.map((r) => `rep ${r} (s)`).join(' | ')} | median MB/s |`, `|---|${reps.map(() => '---:|').join('')}---:|`);
  for (const [k, label] of [['uniso', "uniso's (gzip, 64 KiB blocks, no fragments)"], ['mksquashfs', 'mksquashfs -comp gzip (128 KiB blocks, fragments)'],
    ['mksquashfs-64k-nf', `mksquashfs -comp gzip -b 65536 -no-fragments (${num('conv_64nf_squashfs_bytes')} bytes)`]]) {
    L.push(`| ${label} | ${reps.map((rep) => { const r = kernel.find((x) => x.kind === k && x.rep === rep); return r ? f2(r.v) : '-'; }).join(' | ')} | ${f1(kRate(k))} |`);
  }
  L.push('');
}

L.push('## FUSE reads', '');
L.push(`Each read: \`sync; echo 3 > /proc/sys/vm/drop_caches\`, then \`cat FILE > /dev/null\`, timed; MB = 10^6 bytes.`, '');
L.push('| rep | uniso ' + facts.view.replace(/\/.*/, '') + ' view (MB/s) | passthrough U.iso (MB/s) | uniso VmHWM (MiB) | passthrough VmHWM (MiB) |', '|---:|---:|---:|---:|---:|');
for (let rep = 1; rep <= num('reps'); rep++) {
  const g = (k) => reads.find((r) => r.kind === k && r.rep === rep);
  L.push(`| ${rep} | ${f1(viewBytes / g('uniso').v / MB)} | ${f1(isoBytes / g('passthrough').v / MB)} | ${f1(g('uniso-vmhwm').v / 1024)} | ${f1(g('passthrough-vmhwm').v / 1024)} |`);
}
L.push('');
const extra = reads.filter((r) => r.kind === 'uniso-warm' || r.kind === 'uniso-extra');
if (extra.length) {
  L.push('Other reads on the same daemons (informational):', '');
  L.push('| view | kind | rep | MB/s |', '|---|---|---:|---:|');
  for (const r of extra) {
    const v = views.find((x) => x.path === r.file);
    L.push(`| ${r.file} | ${r.kind === 'uniso-warm' ? 'warm re-read (page cache kept)' : 'cold'} | ${r.rep} | ${f1(v.size / r.v / MB)} |`);
  }
  L.push('');
}

L.push('## Disk views: copy-out and size', '');
L.push(`Conventional raw disk: ${facts.conv_raw} (${num('disk_size')} bytes virtual, ${mb(num('conv_raw_alloc_bytes'))} allocated; made once by bench/make-disk.sh in ${facts.conv_raw_make_s} s and cached). Tools: ${facts.tools_disk}.`, '');
L.push('Each copy: a fresh `uniso mount` daemon for the uniso copies; `sync; echo 3 > /proc/sys/vm/drop_caches`; the copy or conversion; `sync`; timed (seconds, MB/s of the output file).', '');
{
  const kinds = [
    ['uniso-ova', `cp ${facts.ova_view}`, 'uniso_ova_bytes'],
    ['conv-vmdk', 'qemu-img convert -O vmdk -o subformat=streamOptimized', 'conv_vmdk_bytes'],
    ['uniso-qcow2', `cp ${facts.qcow2_view}`, 'uniso_qcow2_bytes'],
    ['conv-qcow2', 'qemu-img convert -O qcow2', 'conv_qcow2_bytes'],
    ['conv-qcow2c', 'qemu-img convert -c -O qcow2', 'conv_qcow2c_bytes'],
  ];
  const reps = [...new Set(disk.map((r) => r.rep))].sort((a, b) => a - b);
  L.push(`| copy | output bytes | ${reps.map((r) => `rep ${r} (s)`).join(' | ')} | median (s) | median MB/s |`, `|---|---:|${reps.map(() => '---:|').join('')}---:|---:|`);
  for (const [k, label, bytesKey] of kinds) {
    const bytes = num(bytesKey);
    const row = reps.map((rep) => { const r = disk.find((x) => x.kind === k && x.rep === rep); return r ? f2(r.v) : '-'; });
    L.push(`| ${label} | ${bytes} | ${row.join(' | ')} | ${f2(diskMed(k))} | ${f1(bytes / diskMed(k) / MB)} |`);
  }
  const hwm = disk.filter((r) => /-vmhwm$/.test(r.kind)).map((r) => r.v);
  if (hwm.length) L.push('', `uniso daemon VmHWM after these copies: up to ${f1(Math.max(...hwm) / 1024)} MiB.`);
  L.push('');
  L.push('| OVA | bytes |', '|---|---:|');
  L.push(`| uniso ${facts.ova_view} (view ${num('ova_view_bytes')}) | ${num('uniso_ova_bytes')} |`);
  L.push(`| &nbsp;&nbsp;its -disk1.vmdk (streamOptimized) | ${num('uniso_ova_vmdk_bytes')} |`);
  L.push(`| conventional OVA (ustar: uniso's .ovf, SHA256 .mf, converted VMDK; packed in ${facts.conv_ova_pack_s} s, not counted) | ${num('conv_ova_bytes')} |`);
  L.push(`| &nbsp;&nbsp;its -disk1.vmdk (qemu-img convert, streamOptimized) | ${num('conv_vmdk_bytes')} |`);
  L.push('');
  L.push('| check (outputs of the last rep) | result | detail |', '|---|---|---|');
  for (const c of checks) L.push(`| ${c.name} | ${c.ok ? 'ok' : '**FAIL**'} | ${c.detail.replace(/\|/g, '\\|')} |`);
  L.push('');
}

L.push('## Serving: the read path', '');
L.push(`Inflating view: ${facts.docker_view} (${dockerBytes} bytes, every byte inflated from the pool). squashfuse: ${facts.squashfuse} reading the same tar from a gzip squashfs (\`mksquashfs -comp gzip -b 131072\`, ${num('sqfs_bytes')} bytes). Spliced: ${facts.ova_view} (${ovaBytes} bytes) and ${facts.view}. HTTP: \`uniso serve --http 127.0.0.1:PORT\` and \`curl -o /dev/null\`. Warm: the ${facts.view} re-read of the FUSE section vs \`cat\` of a plain copy of it already in the page cache. 8 readers: concurrent \`cat\`s of ${facts.read8_views} (${mb(num('read8_bytes'))} in all) on a fresh daemon.`, '');
{
  const reps = [...new Set(serve.map((r) => r.rep))].sort((a, b) => a - b);
  const rows = [
    ['squashfuse, docker.tar in gzip squashfs (MB/s)', 'squashfuse', dockerBytes],
    ['uniso FUSE, inflating docker tar (MB/s)', 'uniso-docker', dockerBytes],
    ['uniso HTTP, inflating docker tar (MB/s)', 'http-docker', dockerBytes],
    ['uniso FUSE, spliced OVA (MB/s)', 'uniso-ova', ovaBytes],
    ['uniso HTTP, spliced tar.gz (MB/s)', 'http-targz', viewBytes],
    ['cat of a cached plain copy of the tar.gz (MB/s)', 'plain-warm', viewBytes],
    ['8 concurrent readers, all bytes (MB/s)', 'read8', num('read8_bytes')],
  ];
  L.push(`| read | ${reps.map((r) => `rep ${r}`).join(' | ')} | median |`, `|---|${reps.map(() => '---:|').join('')}---:|`);
  for (const [label, k, bytes] of rows) {
    const cells = reps.map((rep) => { const r = serve.find((x) => x.kind === k && x.rep === rep); return r ? f1(bytes / r.v / MB) : '-'; });
    L.push(`| ${label} | ${cells.join(' | ')} | ${f1(sRate(k, bytes))} |`);
  }
  const h = reps.map((rep) => { const r = serve.find((x) => x.kind === 'read8-vmhwm' && x.rep === rep); return r ? f1(r.v * 1024 / MB) : '-'; });
  L.push(`| 8 concurrent readers, daemon VmHWM (MB) | ${h.join(' | ')} | max ${f1(read8Hwm / MB)} |`, '');
}

remoteSection();
newDiskSection();
scaleSection();
soakSection();

L.push('## Method', '');
L.push(
  '- One invocation measures uniso and every baseline; compare ratios, not absolute numbers across runs',
  '  (FUSE figures swing 2-3x between runs on this kind of VM).',
  '- The tree is built once by debootstrap and cached with its ISO (test/fixture/make-iso.sh, xz squashfs)',
  '  under bench/cache/, keyed by the package list (the ISO by make-iso.sh and the compressor).',
  '- Build time: the page cache is dropped before `uniso build INPUT -o U.iso` and before the conventional',
  '  pipeline; both end with `sync` inside the timing. The conventional pipeline runs its tools one after',
  '  another (tar --numeric-owner --xattrs --xattrs-include=\'*\', gzip at its default level 6; mksquashfs',
  '  uses both cores; uniso\'s pool is libdeflate level 10). uniso phases are timed from its progress lines on stderr.',
  `- FUSE: each of the ${num('reps')} reps mounts a fresh uniso daemon (so its in-process block cache starts empty),`,
  `  reads ${facts.view} cold, re-reads it warm, reads the lxc and docker views cold, records VmHWM from /proc/PID/status and`,
  '  unmounts; then mounts the passthrough over U.iso and reads it cold. The metric is the median MB/s;',
  '  the RSS figure is the largest VmHWM of the uniso daemons.',
  '- Size: bytes of the universal ISO vs the input ISO plus every file the conventional pipeline wrote.',
  '- Disk views: right after the full build, `uniso build --formats ' + facts.nodisk_formats + '` builds the same ISO',
  '  without the disk views (ovf, vmdk, raw, qcow2, vhd), page cache dropped first, timed the same way.',
  `  The copy-outs run ${num('reps')} reps; each rep copies the OVA and the qcow2 view out of two fresh daemons and runs the`,
  '  three `qemu-img convert`s of the cached conventional raw disk (sparse, MBR partition at sector 2048 by',
  '  sfdisk, `mke2fs -t ext4 -d TREE -E offset=1048576`; no boot loader). The outputs of the last rep are',
  '  checked with `qemu-img check` (and `qemu-img info` for the virtual size); uniso\'s OVA is also checked for',
  '  its member order and its manifest. The OVA size compares bytes only (the conventional OVA keeps',
  '  uniso\'s .ovf, whose ovf:size does not match the converted VMDK).',
  '- Serving: each rep reads, in this order, the docker tar through squashfuse; the docker tar and the OVA through a',
  '  fresh uniso daemon; the cached plain copy (read once untimed, then timed); the docker tar and the tar.gz with',
  '  curl from a fresh `uniso serve`; then the 8 views at once through another fresh daemon. Every timed read but',
  '  the warm one starts with the page cache dropped. Every FUSE mount (uniso, the passthrough, squashfuse) reads',
  '  with the kernel readahead `uniso mount` sets (read_ahead_kb 1024).',
  '',
);
finish();

// ---- section 11: remote mount -------------------------------------------------------
function remoteSection() {
  const reps = [...new Set(remote.map((r) => r.rep))].sort((a, b) => a - b);
  const delay = facts.remote_delay_ms;
  const q = num('remote_proxy_queue_bytes');
  L.push('## Remote mount', '');
  const ms = (k) => (facts[k] ? `${f1(num(k) * 1000)} ms` : '?');
  L.push(`nginx on 127.0.0.1 serves U.iso and a plain copy of ${facts.view} (taken out of a local mount) from bench/work/www/,`,
    `behind bench/delay-proxy.js: ${delay} ms added each way (a request/response round trip costs ${2 * delay} ms more: curl's time to`,
    `the first byte of the index was ${ms('remote_ttfb_direct_s')} direct, ${ms('remote_ttfb_proxy_s')} through it; the TCP handshake is not delayed),`,
    `at most ${f1(q / MiB)} MiB queued per connection and direction, which caps one connection at ${f1(q / (delay / 1000) / MB)} MB/s like a TCP window would.`,
    `Remote mount: \`uniso mount ${facts.remote_url} MNT --cache-dir DIR --cache-size 2G\`. Bytes fetched = body and header bytes the proxy passed`,
    `server -> client from before the mount to after the unmount (the catalog and whatever else the mount reads included). Tools: ${facts.tools_remote}.`, '');
  if (remoteError) L.push(`**Not measured:** \`uniso mount ${facts.remote_url}\` failed: \`${remoteError}\`. The baselines below were measured.`, '');
  const copies = [
    ['curl -o of the plain copy', 'curl', 'curl-bytes'],
    ['uniso mount URL, fresh empty cache dir: cp', 'uniso', 'uniso-bytes'],
    ['&nbsp;&nbsp;its mount (untimed in the metric)', 'uniso-mount', 'uniso-mount-bytes'],
    ['uniso mount URL, same cache dir, fresh daemon: cp', 'uniso-cached', 'uniso-cached-bytes'],
    ['uniso mount of U.iso on httpdirfs --cache: cp', 'httpdirfs', 'httpdirfs-bytes'],
    ['&nbsp;&nbsp;its mount (httpdirfs, then uniso mount)', 'httpdirfs-mount', null],
    ['uniso mount of the local U.iso: cp', 'local', null],
  ];
  const sec = (k, rep) => { const r = remote.find((x) => x.kind === k && x.rep === rep); return r ? f2(r.v) : '-'; };
  const range = (k) => {
    const v = rVals(k);
    if (!v.length) return '-';
    const lo = Math.min(...v);
    const hi = Math.max(...v);
    return lo === hi ? String(lo) : `${lo} - ${hi}`;
  };
  L.push(`| copy of ${facts.remote_template} (${viewBytes} bytes) | ${reps.map((r) => `rep ${r} (s)`).join(' | ')} | median (s) | median MB/s | bytes fetched |`,
    `|---|${reps.map(() => '---:|').join('')}---:|---:|---:|`);
  for (const [label, k, bk] of copies) {
    const isCopy = !/-mount$/.test(k);
    const med = rMed(k);
    L.push(`| ${label} | ${reps.map((rep) => sec(k, rep)).join(' | ')} | ${Number.isNaN(med) ? '-' : f2(med)} | ${isCopy && !Number.isNaN(med) ? f1(viewBytes / med / MB) : '-'} | ${bk ? range(bk) : '-'} |`);
  }
  L.push('');
  const raw = rMax('raw-bytes');
  L.push(`Raw disk view ${facts.remote_raw_view} (${facts.remote_raw_view_bytes} bytes, sparse): \`cp --sparse=always\` out of a remote mount with a fresh cache dir, once:`,
    Number.isNaN(raw) ? 'not measured;' : `${raw} bytes fetched in ${f1(rMax('raw'))} s;`,
    rawPool === null ? `the pool bytes its recipe uses: ${RAW_POOL_PENDING}.` : `the pool bytes its recipe uses (\`uniso info --json\` views[].poolBytes): ${rawPool}.`, '');
  const hwm = (k) => (Number.isNaN(rMax(k)) ? '-' : f1(rMax(k) / 1024));
  L.push(`Daemon VmHWM (MiB, largest): remote mount ${hwm('uniso-vmhwm')} (fresh cache), ${hwm('uniso-cached-vmhwm')} (cached), ${hwm('raw-vmhwm')} (raw disk); uniso on httpdirfs ${hwm('httpdirfs-vmhwm')}.`,
    `Disk cache after the first copy: uniso ${range('uniso-cache-bytes')} bytes, httpdirfs ${range('httpdirfs-cache-bytes')} bytes.`, '');
  L.push('| check | result | detail |', '|---|---|---|');
  for (const c of remoteChecks) L.push(`| ${c.name} | ${c.ok ? 'ok' : '**FAIL**'} | ${c.detail.replace(/\|/g, '\\|')} |`);
  L.push('');
  L.push('Method: each rep, in this order, every copy timed from a dropped page cache to after `sync`: `curl -sSf -o` of the plain copy',
    'through the proxy; a fresh `uniso mount URL` on a new empty cache dir (mount untimed), `cp` of the view, unmount; a fresh',
    'daemon on that same cache dir, `cp` again, unmount; `httpdirfs -f --cache --cache-location NEW_DIR --no-range-check`',
    'of the proxy\'s root and `uniso mount` of the U.iso it shows, `cp`, unmount both; `uniso mount` of the local U.iso, `cp`.',
    'httpdirfs runs with its disk cache, as a user reading a large file would (without it each read is a range request of',
    'its own), and with --no-range-check: Debian\'s httpdirfs 1.2.5 looks for Accept-Ranges in its range responses, which',
    'nginx sends only in full ones, and exits (httpdirfs issue #188). Copies are checked for their size every rep and',
    'their sha256 against `uniso ls --json` on the last. The raw disk copy runs once, after the reps. The byte metrics',
    'take the largest count of the reps, the time metrics the median.', '');
}

// ---- section 12: new disk formats ---------------------------------------------------
function newDiskSection() {
  const reps = [...new Set(newdisk.map((r) => r.rep))].sort((a, b) => a - b);
  L.push('## New disk formats: VHDX, VDI, GCE copy-out; universal ISO growth', '');
  L.push(`Baselines' input: the raw view ${facts.nd_raw_view} itself (${num('nd_raw_view_bytes')} bytes virtual), extracted with \`uniso extract\` (sparse: ${mb(num('nd_raw_alloc_bytes'))} allocated, in ${f1(num('nd_raw_extract_s'))} s, untimed) as disk.raw, so uniso and the tools write the same disk bytes. Tools: ${facts.nd_tools}. Load average when the section started: ${facts.nd_load}.`, '');
  L.push('Each copy: a fresh `uniso mount` daemon for the uniso copies; `sync; echo 3 > /proc/sys/vm/drop_caches`; the copy or conversion; `sync`; timed (seconds, MB/s of the output file).', '');
  const rows = [
    ['uniso-vhdx', `cp ${facts.nd_vhdx_view}`, 'uniso.vhdx'],
    ['conv-vhdx', 'qemu-img convert -f raw -O vhdx -o subformat=dynamic,block_size=1M', 'conv.vhdx'],
    ['uniso-vdi', `cp ${facts.nd_vdi_view}`, 'uniso.vdi'],
    ['conv-vdi', 'qemu-img convert -f raw -O vdi', 'conv.vdi'],
    ['uniso-gce', `cp ${facts.nd_gce_view}`, 'uniso-gce.tar.gz'],
    ['conv-gce', 'tar --format=oldgnu -Sczf gce.tar.gz disk.raw', 'conv-gce.tar.gz'],
  ];
  L.push(`| copy | output bytes | ${reps.map((r) => `rep ${r} (s)`).join(' | ')} | median (s) | median MB/s |`, `|---|---:|${reps.map(() => '---:|').join('')}---:|---:|`);
  for (const [k, label, file] of rows) {
    const bytes = num(`nd_bytes_${file}`);
    const cells = reps.map((rep) => { const r = newdisk.find((x) => x.kind === k && x.rep === rep); return r ? f2(r.v) : '-'; });
    L.push(`| ${label} | ${bytes} | ${cells.join(' | ')} | ${f2(ndMed(k))} | ${f1(bytes / ndMed(k) / MB)} |`);
  }
  const hwm = newdisk.filter((r) => /-vmhwm$/.test(r.kind)).map((r) => r.v);
  if (hwm.length) L.push('', `uniso daemon VmHWM after these copies: up to ${f1(Math.max(...hwm) / 1024)} MiB.`);
  const sz = (f) => num(`nd_bytes_${f}`);
  L.push('', `Output size, uniso / tool: VHDX ${f3(sz('uniso.vhdx') / sz('conv.vhdx'))}, VDI ${f3(sz('uniso.vdi') / sz('conv.vdi'))}, GCE tar.gz ${f3(sz('uniso-gce.tar.gz') / sz('conv-gce.tar.gz'))} (uniso's deflate is the pool's, libdeflate level 10; \`tar -z\` runs gzip -6).`, '');
  L.push('| check (outputs of the last rep) | result | detail |', '|---|---|---|');
  for (const c of ndChecks) L.push(`| ${c.name} | ${c.ok ? 'ok' : '**FAIL**'} | ${c.detail.replace(/\|/g, '\\|')} |`);
  L.push('');

  L.push('Universal ISO growth from the views added with the GPT disks (vhdx, vdi, azure, gce, vagrant, wsl) and the hybrid (BIOS + UEFI) disk layout:', '');
  L.push('| universal ISO | views | bytes | live squashfs | side pool | catalog | the rest | build (s, cold) |', '|---|---:|---:|---:|---:|---:|---:|---:|');
  const isoRows = [
    ['oldviews', `\`--formats ${facts.nd_old_formats} --firmware bios\` (the views before)`, 'uniso_oldviews_build_s'],
    ['bios', '`--firmware bios` (all formats)', 'uniso_bios_build_s'],
    ['default', 'default (all formats, hybrid firmware: the `uniso build (all views)` this run starts with)', 'uniso_build_s'],
  ];
  for (const [t, label, bk] of isoRows) {
    const g = (k) => num(`nd_iso_${t}_${k}`);
    const rest = g('bytes') - g('squashfs_bytes') - g('side_pool_bytes') - g('catalog_bytes');
    L.push(`| ${label} | ${g('views')} | ${g('bytes')} | ${g('squashfs_bytes')} | ${g('side_pool_bytes')} | ${g('catalog_bytes')} | ${rest} | ${f1(num(bk))} |`);
  }
  const grow = (a, b) => `${ndIso(b) - ndIso(a)} bytes (${(100 * (ndIso(b) - ndIso(a)) / ndIso(a)).toFixed(2)}%)`;
  const part = (a, b, k) => num(`nd_iso_${b}_${k}`) - num(`nd_iso_${a}_${k}`);
  L.push('', `Growth: the new views (BIOS disks both) ${grow('oldviews', 'bios')}: catalog ${part('oldviews', 'bios', 'catalog_bytes')}, side pool ${part('oldviews', 'bios', 'side_pool_bytes')}, squashfs ${part('oldviews', 'bios', 'squashfs_bytes')};`,
    `the hybrid firmware (all formats both) ${grow('bios', 'default')}: catalog ${part('bios', 'default', 'catalog_bytes')}, side pool ${part('bios', 'default', 'side_pool_bytes')}, squashfs ${part('bios', 'default', 'squashfs_bytes')};`,
    `in all ${grow('oldviews', 'default')}. The ISO's layout rounds its parts up (2 KiB sectors, alignment): they do not add up to the byte,`,
    'and a part may grow inside the slack without growing the ISO.', '');
  const NEW = /^(vhdx|vdi|azure|gce|vagrant|wsl)\//;
  // a recipe only new views use was added by them; one an older view uses too (the rootfs tar.gz wsl shares) was there before
  const mine = ndRecipes.filter((r) => r.views && r.views.split(' ').some((v) => NEW.test(v)));
  const added = mine.filter((r) => r.views.split(' ').every((v) => NEW.test(v)));
  if (mine.length) {
    L.push(`Stored recipes of the new views in the default catalog: ${added.reduce((a, r) => a + r.bytes, 0)} bytes that only they use (the recipes they include, such as the raw disk's, are the older views' too):`, '');
    L.push('| recipe | stored bytes | views |', '|---:|---:|---|');
    for (const r of mine) L.push(`| ${r.id} | ${r.bytes} | ${added.includes(r) ? r.views : `${r.views} (shared with older views: not added)`} |`);
    L.push('');
  }
  L.push('Method: each rep copies the three views out of three fresh daemons, then runs the three conversions of disk.raw, every',
    'copy timed from a dropped page cache to after `sync`. qemu-img\'s VHDX gets `subformat=dynamic,block_size=1M` (uniso\'s',
    'VHDX is dynamic with 1 MiB blocks; qemu-img would pick 32 MiB), its VDI is dynamic (static=off) with 1 MiB blocks like',
    'uniso\'s. The GCE baseline is Google\'s documented command run in disk.raw\'s directory. The last rep\'s outputs are',
    'checked outside the timings: `qemu-img check`, the virtual size (`qemu-img info`) and `qemu-img compare` against the',
    'extracted raw view for the VHDX and VDI files; for the tar.gz files `gzip -t`, the member list (`tar -tzf`) and disk.raw',
    'extracted by GNU tar (sparse), its size and sha256 against the raw view\'s as `uniso ls --json` lists it; the uniso',
    'copies also for their size as listed. The ISO growth builds run `uniso build` cold, like the first row\'s.', '');
}

// ---- section 13: scale ----------------------------------------------------------------
function scaleSection() {
  const sizes = [...new Set(scale.map((r) => r.n))].sort((a, b) => a - b);
  if (!sizes.length) return;
  const both = sizes.includes(SC_SMALL) && sizes.includes(SC_LARGE);
  L.push('## Scale: 100,000 and 1,000,000 entries', '');
  L.push('Synthetic trees made once by bench/make-scale-tree.js and cached under bench/cache/scale-N-KEY/: directories of 99 small',
    'text files (0 to 4095 bytes, mean about 1 KiB; fixed seed, names, modes and mtimes), 100 directories to a top directory,',
    `N entries in all (directories included). Tools: ${facts.scale_tools}. Each build starts from a dropped page cache and ends with`,
    '`sync`; peak RSS is `/usr/bin/time` %M (Maximum resident set size). Mount ready: page cache dropped, then from starting',
    '`uniso mount U.iso MNT` (or `squashfuse -f` of the baseline\'s image, in the background) until `ls MNT` lists something;',
    `median of ${num('reps')} reps, a fresh daemon each. Daemon RSS: VmRSS/VmHWM of the last rep\'s daemon 1 s after ready, then after`,
    '`ls -lR MNT/rootfs` (cold: every entry stat\'ed; squashfuse: `ls -lR` of its mount).', '');
  const col = (n) => (sizes.includes(n) ? n : null);
  const cols = [col(SC_SMALL), col(SC_LARGE), ...sizes.filter((n) => n !== SC_SMALL && n !== SC_LARGE)].filter((x) => x !== null);
  const head = cols.map((n) => `${n.toLocaleString('en-US')} entries`);
  L.push(`| | ${head.join(' | ')} |${both ? ' 1M / 100k (per 10x entries) |' : ''}`, `|---|${cols.map(() => '---:|').join('')}${both ? '---:|' : ''}`);
  const row = (label, get, fmt) => {
    const vs = cols.map((n) => get(n));
    const cells = vs.map((v) => (Number.isFinite(v) ? fmt(v) : '-'));
    const g = both ? get(SC_LARGE) / get(SC_SMALL) : NaN;
    L.push(`| ${label} | ${cells.join(' | ')} |${both ? ` ${Number.isFinite(g) ? f2(g) : '-'} |` : ''}`);
  };
  const m = scMed;
  const int = (x) => String(Math.round(x));
  row('entries (files and directories)', (n) => m(n, 'entries'), int);
  row('bytes of the files', (n) => m(n, 'file-bytes'), int);
  row('load average (1 min) when its part started', (n) => m(n, 'load'), f2);
  row('**uniso build** (all views), s', (n) => m(n, 'build-s'), f1);
  row('&nbsp;&nbsp;per 100k entries, s', (n) => m(n, 'build-s') / (m(n, 'entries') / 1e5), f1);
  row('&nbsp;&nbsp;exit status', (n) => m(n, 'build-rc'), int);
  row('&nbsp;&nbsp;peak RSS, MiB', (n) => kbMiB(m(n, 'build-maxrss-kb')), f1);
  row('&nbsp;&nbsp;peak RSS per 100k entries, MiB', (n) => kbMiB(m(n, 'build-maxrss-kb')) / (m(n, 'entries') / 1e5), f1);
  row('mksquashfs -comp gzip (baseline), s', (n) => m(n, 'sq-build-s'), f1);
  row('&nbsp;&nbsp;peak RSS, MiB', (n) => kbMiB(m(n, 'sq-build-maxrss-kb')), f1);
  row('uniso build / mksquashfs time', (n) => m(n, 'build-s') / m(n, 'sq-build-s'), f2);
  row('universal ISO, bytes', (n) => m(n, 'iso-bytes'), int);
  row('mksquashfs image, bytes', (n) => m(n, 'sq-bytes'), int);
  row('catalog (/uniso/catalog.sqlite), bytes', (n) => m(n, 'catalog-bytes'), int);
  row('&nbsp;&nbsp;per entry', (n) => m(n, 'catalog-bytes') / m(n, 'entries'), f1);
  row('base tree entries in the catalog (`uniso info`)', (n) => m(n, 'base-tree-entries'), int);
  row('`uniso ls U.iso` (cold), median s', (n) => m(n, 'ls-s'), f3);
  row('`uniso mount` returned, median s', (n) => m(n, 'mount-cmd-s'), f3);
  row('**mount ready**, median s', (n) => m(n, 'mount-ready-s'), f3);
  row('squashfuse -f ready (baseline), median s', (n) => m(n, 'sq-ready-s'), f3);
  row('daemon VmRSS after ready, MiB', (n) => kbMiB(m(n, 'rss-ready-kb')), f1);
  row('&nbsp;&nbsp;VmHWM after ready, MiB', (n) => kbMiB(m(n, 'hwm-ready-kb')), f1);
  row('`ls -lR MNT/rootfs` (cold), s', (n) => m(n, 'walk-s'), f1);
  row('&nbsp;&nbsp;entries it listed', (n) => m(n, 'walk-entries'), int);
  row('daemon VmRSS after the walk, MiB', (n) => kbMiB(m(n, 'rss-walk-kb')), f1);
  row('**daemon VmHWM after the walk**, MiB', (n) => kbMiB(m(n, 'hwm-walk-kb')), f1);
  row('daemon open fds after the walk', (n) => m(n, 'fds-walk'), int);
  row('&nbsp;&nbsp;threads', (n) => m(n, 'threads-walk'), int);
  row('squashfuse `ls -lR` of its mount (cold), s', (n) => m(n, 'sq-walk-s'), f1);
  row('&nbsp;&nbsp;entries it listed', (n) => m(n, 'sq-walk-entries'), int);
  row('&nbsp;&nbsp;squashfuse VmHWM after it, MiB', (n) => kbMiB(m(n, 'sq-hwm-walk-kb')), f1);
  L.push('');
  for (const n of sizes) {
    const p = phasesOf(`scale-${n}-build-progress.log`, num(`scale_${n}_build_start`), num(`scale_${n}_build_end`), m(n, 'build-s')).filter((x) => x.name !== 'exit');
    if (p.length) L.push(`uniso build phases, ${n} entries (s): ${p.map((x) => `${x.name} ${Number.isFinite(x.s) ? f1(x.s) : '?'}`).join('; ')}.`, '');
  }
}

// ---- section 14: soak ------------------------------------------------------------------
function soakSection() {
  if (soak.reads === undefined && !soakChecks.length) return;
  L.push('## Soak: concurrent random reads through one mount', '');
  L.push(`${facts.soak_readers} readers (worker threads, bench/soak.js) read random ranges of random views of U.iso through one \`uniso mount\` for ${f1(soak.seconds || num('soak_seconds'))} s:`,
    'lengths 1 B to 4 MiB (log-uniform), offsets uniform (30%), within 32 bytes of a 64 KiB boundary and often starting half a read',
    'before it (30%), inside the data extents of the sparse references (30%), or across the end of the file (10%); a reader reopens',
    'its file one read in 16. Every range is compared byte for byte with the same pread of a reference copy (`uniso extract`,',
    'checked below before the readers start). The page cache is dropped (`echo 1 > drop_caches`) every 20 s so the reads keep',
    `reaching the daemon. Views: ${facts.soak_views}. Load average: ${facts.soak_load_start} when the references were made, ${facts.soak_load_end} after the readers.`, '');
  if (soak.reads !== undefined) {
    const base = soakBase.reads === undefined ? 'Local baseline: not measured (its readers failed).'
      : `Local baseline (the same readers, ${f1(soakBase.seconds)} s, the references read as targets): ${soakBase.reads} reads, ${mb(soakBase.bytes)}, ${f1(soakRate(soakBase))} MB/s, ${soakBase.mismatches} mismatches, ${soakBase.errors} errors.`;
    L.push(`Reads: ${soak.reads} (${mb(soak.bytes)}) checked, ${soak.mismatches} mismatches, ${soak.errors} errors; ${f1(soakRate(soak))} MB/s. ${base}`, '');
    if (soak.details && soak.details.length) {
      L.push('First mismatches and errors:', '');
      for (const d of soak.details.slice(0, 10)) L.push(`- ${d}`);
      L.push('');
    }
  }
  if (soakSamples.length) {
    L.push('Daemon samples (every 5 s; shown every minute, the warm-up sample and the last ones):', '');
    L.push('| t (s) | phase | VmRSS (MiB) | VmHWM (MiB) | open fds | threads | reads so far | MB/s since the previous row |', '|---:|---|---:|---:|---:|---:|---:|---:|');
    let prev = null;
    for (const x of soakSamples) {
      const show = x.phase !== 'reading' || x === soakStart || x === soakEnd || !prev || Math.floor(x.t / 60) !== Math.floor(prev.shownT / 60);
      if (!show) continue;
      const rate = prev && x.t > prev.t ? f1((x.bytes - prev.bytes) / (x.t - prev.t) / MB) : '-';
      L.push(`| ${f1(x.t)} | ${x.phase}${x === soakStart ? ' (start)' : x === soakEnd ? ' (end)' : ''} | ${f1(kbMiB(x.rss))} | ${f1(kbMiB(x.hwm))} | ${x.fds} | ${x.threads} | ${x.reads} | ${rate} |`);
      prev = { ...x, shownT: x.t };
    }
    L.push('');
  }
  if (soak.perFile) {
    L.push('| view | reads | MB read |', '|---|---:|---:|');
    for (const [p, v] of Object.entries(soak.perFile).sort((a, b) => (a[0] < b[0] ? -1 : 1))) L.push(`| ${p} | ${v.reads} | ${f1(v.bytes / MB)} |`);
    L.push('');
  }
  L.push(`Reference copies: ${mb(num('soak_refs_alloc_bytes'))} allocated, made and checked in ${f1(num('soak_refs_s'))} s (untimed).`, '');
  L.push('| check | result | detail |', '|---|---|---|');
  for (const c of soakChecks) L.push(`| ${c.name} | ${c.ok ? 'ok' : '**FAIL**'} | ${c.detail.replace(/\|/g, '\\|')} |`);
  L.push('');
}

// ---- results.md and the stdout summary ---------------------------------------------
function finish() {
  fs.writeFileSync(out, L.join('\n'));
  const rows = [['metric', 'uniso', 'baseline', 'ratio', 'target', 'result']];
  for (const m of metrics) rows.push([m.name, cellStr(m, m.u), cellStr(m, m.b), ratioStr(m), m.target, verdict(m, false)]);
  const w = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  process.stdout.write('\n' + rows.map((r) => r.map((c, i) => (i === 0 ? c.padEnd(w[i]) : c.padStart(w[i]))).join('  ')).join('\n') + '\n');
  if (busy) process.stdout.write(`\nnote: other processes used ${(100 * foreignShare).toFixed(0)}% of the CPU during this run; timings are skewed\n`);
  const skewed = sections.filter((y) => y.share > 0.05);
  if (skewed.length) process.stdout.write(`${busy ? '' : '\n'}note: other processes skewed these sections' timings:\n`);
  for (const x of skewed) process.stdout.write(`  ${x.name}: ${(100 * x.share).toFixed(0)}% of the cores (${f1(x.foreign)} s of CPU over ${f1(x.wall)} s)\n`);
  process.stdout.write(`\ntree ${mb(num('tree_bytes'))}; bench ${f1(num('bench_s'))} s; details in ${path.relative(process.cwd(), out) || out}\n`);
  for (const c of [...checks, ...remoteChecks, ...ndChecks, ...soakChecks].filter((x) => !x.ok)) process.stdout.write(`check failed: ${c.name}: ${c.detail}\n`);
  if (process.env.BENCH_STRICT === '1' && metrics.some((m) => m.pass === false)) process.exitCode = 1;
}
