#!/usr/bin/env node
'use strict';
// Turns the raw measurements bench/run.sh left in its work directory
// (facts.tsv, conv-times.tsv, conv-sizes.tsv, reads.tsv, build-progress.log,
// views.json) into bench/results.md and a compact summary on stdout.
//   node bench/report.js WORKDIR RESULTS.md
// Exits 1 when BENCH_STRICT=1 and a target is missed.

const fs = require('fs');
const path = require('path');

const [work, out] = process.argv.slice(2);
if (!work || !out) {
  process.stderr.write('usage: report.js WORKDIR RESULTS.md\n');
  process.exit(2);
}
const rd = (f) => fs.readFileSync(path.join(work, f), 'utf8');
const tsv = (f) => rd(f).split('\n').filter(Boolean).map((l) => l.split('\t'));

const facts = Object.fromEntries(tsv('facts.tsv').map(([k, ...v]) => [k, v.join('\t')]));
const convTimes = tsv('conv-times.tsv').map(([p, s]) => [p, Number(s)]);
const convSizes = tsv('conv-sizes.tsv').map(([p, b]) => [p, Number(b)]);
const reads = tsv('reads.tsv').map(([kind, rep, file, v]) => ({ kind, rep: Number(rep), file, v: Number(v) }));
const views = JSON.parse(rd('views.json'));
const num = (k) => Number(facts[k]);

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
    name: `FUSE cold read, median of ${uRates.length} (MB/s)`, u: median(uRates), b: median(pRates),
    fmt: f1, ratio: median(uRates) / median(pRates), target: '>= 0.7', ok: (r) => r >= 0.7,
  },
  {
    name: 'daemon peak RSS, VmHWM (MiB)', u: uHwm / MiB, b: pHwm / MiB,
    fmt: f1, ratio: uHwm / pHwm, target: '<= 250 MiB', ok: () => uHwm / MiB <= 250,
  },
];
for (const m of metrics) m.pass = m.ok(m.ratio);

// ---- uniso build phases from the stamped progress log ----------------------------
const progress = rd('build-progress.log').split('\n').filter(Boolean).map((l) => {
  const i = l.indexOf(' ');
  return { t: Number(l.slice(0, i)), text: l.slice(i + 1) };
});
const phases = [];
let prev = { name: 'start-up (node, catalog, input detection)', t: num('build_start') };
for (const p of progress) {
  const m = /^uniso: (.*)$/.exec(p.text);
  if (!m || /\s\d+%/.test(m[1])) continue; // a percentage line inside a phase
  phases.push({ name: prev.name, s: p.t - prev.t });
  prev = { name: m[1].startsWith('wrote ') ? 'exit' : m[1].replace(/ \([^)]*\)$/, ''), t: p.t };
}
phases.push({ name: prev.name, s: num('build_end') - prev.t });
phases.push({ name: 'sync', s: num('uniso_build_s') - (num('build_end') - num('build_start')) });

// ---- per-format sizes -----------------------------------------------------------
const viewOf = (re) => views.find((v) => re.test(v.path));
const sizeRows = [
  ['input ISO (gzip squashfs)', num('input_iso_bytes'), null],
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
  L.push(`| ${m.name} | ${m.fmt(m.u)} | ${m.fmt(m.b)} | ${f3(m.ratio)} | ${m.target} | ${m.pass ? 'pass' : '**FAIL**'} |`);
}
L.push('');
L.push('Baselines: build time = the conventional pipeline (bench/conventional.sh); size = input ISO + every',
  'format file + a gzip squashfs made separately; FUSE read = the universal ISO read through a minimal',
  'fuse-native passthrough (bench/passthrough.js); RSS = that passthrough\'s VmHWM (for scale only: the',
  'RSS target is the absolute 250 MiB).', '');

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
L.push(`| input ISO | ${facts.input_iso}, ${mb(num('input_iso_bytes'))} (gzip squashfs, isolinux) |`);
const nViews = views.filter((v) => !v.path.endsWith('.sha256') && v.path !== 'README.txt').length;
L.push(`| universal ISO | ${mb(isoBytes)}, ${nViews} views (plus README.txt and a .sha256 per view) |`);
L.push(`| whole \`bench/run.sh\` | ${f1(num('bench_s'))} s |`);
const foreignCpu = Math.max(0, num('machine_cpu_s') - num('own_cpu_s'));
const foreignShare = foreignCpu / (num('measured_s') * num('cores'));
const busy = foreignShare > 0.05;
L.push(`| CPU time spent by other processes while measuring | ${f1(foreignCpu)} s of ${f1(num('machine_cpu_s'))} s used by the machine (${(100 * foreignShare).toFixed(0)}% of ${num('cores')} cores over ${f1(num('measured_s'))} s) |`);
L.push('');
if (busy) L.push(`**Note:** other processes used ${(100 * foreignShare).toFixed(0)}% of the machine's CPU while this run measured; its timings are skewed (ratios less so).`, '');

L.push('## Build time breakdown', '');
L.push('| uniso build phase | s |', '|---|---:|');
for (const p of phases) L.push(`| ${p.name} | ${f1(p.s)} |`);
L.push(`| **total** | **${f1(num('uniso_build_s'))}** |`);
if (facts.uniso_build_maxrss_kb) L.push('', `uniso build peak RSS: ${f1(num('uniso_build_maxrss_kb') * 1024 / MiB)} MiB.`);
L.push('');
L.push('| conventional part | s |', '|---|---:|');
for (const [p, s] of convTimes) L.push(`| ${p} | ${f1(s)} |`);
L.push(`| **total** | **${f1(num('conventional_build_s'))}** |`, '');

L.push('## Sizes', '');
L.push('| file | conventional | uniso view |', '|---|---:|---:|');
for (const [p, b, v] of sizeRows) L.push(`| ${p} | ${b} | ${v === null ? '-' : v} |`);
L.push(`| **sum of separate files** | **${sepSum}** | |`);
L.push(`| **universal ISO** (input ISO + /uniso/ catalog and pool) | | **${isoBytes}** |`, '');

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

L.push('## Method', '');
L.push(
  '- One invocation measures uniso and every baseline; compare ratios, not absolute numbers across runs',
  '  (FUSE figures swing 2-3x between runs on this kind of VM).',
  '- The tree is built once by debootstrap and cached with its ISO (test/fixture/make-iso.sh, gzip squashfs)',
  '  under bench/cache/, keyed by the package list and make-iso.sh.',
  '- Build time: the page cache is dropped before `uniso build INPUT -o U.iso` and before the conventional',
  '  pipeline; both end with `sync` inside the timing. The conventional pipeline runs its tools one after',
  '  another (tar --numeric-owner --xattrs --xattrs-include=\'*\', gzip level 6 = uniso\'s default pool level;',
  '  mksquashfs uses both cores). uniso phases are timed from its progress lines on stderr.',
  `- FUSE: each of the ${num('reps')} reps mounts a fresh uniso daemon (so its in-process block cache starts empty),`,
  `  reads ${facts.view} cold, re-reads it warm, reads the lxc and docker views cold, records VmHWM from /proc/PID/status and`,
  '  unmounts; then mounts the passthrough over U.iso and reads it cold. The metric is the median MB/s;',
  '  the RSS figure is the largest VmHWM of the uniso daemons.',
  '- Size: bytes of the universal ISO vs the input ISO plus every file the conventional pipeline wrote.',
  '',
);
fs.writeFileSync(out, L.join('\n'));

// ---- stdout summary ---------------------------------------------------------------
const rows = [['metric', 'uniso', 'baseline', 'ratio', 'target', 'result']];
for (const m of metrics) rows.push([m.name, m.fmt(m.u), m.fmt(m.b), f3(m.ratio), m.target, m.pass ? 'pass' : 'FAIL']);
const w = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
process.stdout.write('\n' + rows.map((r) => r.map((c, i) => (i === 0 ? c.padEnd(w[i]) : c.padStart(w[i]))).join('  ')).join('\n') + '\n');
if (busy) process.stdout.write(`\nnote: other processes used ${(100 * foreignShare).toFixed(0)}% of the CPU during this run; timings are skewed\n`);
process.stdout.write(`\ntree ${mb(num('tree_bytes'))}; bench ${f1(num('bench_s'))} s; details in ${path.relative(process.cwd(), out) || out}\n`);
if (process.env.BENCH_STRICT === '1' && metrics.some((m) => !m.pass)) process.exit(1);
