// `uniso serve IMAGE --http ADDR:PORT` checked with curl and wget as the
// oracles: GET of every file view equals `uniso extract`; HEAD headers
// (Content-Length, ETag = the view's sha256 from `uniso ls --json`,
// Last-Modified, Accept-Ranges); single ranges at odd offsets (first byte,
// last byte, across 64 KiB pool blocks, suffix, past 4 GiB in a rootfs/
// file); multiple ranges as multipart/byteranges (parsed part by part);
// 416 with Content-Range: bytes */SIZE; If-None-Match, If-Modified-Since and
// If-Range; `wget -c` resuming a partial download; the JSON and HTML
// indexes (root and subdirectories); 404, 405, 400, 301; a killed client,
// a slow client (backpressure: the server does not buffer the view), 8
// concurrent clients; SIGTERM/SIGINT during and outside a download; a port
// already in use.

import t from 'tap';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import * as crypto from 'node:crypto';
import { ChildProcess, spawn } from 'node:child_process';
import {
  buildUniversal, extractViews, fixture, listViews, must, mustUniso, processAlive, readAt, run, runAsync, tempDir, UNISO, uniso,
  waitUntil, FIXTURE_NAME, freePort } from './lib/fixture';

const KiB = 1024;
const fx = fixture();
const dir = tempDir(t, 'uniso-http-');
const uni = buildUniversal(dir);
const fileViews = listViews(uni).filter((v) => !v.path.endsWith('/'));
const lsJson = JSON.parse(mustUniso(['ls', '--json', uni]).stdout) as { path: string; size: number; sha256: string }[];
const shaOf = new Map(lsJson.map((v) => [v.path, v.sha256]));
const sizeOf = new Map(fileViews.map((v) => [v.path, v.size]));

// the oracle: every file view copied out with `uniso extract`
const extracted = extractViews(uni, dir, fileViews);
const bytesOf = (view: string) => fs.readFileSync(extracted.get(view)!);
const bySize = [...fileViews].sort((a, b) => b.size - a.size);
const RAW = `raw/${FIXTURE_NAME}.img`;
const OVA = `vm/${FIXTURE_NAME}.ova`;
const HUGE = 'srv/data/huge-9g.img';

function answers(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port });
    s.setTimeout(500, () => { s.destroy(); resolve(false); });
    s.once('connect', () => { s.destroy(); resolve(true); });
    s.once('error', () => resolve(false));
  });
}

interface Server {
  proc: ChildProcess;
  port: number;
  base: string;
  stderr: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** Start `uniso serve` on a free loopback port; killed at teardown whatever happens. */
async function startServer(tt: { teardown(fn: () => void | Promise<void>): void }, extra: string[] = []): Promise<Server> {
  const port = await freePort();
  const proc = spawn(process.execPath, [UNISO, 'serve', uni, '--http', `127.0.0.1:${port}`, ...extra], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  proc.stderr!.on('data', (d: Buffer) => { err += d.toString(); });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    proc.on('exit', (code, signal) => resolve({ code, signal }));
  });
  tt.teardown(async () => {
    if (proc.exitCode === null && proc.signalCode === null) {
      proc.kill('SIGKILL');
      await exited;
    }
  });
  const end = Date.now() + 30000;
  while (!(await answers(port))) {
    if (proc.exitCode !== null || Date.now() > end) throw new Error(`uniso serve did not start: ${err}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  return { proc, port, base: `http://127.0.0.1:${port}`, stderr: () => err, exited };
}

interface Resp {
  curl: number; // curl's exit code
  status: number;
  headers: Map<string, string>; // lower-case names (last value wins)
  body: Buffer;
  raw: string;
}

let nreq = 0;
/** One request with curl; headers and body kept apart (files, so binary bodies survive). */
function curl(url: string, args: string[] = []): Resp {
  const h = path.join(dir, `h${++nreq}`);
  const b = path.join(dir, `b${nreq}`);
  const r = run('curl', ['-s', '-g', '--max-time', '60', '-D', h, '-o', b, ...args, url]);
  const raw = fs.existsSync(h) ? fs.readFileSync(h, 'utf8') : '';
  const body = fs.existsSync(b) ? fs.readFileSync(b) : Buffer.alloc(0);
  fs.rmSync(h, { force: true });
  fs.rmSync(b, { force: true });
  return { curl: r.code, ...parseHeaders(raw), body, raw };
}

function parseHeaders(raw: string): { status: number; headers: Map<string, string> } {
  const headers = new Map<string, string>();
  const lines = raw.split('\r\n');
  const m = /^HTTP\/[\d.]+ (\d{3})/.exec(lines[0] ?? '');
  for (const l of lines.slice(1)) {
    const i = l.indexOf(':');
    if (i > 0) headers.set(l.slice(0, i).trim().toLowerCase(), l.slice(i + 1).trim());
  }
  return { status: m ? Number(m[1]) : 0, headers };
}

const enc = (p: string) => p.split('/').map(encodeURIComponent).join('/');

t.test('GET of every file view equals uniso extract; HEAD gives the headers', async (t) => {
  const s = await startServer(t);
  t.ok(fileViews.length >= 30, `${fileViews.length} file views`);
  const future: string[] = [];
  for (const v of fileViews) {
    const want = bytesOf(v.path);
    const g = curl(`${s.base}/${enc(v.path)}`);
    t.equal(g.status, 200, `${v.path}: GET 200`);
    t.equal(g.body.length, v.size, `${v.path}: GET ${v.size} bytes`);
    t.ok(g.body.equals(want), `${v.path}: GET body equals uniso extract`);
    const h = curl(`${s.base}/${enc(v.path)}`, ['-I']);
    t.equal(h.status, 200, `${v.path}: HEAD 200`);
    t.equal(h.headers.get('content-length'), String(v.size), `${v.path}: HEAD Content-Length`);
    t.equal(h.headers.get('etag'), `"${shaOf.get(v.path)}"`, `${v.path}: ETag is the sha256 from uniso ls --json`);
    t.equal(shaOf.get(v.path), crypto.createHash('sha256').update(want).digest('hex'), `${v.path}: and it is the sha256 of the bytes`);
    t.equal(h.headers.get('accept-ranges'), 'bytes', `${v.path}: Accept-Ranges: bytes`);
    const lm = h.headers.get('last-modified') ?? '';
    t.match(lm, /^[A-Z][a-z]{2}, \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} GMT$/, `${v.path}: Last-Modified is an HTTP date (${lm})`);
    // RFC 9110 8.8.2.1: an origin server MUST NOT send a Last-Modified later than its Date (a future mtime is replaced by Date)
    if (Date.parse(lm) > Date.parse(h.headers.get('date') ?? '')) future.push(`${v.path} (Last-Modified ${lm}, Date ${h.headers.get('date')})`);
    // curl -I writes the headers to -o: a body would follow them
    t.equal(h.body.toString('latin1'), h.raw, `${v.path}: HEAD has no body`);
  }
  t.same(future, [], 'no view has a Last-Modified later than the Date of the response (RFC 9110 8.8.2.1)');
  // README.txt and .sha256 are text
  t.match(curl(`${s.base}/README.txt`, ['-I']).headers.get('content-type') ?? '', /^text\/plain/, 'README.txt is text/plain');
});

t.test('rootfs/ files over HTTP equal the fixture tree; Last-Modified is their mtime', async (t) => {
  const s = await startServer(t);
  for (const rel of ['etc/motd', 'usr/lib/random-1m.bin', 'usr/lib/zero-middle.bin', 'usr/lib/64k-plus-1.bin', 'usr/lib/exact-64k.bin',
    'usr/share/doc/numbers.txt', 'var/log/sparse.log', 'root/secret', 'srv/name with spaces.txt', 'srv/ünïcødé/日本語ファイル.txt', 'etc/empty']) {
    const want = fs.readFileSync(path.join(fx.tree, rel));
    const g = curl(`${s.base}/rootfs/${enc(rel)}`);
    t.equal(g.status, 200, `rootfs/${rel}: 200`);
    t.ok(g.body.equals(want), `rootfs/${rel}: ${want.length} bytes equal the fixture`);
    const h = curl(`${s.base}/rootfs/${enc(rel)}`, ['-I']);
    t.equal(h.headers.get('content-length'), String(want.length), `rootfs/${rel}: Content-Length`);
    t.equal(h.headers.get('last-modified'), new Date(Math.floor(fs.statSync(path.join(fx.tree, rel)).mtimeMs / 1000) * 1000).toUTCString(),
      `rootfs/${rel}: Last-Modified is the file's mtime`);
    t.match(h.headers.get('etag') ?? '', /^"[^"]+"$/, `rootfs/${rel}: has a strong ETag`);
  }
  // ranges beyond 4 GiB in the sparse 9 GiB file
  const size = fs.statSync(path.join(fx.tree, HUGE)).size;
  for (const [a, b] of [[size - 761, size - 1], [4 * 1024 * KiB * KiB - 3, 4 * 1024 * KiB * KiB + 70000], [0, 99]]) {
    const r = curl(`${s.base}/rootfs/${HUGE}`, ['-r', `${a}-${b}`]);
    t.equal(r.status, 206, `rootfs/${HUGE} ${a}-${b}: 206`);
    t.equal(r.headers.get('content-range'), `bytes ${a}-${b}/${size}`, `rootfs/${HUGE} ${a}-${b}: Content-Range`);
    t.ok(r.body.equals(readAt(path.join(fx.tree, HUGE), a, b - a + 1)), `rootfs/${HUGE} ${a}-${b}: bytes`);
  }
});

t.test('single byte ranges at odd offsets equal the slices', async (t) => {
  const s = await startServer(t);
  for (const v of [...bySize.slice(0, 6), fileViews.find((x) => x.path === 'README.txt')!, fileViews.find((x) => x.path.endsWith('.sha256'))!]) {
    const want = bytesOf(v.path);
    const size = v.size;
    const B = 64 * KiB;
    const specs: [string, number, number][] = [
      ['0-0', 0, 0], // first byte
      [`${size - 1}-${size - 1}`, size - 1, size - 1], // last byte
      [`${size - 1}-`, size - 1, size - 1],
      ['-1', size - 1, size - 1], // suffix form
      [`-${Math.min(size, 777)}`, size - Math.min(size, 777), size - 1],
      [`-${size + 1000}`, 0, size - 1], // suffix longer than the file: the whole file
      ['7-', 7, size - 1],
      [`0-${size + 5000}`, 0, size - 1], // end past EOF is clamped
    ];
    if (size > 3 * B) {
      specs.push([`${B - 1}-${B}`, B - 1, B]); // 2 bytes straddling the first pool block boundary
      specs.push([`${B - 3}-${2 * B + 2}`, B - 3, 2 * B + 2]); // two boundaries
      specs.push([`${B + 1}-${3 * B - 1}`, B + 1, 3 * B - 1]);
      const mid = Math.floor(size / 2 / B) * B;
      specs.push([`${mid - 12345}-${mid + 54321}`, mid - 12345, mid + 54321]);
    }
    for (const [spec, a, b] of specs) {
      const r = curl(`${s.base}/${enc(v.path)}`, ['-r', spec]);
      t.equal(r.status, 206, `${v.path} -r ${spec}: 206`);
      t.equal(r.headers.get('content-range'), `bytes ${a}-${b}/${size}`, `${v.path} -r ${spec}: Content-Range`);
      t.equal(r.headers.get('content-length'), String(b - a + 1), `${v.path} -r ${spec}: Content-Length`);
      t.ok(r.body.equals(want.subarray(a, b + 1)), `${v.path} -r ${spec}: ${b - a + 1} bytes equal the slice`);
      t.equal(r.headers.get('etag'), `"${shaOf.get(v.path)}"`, `${v.path} -r ${spec}: ETag`);
    }
  }
});

/** Split a multipart/byteranges body into its parts (headers and bytes). */
function parseMultipart(body: Buffer, boundary: string): { headers: Map<string, string>; data: Buffer }[] {
  const delim = Buffer.from(`--${boundary}`);
  const parts: { headers: Map<string, string>; data: Buffer }[] = [];
  let pos = body.indexOf(delim);
  if (pos < 0) throw new Error('no boundary in the body');
  for (;;) {
    pos += delim.length;
    if (body.subarray(pos, pos + 2).toString() === '--') break; // closing delimiter
    if (body.subarray(pos, pos + 2).toString() !== '\r\n') throw new Error(`bad delimiter line at ${pos}`);
    pos += 2;
    const hEnd = body.indexOf('\r\n\r\n', pos);
    if (hEnd < 0) throw new Error('part without a header end');
    const headers = new Map<string, string>();
    for (const l of body.subarray(pos, hEnd).toString('latin1').split('\r\n')) {
      const i = l.indexOf(':');
      headers.set(l.slice(0, i).trim().toLowerCase(), l.slice(i + 1).trim());
    }
    const dataStart = hEnd + 4;
    // the part's length comes from its Content-Range (the data may contain anything)
    const m = /^bytes (\d+)-(\d+)\/(\d+)$/.exec(headers.get('content-range') ?? '');
    if (!m) throw new Error(`part without a Content-Range: ${[...headers].join(';')}`);
    const len = Number(m[2]) - Number(m[1]) + 1;
    parts.push({ headers, data: body.subarray(dataStart, dataStart + len) });
    pos = dataStart + len;
    if (body.subarray(pos, pos + 2).toString() !== '\r\n') throw new Error(`no CRLF after part data at ${pos}`);
    pos += 2;
    if (!body.subarray(pos, pos + delim.length).equals(delim)) throw new Error(`no boundary after part at ${pos}`);
  }
  return parts;
}

t.test('multiple ranges give 206 multipart/byteranges with the right parts', async (t) => {
  const s = await startServer(t);
  const cases: [string, string, [number, number][]][] = [];
  for (const v of bySize.slice(0, 4)) {
    const z = v.size;
    cases.push([v.path, 'bytes=0-9,100-199,5000-6000', [[0, 9], [100, 199], [5000, 6000]]]);
    cases.push([v.path, `bytes=65535-65536,-10,${z - 100000}-${z - 99000}`, [[65535, 65536], [z - 10, z - 1], [z - 100000, z - 99000]]]);
    // an unsatisfiable range among satisfiable ones is left out
    cases.push([v.path, `bytes=${z + 10}-${z + 20},1-2,3-4`, [[1, 2], [3, 4]]]);
  }
  for (const [view, range, want] of cases) {
    const bytes = bytesOf(view);
    const r = curl(`${s.base}/${enc(view)}`, ['-H', `Range: ${range}`]);
    t.equal(r.status, 206, `${view} ${range}: 206`);
    const ct = r.headers.get('content-type') ?? '';
    const m = /^multipart\/byteranges;\s*boundary=("?)([^";]+)\1$/.exec(ct);
    t.ok(m, `${view} ${range}: Content-Type multipart/byteranges with a boundary (${ct})`);
    if (!m) continue;
    t.equal(r.headers.get('content-length'), String(r.body.length), `${view} ${range}: Content-Length is the body length`);
    let parts: ReturnType<typeof parseMultipart> = [];
    try {
      parts = parseMultipart(r.body, m[2]);
    } catch (e) {
      t.fail(`${view} ${range}: body parses as multipart: ${(e as Error).message}`);
      continue;
    }
    t.equal(parts.length, want.length, `${view} ${range}: ${want.length} parts`);
    for (const [i, [a, b]] of want.entries()) {
      const p = parts[i];
      if (!p) continue;
      t.equal(p.headers.get('content-range'), `bytes ${a}-${b}/${bytes.length}`, `${view} ${range}: part ${i} Content-Range`);
      t.ok(p.data.equals(bytes.subarray(a, b + 1)), `${view} ${range}: part ${i} bytes`);
    }
  }
  // HEAD of a multi-range request: same status and headers, no body
  const view = bySize[0].path;
  const get = curl(`${s.base}/${enc(view)}`, ['-H', 'Range: bytes=0-9,100-199']);
  const head = curl(`${s.base}/${enc(view)}`, ['-I', '-H', 'Range: bytes=0-9,100-199']);
  t.equal(head.status, 206, 'HEAD with two ranges: 206');
  t.equal(head.headers.get('content-length'), get.headers.get('content-length'), 'HEAD: same Content-Length as GET');
  t.equal(head.headers.get('content-type'), get.headers.get('content-type'), 'HEAD: same Content-Type (boundary) as GET');
  t.equal(head.body.toString('latin1'), head.raw, 'HEAD: no body (curl -I writes only the headers)');
});

t.test('unsatisfiable ranges give 416 with Content-Range: bytes */SIZE; bad ranges are ignored', async (t) => {
  const s = await startServer(t);
  for (const v of [bySize[0], fileViews.find((x) => x.path === 'README.txt')!]) {
    for (const range of [`bytes=${v.size}-`, `bytes=${v.size}-${v.size + 10}`, `bytes=${v.size + 1000000}-`, 'bytes=-0', `bytes=${v.size}-,${v.size + 5}-`]) {
      const r = curl(`${s.base}/${enc(v.path)}`, ['-H', `Range: ${range}`]);
      t.equal(r.status, 416, `${v.path} ${range}: 416`);
      t.equal(r.headers.get('content-range'), `bytes */${v.size}`, `${v.path} ${range}: Content-Range: bytes */${v.size}`);
    }
    // a malformed or non-bytes Range header is ignored: the whole file
    for (const range of ['bytes=5-2', 'items=0-9', 'bytes=abc']) {
      const r = curl(`${s.base}/${enc(v.path)}`, ['-H', `Range: ${range}`]);
      t.equal(r.status, 200, `${v.path} ${range}: ignored, 200`);
      t.ok(r.body.equals(bytesOf(v.path)), `${v.path} ${range}: whole file`);
    }
  }
});

t.test('conditional requests: If-None-Match, If-Modified-Since, If-Range', async (t) => {
  const s = await startServer(t);
  for (const v of [bySize[0], fileViews.find((x) => x.path === 'README.txt')!]) {
    const url = `${s.base}/${enc(v.path)}`;
    const etag = `"${shaOf.get(v.path)}"`;
    const lm = curl(url, ['-I']).headers.get('last-modified')!;
    const nm = curl(url, ['-H', `If-None-Match: ${etag}`]);
    t.equal(nm.status, 304, `${v.path}: If-None-Match with the ETag gives 304`);
    t.equal(nm.body.length, 0, `${v.path}: 304 has no body`);
    t.equal(nm.headers.get('etag'), etag, `${v.path}: 304 repeats the ETag`);
    t.equal(curl(url, ['-H', `If-None-Match: "x", ${etag}`]).status, 304, `${v.path}: If-None-Match list containing the ETag: 304`);
    t.equal(curl(url, ['-H', 'If-None-Match: *']).status, 304, `${v.path}: If-None-Match: * gives 304`);
    const other = curl(url, ['-H', 'If-None-Match: "0000"']);
    t.equal(other.status, 200, `${v.path}: If-None-Match with another ETag gives 200`);
    t.ok(other.body.equals(bytesOf(v.path)), `${v.path}: and the whole file`);
    t.equal(curl(url, ['-H', `If-Modified-Since: ${lm}`]).status, 304, `${v.path}: If-Modified-Since = Last-Modified gives 304`);
    t.equal(curl(url, ['-H', 'If-Modified-Since: Sat, 01 Jan 1994 00:00:00 GMT']).status, 200, `${v.path}: older If-Modified-Since gives 200`);
    // If-Range: ranges only while the validator matches
    const ok = curl(url, ['-r', '10-19', '-H', `If-Range: ${etag}`]);
    t.equal(ok.status, 206, `${v.path}: If-Range with the ETag: 206`);
    t.ok(ok.body.equals(bytesOf(v.path).subarray(10, 20)), `${v.path}: and the range`);
    const stale = curl(url, ['-r', '10-19', '-H', 'If-Range: "0123456789"']);
    t.equal(stale.status, 200, `${v.path}: If-Range with another ETag: 200`);
    t.ok(stale.body.equals(bytesOf(v.path)), `${v.path}: and the whole file`);
    t.equal(curl(url, ['-r', '10-19', '-H', `If-Range: W/${etag}`]).status, 200, `${v.path}: If-Range with a weak ETag: 200 (strong comparison)`);
    t.equal(curl(url, ['-r', '10-19', '-H', `If-Range: ${lm}`]).status, 206, `${v.path}: If-Range with the Last-Modified date: 206`);
    t.equal(curl(url, ['-r', '10-19', '-H', 'If-Range: Sat, 01 Jan 1994 00:00:00 GMT']).status, 200, `${v.path}: If-Range with an older date: 200`);
  }
});

t.test('wget -c resumes a partial download to the right bytes', async (t) => {
  const s = await startServer(t);
  for (const view of [OVA, RAW]) {
    const wdir = path.join(dir, `wget-${path.basename(view)}`);
    fs.mkdirSync(wdir);
    const name = path.basename(view);
    const size = sizeOf.get(view)!;
    // the first part with curl -r
    const cut = Math.floor(size / 3) + 4097;
    must('curl', ['-s', '-r', `0-${cut - 1}`, '-o', path.join(wdir, name), `${s.base}/${view}`]);
    t.equal(fs.statSync(path.join(wdir, name)).size, cut, `${view}: partial file of ${cut} bytes`);
    const w = run('wget', ['-c', '-nv', `${s.base}/${view}`], { cwd: wdir });
    t.equal(w.code, 0, `${view}: wget -c exits 0 ${w.stderr}`);
    t.equal(fs.statSync(path.join(wdir, name)).size, size, `${view}: completed to ${size} bytes`);
    t.equal(run('cmp', [path.join(wdir, name), extracted.get(view)!]).code, 0, `${view}: the resumed file equals uniso extract`);
    // again, now that it is complete: nothing to do, file unchanged
    const again = run('wget', ['-c', '-nv', `${s.base}/${view}`], { cwd: wdir });
    t.equal(again.code, 0, `${view}: wget -c of a complete file exits 0 ${again.stderr}`);
    t.equal(run('cmp', [path.join(wdir, name), extracted.get(view)!]).code, 0, `${view}: still equal`);
    fs.rmSync(wdir, { recursive: true, force: true });
  }
  // a wget killed midway, then resumed
  const wdir = path.join(dir, 'wget-killed');
  fs.mkdirSync(wdir);
  const name = path.basename(RAW);
  const p = spawn('wget', ['-q', '--limit-rate=20m', `${s.base}/${RAW}`], { cwd: wdir, stdio: 'ignore' });
  const grew = await waitUntil(() => fs.existsSync(path.join(wdir, name)) && fs.statSync(path.join(wdir, name)).size > 3 * 1024 * KiB, 20000);
  p.kill('SIGKILL');
  await new Promise((r) => p.on('exit', r));
  const partial = fs.statSync(path.join(wdir, name)).size;
  t.ok(grew && partial < sizeOf.get(RAW)!, `wget killed with ${partial} of ${sizeOf.get(RAW)} bytes`);
  const w = run('wget', ['-c', '-nv', `${s.base}/${RAW}`], { cwd: wdir });
  t.equal(w.code, 0, `wget -c after a killed wget exits 0 ${w.stderr}`);
  t.equal(run('cmp', [path.join(wdir, name), extracted.get(RAW)!]).code, 0, 'the resumed raw image equals uniso extract');
  fs.rmSync(wdir, { recursive: true, force: true });
});

interface IndexEntry { name: string; path: string; size: number | null; sha256: string | null; mtime: string }

t.test('the JSON and HTML indexes list every entry', async (t) => {
  const s = await startServer(t);
  const dirs = new Set<string>(['']);
  for (const v of fileViews) {
    const parts = v.path.split('/');
    for (let i = 1; i < parts.length; i++) dirs.add(parts.slice(0, i).join('/'));
  }
  dirs.add('rootfs');
  const seen = new Set<string>();
  for (const d of dirs) {
    const url = `${s.base}/${d ? `${enc(d)}/` : ''}`;
    const j = curl(`${url}?format=json`);
    t.equal(j.status, 200, `/${d}: JSON index 200`);
    t.match(j.headers.get('content-type') ?? '', /^application\/json/, `/${d}: JSON index is application/json`);
    let idx: { entries: IndexEntry[]; path: string };
    try {
      idx = JSON.parse(j.body.toString('utf8'));
    } catch {
      t.fail(`/${d}: JSON index parses`);
      continue;
    }
    t.equal(idx.path, `/${d ? `${d}/` : ''}`, `/${d}: JSON index names its path`);
    for (const e of idx.entries) {
      const rel = e.path.replace(/^\//, '');
      if (rel.endsWith('/')) continue;
      seen.add(rel);
      if (sizeOf.has(rel)) {
        t.equal(e.size, sizeOf.get(rel), `${rel}: JSON size`);
        t.equal(e.sha256, shaOf.get(rel), `${rel}: JSON sha256`);
      }
    }
    // the expected children of this directory
    const want = new Set<string>();
    for (const v of fileViews) {
      if (d === '' ? !v.path.includes('/') : path.posix.dirname(v.path) === d) want.add(v.path);
    }
    for (const w of want) t.ok(idx.entries.some((e) => e.path === `/${w}`), `/${d}: JSON index lists ${w}`);
    const subdirs = [...dirs].filter((x) => x && path.posix.dirname(x) === (d || '.'));
    for (const sd of subdirs) t.ok(idx.entries.some((e) => e.path === `/${sd}/`), `/${d}: JSON index lists ${sd}/`);
    // the HTML index links every entry of the JSON index
    const h = curl(url);
    t.equal(h.status, 200, `/${d}: HTML index 200`);
    t.match(h.headers.get('content-type') ?? '', /^text\/html/, `/${d}: text/html`);
    const html = h.body.toString('utf8');
    const hrefs = new Set([...html.matchAll(/href="([^"]*)"/g)].map((m) => decodeURI(m[1].replace(/&amp;/g, '&'))));
    for (const e of idx.entries) t.ok(hrefs.has(e.path), `/${d}: HTML links ${e.path}`);
  }
  for (const v of fileViews) t.ok(seen.has(v.path), `${v.path}: listed in a JSON index`);
  // a subdirectory of rootfs/ with non-ASCII and spaced names: the links lead to the files
  const srv = JSON.parse(curl(`${s.base}/rootfs/srv/?format=json`).body.toString()) as { entries: IndexEntry[] };
  const names = srv.entries.map((e) => e.name).sort();
  t.same(names, fs.readdirSync(path.join(fx.tree, 'srv')).map((n) => (fs.lstatSync(path.join(fx.tree, 'srv', n)).isDirectory() ? `${n}/` : n)).sort(),
    '/rootfs/srv/ JSON lists the fixture directory');
  const html = curl(`${s.base}/rootfs/srv/`).body.toString();
  const href = [...html.matchAll(/href="([^"]*)"/g)].map((m) => m[1]).find((x) => x.includes('spaces'));
  t.ok(href, 'the HTML index has a link for "name with spaces.txt"');
  if (href) {
    const r = curl(`${s.base}${href.replace(/&amp;/g, '&')}`);
    t.equal(r.status, 200, `following ${href} gives 200`);
    t.ok(r.body.equals(fs.readFileSync(path.join(fx.tree, 'srv/name with spaces.txt'))), `following ${href} gives the file`);
  }
  // a symlink is listed with its type, not linked (it has no bytes to serve)
  const srvLink = srv.entries.find((e) => e.name === 'long-symlink') as (IndexEntry & { type?: string }) | undefined;
  t.equal(srvLink?.type, 'symlink', '/rootfs/srv/ JSON gives long-symlink the type symlink');
  t.ok(html.includes('long-symlink (symlink)'), 'the HTML index names long-symlink as a symlink');
  t.notOk([...html.matchAll(/href="([^"]*)"/g)].some((m) => m[1].includes('long-symlink')), 'and does not link it');
  // a directory without its trailing slash redirects
  const redir = curl(`${s.base}/docker?format=json`);
  t.equal(redir.status, 301, '/docker redirects');
  t.equal(redir.headers.get('location'), '/docker/?format=json', 'to /docker/ keeping the query');
});

t.test('404, 405, 400 and a server that keeps answering', async (t) => {
  const s = await startServer(t);
  t.equal(curl(`${s.base}/nope.txt`).status, 404, 'missing file: 404');
  t.equal(curl(`${s.base}/docker/nope.tar`).status, 404, 'missing file in a directory: 404');
  t.equal(curl(`${s.base}/rootfs/etc/nope`).status, 404, 'missing rootfs file: 404');
  t.equal(curl(`${s.base}/README.txt/child`).status, 404, 'below a file: 404');
  for (const m of ['POST', 'PUT', 'DELETE']) {
    const r = curl(`${s.base}/README.txt`, ['-X', m, ...(m === 'DELETE' ? [] : ['--data-binary', 'x'])]);
    t.equal(r.status, 405, `${m}: 405`);
    t.match(r.headers.get('allow') ?? '', /GET/, `${m}: Allow names GET`);
  }
  // dot segments are resolved inside the served namespace (URL normalization), never outside it
  const dots = curl(`${s.base}/docker/../README.txt`, ['--path-as-is']);
  t.ok(dots.status === 200 && dots.body.equals(bytesOf('README.txt')), '/docker/../README.txt is /README.txt');
  t.equal(curl(`${s.base}/rootfs/etc/../../../../../etc/passwd`, ['--path-as-is']).status, 404, '../../../etc/passwd does not leave the image: 404');
  t.equal(curl(`${s.base}/rootfs/../../../../../etc/hostname`, ['--path-as-is']).status, 404, '../../etc/hostname: 404');
  t.equal(curl(`${s.base}/docker/..%2fREADME.txt`, ['--path-as-is']).status, 400, 'an encoded ..%2f: 400');
  t.equal(curl(`${s.base}/%E0%A4%A`).status, 400, 'bad percent-encoding: 400');
  t.equal(curl(`${s.base}/README.txt`).status, 200, 'still answering');
});

t.test('a killed client does not stop the server; a slow client is streamed with backpressure', async (t) => {
  const s = await startServer(t);
  const out = path.join(dir, 'killed.bin');
  const c = spawn('curl', ['-s', '--limit-rate', '2m', '-o', out, `${s.base}/${RAW}`], { stdio: 'ignore' });
  await waitUntil(() => fs.existsSync(out) && fs.statSync(out).size > 1024 * KiB, 15000);
  c.kill('SIGKILL');
  await new Promise((r) => c.on('exit', r));
  t.ok(fs.statSync(out).size < sizeOf.get(RAW)!, 'the client was killed mid-transfer');
  t.ok(processAlive(s.proc.pid!), 'the server is still running');
  const r = curl(`${s.base}/${OVA}`);
  t.equal(r.status, 200, 'the next request works');
  t.ok(r.body.equals(bytesOf(OVA)), 'and gets the right bytes');
  const rr = curl(`${s.base}/${RAW}`, ['-r', '1000000-1999999']);
  t.ok(rr.status === 206 && rr.body.equals(bytesOf(RAW).subarray(1000000, 2000000)), 'a range of the same view works');

  // a slow reader of the 256 MiB raw image: the server must not read ahead and buffer the whole view
  const rss = () => Number(/VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${s.proc.pid}/status`, 'utf8'))![1]) * 1024;
  const before = rss();
  const slowOut = path.join(dir, 'slow.bin');
  const slow = spawn('curl', ['-s', '--limit-rate', '200k', '-o', slowOut, `${s.base}/${RAW}`], { stdio: 'ignore' });
  await new Promise((r) => setTimeout(r, 4000));
  const during = rss();
  slow.kill('SIGKILL');
  await new Promise((r) => slow.on('exit', r));
  t.ok(during - before < 96 * 1024 * KiB, `server RSS grew by ${((during - before) / 2 ** 20).toFixed(1)} MiB while a 200 KB/s client read a 256 MiB view`);
  const got = fs.readFileSync(slowOut);
  t.ok(got.length > 0 && got.equals(bytesOf(RAW).subarray(0, got.length)), `the slow client's ${got.length} bytes are right`);
  t.equal(curl(`${s.base}/README.txt`).status, 200, 'still answering');
});

t.test('8 concurrent clients all get the right bytes', async (t) => {
  const s = await startServer(t);
  const cdir = path.join(dir, 'concurrent');
  fs.mkdirSync(cdir);
  const MB = 1024 * KiB;
  const jobs: { view: string; a: number; b: number }[] = [
    { view: RAW, a: 0, b: 4 * MB - 1 },
    { view: RAW, a: 100 * MB + 12345, b: 104 * MB },
    { view: `vmdk/${FIXTURE_NAME}-flat.vmdk`, a: 7, b: 3 * MB + 7 },
    { view: OVA, a: 0, b: sizeOf.get(OVA)! - 1 },
    { view: `docker/${FIXTURE_NAME}-docker.tar`, a: 0, b: sizeOf.get(`docker/${FIXTURE_NAME}-docker.tar`)! - 1 },
    { view: `lxc/${FIXTURE_NAME}-incus.tar.gz`, a: 0, b: sizeOf.get(`lxc/${FIXTURE_NAME}-incus.tar.gz`)! - 1 },
    { view: `vhd/${FIXTURE_NAME}.vhd`, a: 65535, b: 5 * MB },
    { view: `openstack/${FIXTURE_NAME}-openstack.qcow2`, a: 0, b: sizeOf.get(`openstack/${FIXTURE_NAME}-openstack.qcow2`)! - 1 },
  ];
  const results = await Promise.all(jobs.map((j, i) => runAsync('curl', ['-s', '-f', '--max-time', '60', '-r', `${j.a}-${j.b}`,
    '-o', path.join(cdir, `c${i}`), `${s.base}/${j.view}`])));
  for (const [i, j] of jobs.entries()) {
    t.equal(results[i].code, 0, `client ${i} (${j.view} ${j.a}-${j.b}): curl exits 0 ${results[i].stderr}`);
    const got = fs.existsSync(path.join(cdir, `c${i}`)) ? fs.readFileSync(path.join(cdir, `c${i}`)) : Buffer.alloc(0);
    const b = Math.min(j.b, sizeOf.get(j.view)! - 1);
    t.ok(got.equals(bytesOf(j.view).subarray(j.a, b + 1)), `client ${i} (${j.view} ${j.a}-${b}): ${got.length} bytes equal the slice`);
  }
  // and 8 whole views at once, without ranges
  const whole = bySize.slice(2, 10).map((v) => v.path);
  const w = await Promise.all(whole.map((v, i) => runAsync('curl', ['-s', '-f', '--max-time', '60', '-o', path.join(cdir, `w${i}`), `${s.base}/${enc(v)}`])));
  for (const [i, v] of whole.entries()) {
    t.equal(w[i].code, 0, `whole ${v}: curl exits 0`);
    t.equal(run('cmp', [path.join(cdir, `w${i}`), extracted.get(v)!]).code, 0, `whole ${v}: equals uniso extract`);
  }
  fs.rmSync(cdir, { recursive: true, force: true });
});

for (const sig of ['SIGTERM', 'SIGINT'] as const) {
  t.test(`${sig} during an active download: the server exits 0 promptly, the client sees a truncated transfer`, async (t) => {
    const s = await startServer(t);
    const out = path.join(dir, `sig-${sig}.bin`);
    const c = spawn('curl', ['-s', '--limit-rate', '5m', '-o', out, `${s.base}/${RAW}`], { stdio: 'ignore' });
    const clientExit = new Promise<number | null>((r) => c.on('exit', (code) => r(code)));
    t.teardown(() => { if (c.exitCode === null) c.kill('SIGKILL'); });
    t.ok(await waitUntil(() => fs.existsSync(out) && fs.statSync(out).size > 2 * 1024 * KiB, 15000), 'the download is under way');
    const t0 = Date.now();
    s.proc.kill(sig);
    const timeout = new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), 10000));
    const ex = await Promise.race([s.exited, timeout]);
    t.not(ex, 'timeout', `the server exited within 10 s (${Date.now() - t0} ms)`);
    if (ex !== 'timeout') t.same(ex, { code: 0, signal: null }, 'exit status 0');
    const code = await Promise.race([clientExit, new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), 10000))]);
    t.not(code, 0, `curl exits non-zero (${code}): the transfer was cut`);
    t.ok(fs.statSync(out).size < sizeOf.get(RAW)!, `the client got ${fs.statSync(out).size} of ${sizeOf.get(RAW)} bytes`);
    t.notOk(await answers(s.port), 'nothing listens on the port any more');
    t.match(s.stderr(), new RegExp(`${sig}: shutting down`), 'the server logged the shutdown');
  });
}

t.test('SIGTERM with an idle keep-alive connection open exits promptly', async (t) => {
  const s = await startServer(t);
  const sock = net.connect({ host: '127.0.0.1', port: s.port });
  t.teardown(() => { sock.destroy(); });
  await new Promise((r) => sock.once('connect', r));
  sock.write('HEAD /README.txt HTTP/1.1\r\nHost: x\r\nConnection: keep-alive\r\n\r\n');
  await new Promise((r) => sock.once('data', r));
  const t0 = Date.now();
  s.proc.kill('SIGTERM');
  const ex = await Promise.race([s.exited, new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), 10000))]);
  t.not(ex, 'timeout', `exited within 10 s (${Date.now() - t0} ms)`);
  if (ex !== 'timeout') t.equal(ex.code, 0, 'exit status 0');
});

t.test('a port already in use: the second server fails with one clear line', async (t) => {
  const s = await startServer(t);
  const r = uniso(['serve', uni, '--http', `127.0.0.1:${s.port}`], { timeout: 30000 });
  t.not(r.code, 0, `exit code ${r.code} != 0`);
  t.equal(r.stderr, `uniso: 127.0.0.1:${s.port}: address already in use\n`, 'one line: address already in use');
  t.equal(r.stdout, '', 'nothing on stdout');
  t.ok(processAlive(s.proc.pid!), 'the first server still runs');
  t.equal(curl(`${s.base}/README.txt`).status, 200, 'and answers');
  // a bad --http value is a one-line error too
  const bad = uniso(['serve', uni, '--http', 'nonsense'], { timeout: 30000 });
  t.not(bad.code, 0, '--http nonsense fails');
  t.match(bad.stderr, /^uniso: --http nonsense: expected ADDR:PORT/, 'with a clear message');
});
