// The servers the remote-reading tests run against, checked with curl and
// Node's http/https as clients: nginx (test/lib/nginx.ts) over HTTP and
// HTTPS: 206 ranges byte-equal to the file, its strong ETag and
// Last-Modified, If-Range (ETag, weak ETag, dates), autoindex listings, the
// access log, restart on the same port, the CA trusted or not; the fault
// server (test/lib/fault-server.ts): ranges, HEAD, 416, If-Range, keep-alive,
// each fault mode as a client sees it, a replaced file, stop/start on the
// same port, its counters and log, HTTPS.

import t from 'tap';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as https from 'node:https';
import * as path from 'node:path';
import * as crypto from 'node:crypto';
import { pseudoRandom, runAsync, tempDir, waitUntil } from './lib/fixture';
import { accepts, startNginx, NginxServer } from './lib/nginx';
import { startFaultServer, FaultServer } from './lib/fault-server';
import { makeTestCerts } from './lib/tls-certs';

const dir = tempDir(t, 'uniso-servers-');
const root = path.join(dir, 'root');
fs.mkdirSync(path.join(root, 'sub'), { recursive: true });
const SIZE = 300_000;
const data = pseudoRandom(SIZE, 42);
const FILE = path.join(root, 'f.bin');
fs.writeFileSync(FILE, data);
fs.writeFileSync(path.join(root, 'sub', 'g.bin'), pseudoRandom(5000, 7));
// a whole second in the past, so a date in If-Range can be told from "now"
fs.utimesSync(FILE, new Date('2024-05-01T10:00:00Z'), new Date('2024-05-01T10:00:00Z'));

interface CurlResult {
  code: number;
  status: number;
  headers: Record<string, string>;
  body: Buffer;
  stderr: string;
}

let curlN = 0;
/** curl URL [args]: exit code, status and headers of the last response, body. Never blocks the event loop. */
async function curl(url: string, args: string[] = []): Promise<CurlResult> {
  const n = curlN++;
  const hdr = path.join(dir, `h${n}`);
  const out = path.join(dir, `b${n}`);
  const r = await runAsync('curl', ['-sS', '--max-time', '20', '-D', hdr, '-o', out, ...args, url]);
  const read = (f: string) => { try { return fs.readFileSync(f); } catch { return Buffer.alloc(0); } };
  const blocks = read(hdr).toString('latin1').split(/\r\n\r\n/).filter((b) => b.trim());
  const last = (blocks[blocks.length - 1] ?? '').split('\r\n');
  const headers: Record<string, string> = {};
  for (const l of last.slice(1)) {
    const i = l.indexOf(':');
    if (i > 0) headers[l.slice(0, i).toLowerCase()] = l.slice(i + 1).trim();
  }
  const status = Number(/^HTTP\/[\d.]+ (\d+)/.exec(last[0] ?? '')?.[1] ?? 0);
  return { code: r.code, status, headers, body: read(out), stderr: r.stderr };
}

interface GetResult {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
  reusedSocket: boolean;
}

/** A GET (or HEAD) with Node's http/https client. */
function get(url: string, headers: http.OutgoingHttpHeaders = {}, opts: { agent?: http.Agent; ca?: string; method?: string } = {}): Promise<GetResult> {
  return new Promise((resolve, reject) => {
    const mod = url.startsWith('https:') ? https : http;
    const req = mod.request(url, { method: opts.method ?? 'GET', headers, agent: opts.agent, ca: opts.ca, timeout: 20000 }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks), reusedSocket: req.reusedSocket }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end();
  });
}

const slice = (a: number, b: number) => data.subarray(a, b + 1);
const sha = (b: Buffer) => crypto.createHash('sha256').update(b).digest('hex');

for (const tls of [false, true]) {
  t.test(`nginx over ${tls ? 'HTTPS' : 'HTTP'}`, async (t) => {
    const s: NginxServer = await startNginx({ root, https: tls });
    t.teardown(() => s.stop());
    t.match(s.url, tls ? /^https:\/\/127\.0\.0\.1:\d+\/$/ : /^http:\/\/127\.0\.0\.1:\d+\/$/);
    t.equal(s.caFile !== undefined, tls, 'caFile only for https');
    const ca = tls ? ['--cacert', s.caFile!] : [];
    const caPem = tls ? fs.readFileSync(s.caFile!, 'utf8') : undefined;
    const fileUrl = s.url + 'f.bin';

    const r = await curl(fileUrl, [...ca, '-r', '0-9']);
    t.equal(r.code, 0, r.stderr);
    t.equal(r.status, 206);
    t.equal(r.headers['content-range'], `bytes 0-9/${SIZE}`);
    t.same(r.body, slice(0, 9));
    const etag = r.headers.etag;
    // nginx's ETag: strong, "<mtime hex>-<size hex>" (not derived from the content)
    t.equal(etag, `"${(Date.parse('2024-05-01T10:00:00Z') / 1000).toString(16)}-${SIZE.toString(16)}"`, 'strong ETag from mtime and size');
    t.equal(r.headers['last-modified'], 'Wed, 01 May 2024 10:00:00 GMT');
    t.equal(r.headers['accept-ranges'], undefined, 'nginx sends Accept-Ranges on 200 only, not on 206');

    for (const [a, b] of [[SIZE - 1, SIZE - 1], [65535, 200_001], [12345, SIZE - 1]]) {
      const x = await curl(fileUrl, [...ca, '-r', `${a}-${b}`]);
      t.equal(x.status, 206, `${a}-${b}`);
      t.ok(x.body.equals(slice(a, b)), `bytes ${a}-${b} equal the file's`);
    }
    const full = await curl(fileUrl, ca);
    t.equal(full.status, 200);
    t.ok(full.body.equals(data), 'full body');
    t.equal(full.headers['accept-ranges'], 'bytes');
    t.equal((await curl(fileUrl, [...ca, '-r', `${SIZE}-`])).status, 416);

    // If-Range: nginx compares the ETag byte for byte (a weak one never matches) and a date for equality
    const ifRange = async (v: string) => (await curl(fileUrl, [...ca, '-r', '100-199', '-H', `If-Range: ${v}`])).status;
    t.equal(await ifRange(etag), 206, 'If-Range: same ETag');
    t.equal(await ifRange('"abc-123"'), 200, 'If-Range: other ETag');
    t.equal(await ifRange(`W/${etag}`), 200, 'If-Range: the weak form of the ETag');
    t.equal(await ifRange('Wed, 01 May 2024 10:00:00 GMT'), 206, 'If-Range: Last-Modified');
    t.equal(await ifRange('Wed, 01 May 2024 10:00:01 GMT'), 200, 'If-Range: a later date');

    // Node's client, keep-alive
    const agent = new (tls ? https : http).Agent({ keepAlive: true, maxSockets: 1 });
    t.teardown(() => agent.destroy());
    const g1 = await get(fileUrl, { Range: 'bytes=1000-1999' }, { agent, ca: caPem });
    const g2 = await get(fileUrl, { Range: 'bytes=299000-' }, { agent, ca: caPem });
    t.equal(g1.status, 206);
    t.ok(g1.body.equals(slice(1000, 1999)));
    t.ok(g2.body.equals(slice(299000, SIZE - 1)));
    t.ok(g2.reusedSocket, 'second request on the same connection');
    const h = await get(fileUrl, {}, { method: 'HEAD', ca: caPem });
    t.equal(h.headers['content-length'], String(SIZE));
    t.equal(h.headers.etag, etag);

    // autoindex
    const idx = await curl(s.url, ca);
    t.equal(idx.status, 200);
    t.match(idx.body.toString(), /href="f\.bin"/);
    t.match(idx.body.toString(), /href="sub\/"/);
    t.match((await curl(s.url + 'sub/', ca)).body.toString(), /href="g\.bin"/);

    if (tls) {
      const bad = await curl(fileUrl, ['-r', '0-9']);
      t.equal(bad.code, 60, 'curl without the CA: certificate problem');
      const other = makeTestCerts(tempDir(t, 'uniso-othercerts-'));
      t.equal((await curl(fileUrl, ['--cacert', other.caFile])).code, 60, 'curl with another CA');
      await t.rejects(get(fileUrl), /self.signed|issuer|certificate/i, 'node without the CA');
      t.equal((await curl(`https://localhost:${s.port}/f.bin`, [...ca, '-r', '0-9'])).status, 206, 'DNS:localhost in the certificate');
    }

    // the access log: one line per request, with Range and body bytes
    // a line is written once its response is done: wait for the last one
    let entries = await s.accessEntries();
    for (let i = 0; i < 40 && !entries.some((e) => e.uri === '/sub/'); i++) {
      await new Promise((res) => setTimeout(res, 50));
      entries = await s.accessEntries();
    }
    const first = entries[0];
    t.same(first, { method: 'GET', uri: '/f.bin', status: 206, bytes: 10, range: 'bytes=0-9', ifRange: undefined });
    t.ok(entries.some((e) => e.ifRange === `W/${etag}` && e.status === 200), 'If-Range logged (quotes unescaped)');
    t.equal(entries.filter((e) => e.method === 'HEAD').length, 1);

    // restart on the same port; stop frees it
    const n = entries.length;
    await s.restart();
    const again = await curl(fileUrl, [...ca, '-r', '0-9']);
    t.equal(again.status, 206, 'served again after restart');
    t.equal(again.headers.etag, etag, 'same ETag after restart');
    await s.kill();
    t.notOk(await accepts(s.port), 'nothing listens after kill()');
    t.equal((await curl(fileUrl, [...ca, '-r', '0-9'])).code, 7, 'curl: connection refused');
    await s.start();
    t.equal((await curl(fileUrl, [...ca, '-r', '0-9'])).status, 206, 'served again after start()');
    t.ok((await s.accessEntries()).length >= n + 1, 'the access log kept across restarts');
    await s.stop();
    t.notOk(await accepts(s.port), 'nothing listens after stop()');
  });
}

t.test('fault server over HTTP', async (t) => {
  const s: FaultServer = await startFaultServer({ file: FILE });
  t.teardown(() => s.stop());
  const u = s.fileUrl;
  t.equal(u, `http://127.0.0.1:${s.port}/u.iso`);
  const etag = `"${sha(data).slice(0, 32)}"`;

  t.test('a correct server', async (t) => {
    const r = await curl(u, ['-r', '0-9']);
    t.equal(r.status, 206);
    t.equal(r.headers['content-range'], `bytes 0-9/${SIZE}`);
    t.equal(r.headers['content-length'], '10');
    t.equal(r.headers.etag, etag, 'ETag: sha256 prefix of the content');
    t.equal(r.headers['last-modified'], 'Wed, 01 May 2024 10:00:00 GMT');
    t.equal(r.headers['accept-ranges'], 'bytes');
    t.same(r.body, slice(0, 9));
    for (const [a, b] of [[SIZE - 1, SIZE - 1], [65535, 200_001], [12345, SIZE - 1]]) {
      t.ok((await curl(u, ['-r', `${a}-${b}`])).body.equals(slice(a, b)), `bytes ${a}-${b}`);
    }
    const suffix = await curl(u, ['-r', '-100']);
    t.equal(suffix.headers['content-range'], `bytes ${SIZE - 100}-${SIZE - 1}/${SIZE}`);
    t.ok(suffix.body.equals(slice(SIZE - 100, SIZE - 1)), 'suffix range');
    const past = await curl(u, ['-r', `${SIZE - 5}-${SIZE + 100}`]);
    t.equal(past.headers['content-range'], `bytes ${SIZE - 5}-${SIZE - 1}/${SIZE}`, 'a last byte past the end is clamped');
    const full = await curl(u);
    t.equal(full.status, 200);
    t.ok(full.body.equals(data));
    const u416 = await curl(u, ['-r', `${SIZE}-`]);
    t.equal(u416.status, 416);
    t.equal(u416.headers['content-range'], `bytes */${SIZE}`);
    const head = await curl(u, ['-I']);
    t.equal(head.status, 200);
    t.equal(head.headers['content-length'], String(SIZE));
    t.equal(head.headers.etag, etag);
    t.equal((await curl(s.url + 'nothing')).status, 404);
    t.equal((await curl(s.mirrorUrl, ['-r', '5-9'])).body.toString('hex'), slice(5, 9).toString('hex'), 'the mirror path serves the file too');

    const ifRange = async (v: string) => (await curl(u, ['-r', '100-199', '-H', `If-Range: ${v}`]));
    t.equal((await ifRange(etag)).status, 206, 'If-Range: same ETag');
    const mismatch = await ifRange('"0123"');
    t.equal(mismatch.status, 200, 'If-Range: other ETag');
    t.ok(mismatch.body.equals(data), '... gives the full body');
    t.equal((await ifRange(`W/${etag}`)).status, 200, 'If-Range: weak ETag never matches');
    t.equal((await ifRange('Wed, 01 May 2024 10:00:00 GMT')).status, 206, 'If-Range: Last-Modified');
    t.equal((await ifRange('Wed, 01 May 2024 09:00:00 GMT')).status, 200, 'If-Range: another date');

    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    t.teardown(() => agent.destroy());
    await get(u, { Range: 'bytes=0-0' }, { agent });
    const g = await get(u, { Range: 'bytes=1000-1999' }, { agent });
    t.ok(g.body.equals(slice(1000, 1999)));
    t.ok(g.reusedSocket, 'keep-alive: second request on the same connection');
  });

  t.test('counters and log', async (t) => {
    const [n, bytes] = [s.requests, s.bytesSent];
    await curl(u, ['-r', '0-99']);
    await curl(u, ['-I']);
    t.equal(s.requests, n + 2);
    t.equal(s.bytesSent, bytes + 100, 'body bytes only');
    t.same(s.log.slice(-2), [
      { method: 'GET', url: '/u.iso', range: 'bytes=0-99', status: 206, bytes: 100 },
      { method: 'HEAD', url: '/u.iso', status: 200, bytes: 0 },
    ]);
  });

  t.test('ignore-range', async (t) => {
    s.fault = 'ignore-range';
    t.teardown(() => { s.fault = 'none'; });
    const r = await curl(u, ['-r', '0-9']);
    t.equal(r.status, 200);
    t.equal(r.headers['content-range'], undefined);
    t.ok(r.body.equals(data), 'the full body');
  });

  t.test('wrong-content-range', async (t) => {
    s.fault = 'wrong-content-range';
    t.teardown(() => { s.fault = 'none'; });
    const r = await curl(u, ['-r', '1000-1999']);
    t.equal(r.status, 206);
    t.equal(r.headers['content-range'], `bytes 5096-6095/${SIZE}`);
    t.ok(r.body.equals(slice(5096, 6095)), 'the body of the wrong range');
    const end = await curl(u, ['-r', `${SIZE - 1000}-${SIZE - 1}`]);
    t.equal(end.headers['content-range'], `bytes ${SIZE - 5096}-${SIZE - 4097}/${SIZE}`, 'near the end: 4096 earlier');
  });

  t.test('truncate', async (t) => {
    s.fault = 'truncate';
    t.teardown(() => { s.fault = 'none'; });
    const r = await curl(u, ['-r', '0-99999']);
    t.equal(r.code, 18, 'curl: transfer closed with outstanding read data');
    t.equal(r.status, 206);
    t.equal(r.headers['content-length'], '100000');
    t.equal(r.body.length, 50000, 'half the body');
    t.ok(r.body.equals(slice(0, 49999)));
    const full = await curl(u);
    t.equal(full.code, 18);
    t.equal(full.body.length, SIZE / 2);
    await t.rejects(get(u, { Range: 'bytes=0-9999' }), /aborted|socket hang up|ECONNRESET|premature/i, 'node: the response is aborted');
  });

  t.test('status:N and status:N:count', async (t) => {
    s.fault = 'status:404';
    t.teardown(() => { s.fault = 'none'; });
    t.equal((await curl(u, ['-r', '0-9'])).status, 404);
    t.equal((await curl(u, ['-I'])).status, 404);
    t.equal((await curl(u, ['-f'])).code, 22, 'curl -f: HTTP error');
    t.equal(s.fault, 'status:404', 'stays');
    s.fault = 'status:503:2';
    t.equal((await curl(u, ['-r', '0-9'])).status, 503);
    t.equal(s.fault, 'status:503:1');
    t.equal((await curl(u, ['-r', '0-9'])).status, 503);
    t.equal(s.fault, 'none');
    t.equal((await curl(u, ['-r', '0-9'])).status, 206, 'then served');
    s.fault = 'status:500:1';
    t.equal((await get(u)).status, 500);
    t.equal((await get(u, { Range: 'bytes=0-0' })).status, 206);
  });

  t.test('redirect-loop', async (t) => {
    s.fault = 'redirect-loop';
    t.teardown(() => { s.fault = 'none'; });
    const n = s.requests;
    const r = await curl(u, ['-L', '--max-redirs', '5', '-r', '0-9']);
    t.equal(r.code, 47, 'curl: maximum redirects followed');
    t.equal(s.requests, n + 6);
    t.same(s.log.slice(-3).map((e) => [e.url, e.status]), [['/u.iso?r=3', 302], ['/u.iso?r=4', 302], ['/u.iso?r=5', 302]]);
    const one = await curl(u);
    t.equal(one.status, 302);
    t.equal(one.headers.location, `${u}?r=1`);
  });

  t.test('redirect to the mirror', async (t) => {
    s.fault = 'redirect';
    t.teardown(() => { s.fault = 'none'; });
    const r = await curl(u, ['-L', '-r', '10-19']);
    t.equal(r.status, 206);
    t.ok(r.body.equals(slice(10, 19)));
    t.same(s.log.slice(-2).map((e) => [e.url, e.status]), [['/u.iso', 302], ['/mirror/u.iso', 206]]);
    const noFollow = await curl(u);
    t.equal(noFollow.status, 302);
    t.equal(noFollow.headers.location, s.mirrorUrl);
  });

  t.test('stall', async (t) => {
    s.fault = 'stall';
    t.teardown(() => { s.fault = 'none'; });
    const t0 = Date.now();
    const r = await curl(u, ['--max-time', '1', '-r', '0-9']);
    t.equal(r.code, 28, 'curl: timeout');
    t.ok(Date.now() - t0 >= 900);
    t.equal(s.log[s.log.length - 1].status, 0, 'logged as unanswered');
    s.fault = 'none';
    t.equal((await curl(u, ['-r', '0-9'])).status, 206, 'answers again');
  });

  t.test('replace, and a file changed in place', async (t) => {
    const otherData = pseudoRandom(123_457, 99);
    const other = path.join(dir, 'other.bin');
    fs.writeFileSync(other, otherData);
    fs.utimesSync(other, new Date('2025-01-02T03:04:05Z'), new Date('2025-01-02T03:04:05Z'));
    s.replace(other);
    const r = await curl(u, ['-r', '0-9']);
    t.equal(r.headers['content-range'], `bytes 0-9/${otherData.length}`);
    t.equal(r.headers.etag, `"${sha(otherData).slice(0, 32)}"`);
    t.not(r.headers.etag, etag);
    t.equal(r.headers['last-modified'], 'Thu, 02 Jan 2025 03:04:05 GMT');
    t.ok(r.body.equals(otherData.subarray(0, 10)));
    const stale = await curl(u, ['-r', '0-9', '-H', `If-Range: ${etag}`]);
    t.equal(stale.status, 200, 'If-Range with the old ETag: 200');
    t.ok(stale.body.equals(otherData), 'with the new file');
    t.equal(s.current().etag, r.headers.etag);

    // same path, same size, new content and mtime
    const changed = Buffer.from(otherData);
    changed[0] ^= 0xff;
    fs.writeFileSync(other, changed);
    fs.utimesSync(other, new Date('2025-01-02T03:04:06Z'), new Date('2025-01-02T03:04:06Z'));
    const c = await curl(u, ['-r', '0-0']);
    t.equal(c.headers.etag, `"${sha(changed).slice(0, 32)}"`, 'a file changed on disk gets its new ETag');
    t.equal(c.body[0], changed[0]);

    s.replace(FILE);
    t.equal((await curl(u, ['-I'])).headers.etag, etag, 'back to the first file');
  });

  t.test('stop and start on the same port', async (t) => {
    s.fault = 'stall';
    const stalled = curl(u, ['-r', '0-9']);
    await waitUntil(() => s.log[s.log.length - 1]?.status === 0 && s.log[s.log.length - 1]?.range === 'bytes=0-9', 5000);
    await s.stop();
    s.fault = 'none';
    t.equal((await stalled).code, 52, 'the stalled request ends when the server stops (empty reply)');
    t.notOk(await accepts(s.port));
    t.equal((await curl(u, ['-r', '0-9'])).code, 7, 'curl: connection refused');
    await s.stop(); // twice is fine
    const n = s.requests;
    await s.start();
    const r = await curl(u, ['-r', '0-9']);
    t.equal(r.status, 206);
    t.ok(r.body.equals(slice(0, 9)));
    t.equal(s.requests, n + 1, 'counters kept');
  });
});

t.test('fault server over HTTPS', async (t) => {
  const s = await startFaultServer({ file: FILE, https: true });
  t.teardown(() => s.stop());
  t.match(s.fileUrl, /^https:\/\/127\.0\.0\.1:\d+\/u\.iso$/);
  t.ok(s.caFile);
  const r = await curl(s.fileUrl, ['--cacert', s.caFile!, '-r', '100-199']);
  t.equal(r.status, 206);
  t.ok(r.body.equals(slice(100, 199)));
  t.equal((await curl(s.fileUrl, ['-r', '0-9'])).code, 60, 'curl without the CA: certificate problem');
  const ca = fs.readFileSync(s.caFile!, 'utf8');
  const g = await get(s.fileUrl, { Range: 'bytes=0-9' }, { ca });
  t.equal(g.status, 206);
  t.ok(g.body.equals(slice(0, 9)));
  await t.rejects(get(s.fileUrl), /self.signed|issuer|certificate/i, 'node without the CA');
  s.fault = 'truncate';
  const tr = await curl(s.fileUrl, ['--cacert', s.caFile!, '-r', '0-9999']);
  t.not(tr.code, 0, 'truncated over TLS: curl fails');
  t.equal(tr.body.length, 5000);
  s.fault = 'none';
  await s.stop();
  await s.start();
  t.equal((await curl(s.fileUrl, ['--cacert', s.caFile!, '-r', '0-9'])).status, 206, 'after stop/start');
});
