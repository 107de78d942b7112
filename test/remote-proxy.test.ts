// Remote images through a proxy from the environment, as curl and wget
// read it: http_proxy (absolute-URI requests) for http:// images,
// https_proxy (a CONNECT tunnel, TLS end to end with the server) for
// https:// ones, no_proxy to go around it. The proxy here is a small
// forwarding one in the test process that records what it was asked.

import t from 'tap';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as net from 'node:net';
import * as path from 'node:path';
import { buildUniversal, mustUniso, runAsync, tempDir, UNISO } from './lib/fixture';
import { startNginx } from './lib/nginx';
import { proxyFor } from '../src/io/http-client';

interface Proxy {
  url: string;
  /** "GET http://..." for forwarded requests, "CONNECT host:port" for tunnels */
  seen: string[];
  close(): Promise<void>;
}

function startProxy(): Promise<Proxy> {
  const seen: string[] = [];
  const sockets = new Set<net.Socket>();
  const server = http.createServer((req, res) => {
    seen.push(`${req.method} ${req.url}`);
    let target: URL;
    try {
      target = new URL(req.url ?? '');
    } catch {
      res.writeHead(400).end();
      return;
    }
    const up = http.request({ host: target.hostname, port: target.port, path: `${target.pathname}${target.search}`, method: req.method, headers: req.headers }, (ur) => {
      res.writeHead(ur.statusCode ?? 502, ur.headers);
      ur.pipe(res);
    });
    up.on('error', () => res.destroy());
    req.pipe(up);
  });
  server.on('connect', (req: http.IncomingMessage, client: net.Socket, head: Buffer) => {
    seen.push(`CONNECT ${req.url}`);
    const [host, port] = (req.url ?? '').split(':');
    const up = net.connect(Number(port), host, () => {
      client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
      if (head.length) up.write(head);
      up.pipe(client);
      client.pipe(up);
    });
    up.on('error', () => client.destroy());
    client.on('error', () => up.destroy());
    sockets.add(client).add(up);
  });
  server.on('connection', (s) => sockets.add(s));
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => {
    const port = (server.address() as net.AddressInfo).port;
    resolve({
      url: `http://127.0.0.1:${port}`, seen,
      close: () => new Promise((r) => { for (const s of sockets) s.destroy(); server.close(() => r()); }),
    });
  }));
}

t.test('proxyFor: curl conventions for http_proxy, https_proxy and no_proxy', async (t) => {
  const env = { http_proxy: 'proxy.example:3128', HTTPS_PROXY: 'http://user:pw@sproxy.example:8080', no_proxy: 'internal.example, .corp.example,10.1.2.3:8443' };
  t.equal(proxyFor(new URL('http://mirror.example/u.iso'), env)?.href, 'http://proxy.example:3128/', 'http_proxy, scheme added');
  t.equal(proxyFor(new URL('https://mirror.example/u.iso'), env)?.host, 'sproxy.example:8080', 'HTTPS_PROXY for https');
  t.equal(proxyFor(new URL('https://internal.example/u.iso'), env), undefined, 'no_proxy host');
  t.equal(proxyFor(new URL('http://a.b.corp.example/u.iso'), env), undefined, 'no_proxy domain suffix');
  t.equal(proxyFor(new URL('https://10.1.2.3:8443/u.iso'), env), undefined, 'no_proxy host:port');
  t.equal(proxyFor(new URL('https://10.1.2.3:9443/u.iso'), env)?.host, 'sproxy.example:8080', 'another port of that host goes through the proxy');
  t.equal(proxyFor(new URL('http://x.example/u.iso'), { ...env, no_proxy: '*' }), undefined, 'no_proxy=*');
  t.equal(proxyFor(new URL('http://x.example/u.iso'), {}), undefined, 'no proxy set');
});

t.test('http:// and https:// images through a proxy from the environment', async (t) => {
  const dir = tempDir(t);
  const iso = buildUniversal(dir);
  const www = path.join(dir, 'www');
  fs.mkdirSync(www);
  fs.copyFileSync(iso, path.join(www, 'u.iso'));
  const plain = await startNginx({ root: www });
  t.teardown(() => plain.stop());
  const tls = await startNginx({ root: www, https: true });
  t.teardown(() => tls.stop());
  const proxy = await startProxy();
  t.teardown(() => proxy.close());
  const env = { ...process.env, http_proxy: proxy.url, https_proxy: proxy.url, no_proxy: '', NO_PROXY: '' };
  const want = mustUniso(['extract', iso, 'README.txt', '-o', '-']).out;
  const listing = mustUniso(['ls', '-l', iso]).stdout;

  const viaHttp = await runAsync(process.execPath, [UNISO, 'extract', `${plain.url}u.iso`, 'README.txt', '-o', '-'], { env });
  t.equal(viaHttp.code, 0, viaHttp.stderr);
  t.ok(viaHttp.out.equals(want), 'http: the view read through the proxy is right');
  t.ok(proxy.seen.some((s) => s === `GET ${plain.url}u.iso`), 'http: absolute-URI requests went to the proxy');

  const before = proxy.seen.length;
  const viaTls = await runAsync(process.execPath, [UNISO, 'ls', '-l', '--ca', tls.caFile!, `${tls.url}u.iso`], { env });
  t.equal(viaTls.code, 0, viaTls.stderr);
  t.equal(viaTls.stdout, listing, 'https: uniso ls through the tunnel equals the local listing');
  const tunnels = proxy.seen.slice(before);
  t.ok(tunnels.length > 0 && tunnels.every((s) => s === `CONNECT 127.0.0.1:${tls.port}`), `https: only CONNECT tunnels (${tunnels.join(', ')})`);

  const n = proxy.seen.length;
  const direct = await runAsync(process.execPath, [UNISO, 'ls', '-l', `${plain.url}u.iso`], { env: { ...env, no_proxy: '127.0.0.1' } });
  t.equal(direct.code, 0, direct.stderr);
  t.equal(direct.stdout, listing, 'no_proxy: read directly');
  t.equal(proxy.seen.length, n, 'no_proxy: the proxy saw nothing');
});
