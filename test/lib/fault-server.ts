// Test helper: an in-process HTTP(S) server on 127.0.0.1 serving ONE file at
// /u.iso (and at /mirror/u.iso, the target of the `redirect` fault) with
// GET/HEAD, single byte ranges, Accept-Ranges, a strong content ETag,
// Last-Modified, If-Range and keep-alive, that misbehaves on demand: set
// `server.fault` and the following requests get that fault (see Fault).
// The file is re-read when it changes on disk or replace() names another;
// stop()/start() take the server down and back up on the same port. It counts
// requests and body bytes and logs every request, for tests to check what a
// client did. It runs in the test's own process: run clients (curl, uniso)
// asynchronously (runAsync), not with spawnSync, which would block it.

import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as https from 'node:https';
import * as net from 'node:net';
import { testCerts } from './tls-certs';

/**
 * How the server misbehaves for the next requests:
 * - `none`: a correct server;
 * - `ignore-range`: 200 with the full body whatever the Range;
 * - `wrong-content-range`: a range gets 206 with a Content-Range starting 4096 bytes
 *   later (4096 earlier when that would pass the end) and the body from that wrong start;
 * - `truncate`: the right headers and Content-Length, half the body, then the connection is closed;
 * - `status:N`: every request answered with status N (e.g. 404, 500, 503);
 *   `status:N:COUNT`: the next COUNT requests, then `none`;
 * - `redirect-loop`: 302 from /u.iso?r=K to /u.iso?r=K+1, forever;
 * - `redirect`: 302 from /u.iso to /mirror/u.iso, which serves the file;
 * - `stall`: the request is read and never answered (the connection stays open until stop()).
 */
export type Fault =
  | 'none' | 'ignore-range' | 'wrong-content-range' | 'truncate' | 'redirect-loop' | 'redirect' | 'stall'
  | `status:${number}` | `status:${number}:${number}`;

export interface FaultServerOptions {
  /** The file served. */
  file: string;
  /** Serve HTTPS with a certificate of testCerts()' CA (caFile). */
  https?: boolean;
}

export interface RequestLogEntry {
  method: string;
  /** The request target as sent (path and query). */
  url: string;
  /** The Range header, if any. */
  range?: string;
  /** The If-Range header, if any. */
  ifRange?: string;
  /** The status answered (0 for a stalled request). */
  status: number;
  /** Body bytes sent. */
  bytes: number;
}

export interface FaultServer {
  /** `http://127.0.0.1:PORT/` or `https://127.0.0.1:PORT/`. */
  url: string;
  /** The file's URL: url + 'u.iso'. */
  fileUrl: string;
  /** Where the `redirect` fault sends clients: url + 'mirror/u.iso'. */
  mirrorUrl: string;
  port: number;
  /** PEM of the CA that signed the server certificate (https only). */
  caFile?: string;
  /** The behaviour for the next requests; `status:N:COUNT` counts down to `none`. */
  fault: Fault;
  /** Requests received (since start, across stop/start). */
  requests: number;
  /** Response body bytes sent. */
  bytesSent: number;
  log: RequestLogEntry[];
  /** The file now served, its ETag and Last-Modified (as sent). */
  current(): { file: string; size: number; etag: string; lastModified: string };
  /** Serve another file from now on (a file replaced on the server). */
  replace(file: string): void;
  /** Close the listening socket and every open connection (stalled ones too). */
  stop(): Promise<void>;
  /** Listen again on the same port after stop(). */
  start(): Promise<void>;
}

export const FILE_PATH = '/u.iso';
export const MIRROR_PATH = '/mirror/u.iso';

interface Served {
  file: string;
  key: string; // dev, inode, size, mtime: when it changes, the file changed
  size: number;
  etag: string;
  mtime: Date; // whole seconds
}

/** `bytes=a-b`, `bytes=a-` or `bytes=-n` against `size`: [first, last], 'unsatisfiable', or undefined (ignored). */
function parseRange(h: string | undefined, size: number): [number, number] | 'unsatisfiable' | undefined {
  const m = h === undefined ? null : /^bytes=(\d*)-(\d*)$/.exec(h.trim());
  if (!m || (m[1] === '' && m[2] === '')) return undefined; // none, multiple or malformed: serve it all
  if (m[1] === '') { // suffix
    const n = Number(m[2]);
    return n === 0 || size === 0 ? 'unsatisfiable' : [Math.max(0, size - n), size - 1];
  }
  const first = Number(m[1]);
  const last = m[2] === '' ? size - 1 : Math.min(Number(m[2]), size - 1);
  if (m[2] !== '' && Number(m[2]) < first) return undefined; // invalid: ignored, as RFC 9110 says
  return first >= size ? 'unsatisfiable' : [first, last];
}

/** Start the server on a free port of 127.0.0.1 (or `port`). */
export async function startFaultServer(opts: FaultServerOptions, port = 0): Promise<FaultServer> {
  let served: Served | undefined;
  let file = opts.file;

  /** The served file, its identity checked on every request (hashed again when it changed). */
  const current = (): Served => {
    const st = fs.statSync(file);
    const key = `${st.dev}:${st.ino}:${st.size}:${st.mtimeMs}`;
    if (served?.file !== file || served.key !== key) {
      const h = crypto.createHash('sha256');
      const fd = fs.openSync(file, 'r');
      try {
        const buf = Buffer.alloc(1 << 20);
        for (let n; (n = fs.readSync(fd, buf, 0, buf.length, null)) > 0;) h.update(buf.subarray(0, n));
      } finally {
        fs.closeSync(fd);
      }
      served = {
        file, key, size: st.size, etag: `"${h.digest('hex').slice(0, 32)}"`,
        mtime: new Date(Math.floor(st.mtimeMs / 1000) * 1000),
      };
    }
    return served;
  };

  const handle = (req: http.IncomingMessage, res: http.ServerResponse): void => {
    srv.requests++;
    const entry: RequestLogEntry = { method: req.method ?? '', url: req.url ?? '', status: 0, bytes: 0 };
    if (req.headers.range !== undefined) entry.range = req.headers.range;
    if (typeof req.headers['if-range'] === 'string') entry.ifRange = req.headers['if-range'];
    srv.log.push(entry);
    const head = req.method === 'HEAD';
    const fault = srv.fault;

    const answer = (status: number, headers: http.OutgoingHttpHeaders, body = '') => {
      entry.status = status;
      const b = Buffer.from(body);
      res.writeHead(status, { 'Content-Length': b.length, ...headers });
      if (!head && b.length) { entry.bytes += b.length; srv.bytesSent += b.length; }
      res.end(head ? undefined : b);
    };

    if (fault === 'stall') return;
    const st = /^status:(\d+)(?::(\d+))?$/.exec(fault);
    if (st) {
      if (st[2] !== undefined) srv.fault = Number(st[2]) > 1 ? `status:${Number(st[1])}:${Number(st[2]) - 1}` : 'none';
      answer(Number(st[1]), { 'Content-Type': 'text/plain' }, `fault: status ${st[1]}\n`);
      return;
    }
    const { pathname, searchParams } = new URL(req.url ?? '/', 'http://x');
    if (fault === 'redirect-loop' && pathname === FILE_PATH) {
      answer(302, { Location: `${srv.url}u.iso?r=${Number(searchParams.get('r') ?? 0) + 1}` });
      return;
    }
    if (fault === 'redirect' && pathname === FILE_PATH) {
      answer(302, { Location: srv.mirrorUrl });
      return;
    }
    if (pathname !== FILE_PATH && pathname !== MIRROR_PATH) { answer(404, { 'Content-Type': 'text/plain' }, 'not found\n'); return; }
    if (!head && req.method !== 'GET') { answer(405, { Allow: 'GET, HEAD' }); return; }

    const f = current();
    const validators = { ETag: f.etag, 'Last-Modified': f.mtime.toUTCString(), 'Accept-Ranges': 'bytes' };
    const ifRange = entry.ifRange;
    // If-Range: a strong ETag must equal ours, a date must equal Last-Modified; else the Range is ignored
    const ifRangeOk = ifRange === undefined || ifRange === f.etag || (!ifRange.startsWith('"') && !ifRange.startsWith('W/') && Date.parse(ifRange) === f.mtime.getTime());
    const range = fault === 'ignore-range' || !ifRangeOk ? undefined : parseRange(req.headers.range, f.size);
    if (range === 'unsatisfiable') { answer(416, { ...validators, 'Content-Range': `bytes */${f.size}` }); return; }

    let status = 200;
    let [first, last] = [0, f.size - 1];
    const headers: http.OutgoingHttpHeaders = { ...validators, 'Content-Type': 'application/octet-stream' };
    if (range) {
      status = 206;
      [first, last] = range;
      if (fault === 'wrong-content-range') {
        const shift = last + 4096 < f.size ? 4096 : -Math.min(4096, first);
        first += shift; last += shift;
      }
      headers['Content-Range'] = `bytes ${first}-${last}/${f.size}`;
    }
    const length = last - first + 1;
    headers['Content-Length'] = length;
    entry.status = status;
    res.writeHead(status, headers);
    if (head || length === 0) { res.end(); return; }

    const truncate = fault === 'truncate';
    const sendLen = truncate ? Math.floor(length / 2) : length;
    if (sendLen === 0) { res.socket?.destroy(); return; }
    const rs = fs.createReadStream(f.file, { start: first, end: first + sendLen - 1 });
    rs.on('data', (chunk) => {
      entry.bytes += chunk.length;
      srv.bytesSent += chunk.length;
    });
    rs.on('error', () => res.destroy());
    res.on('close', () => rs.destroy()); // the client went away
    if (!truncate) { rs.pipe(res); return; }
    rs.pipe(res, { end: false });
    rs.on('end', () => {
      // what was written is queued on the socket: flush it, then close short of Content-Length
      const sock = res.socket;
      if (!sock) return;
      sock.end(() => sock.destroy());
    });
  };

  const certs = opts.https ? testCerts() : undefined;
  const server: http.Server = certs ? https.createServer({ cert: certs.cert, key: certs.key }, handle) : http.createServer(handle);
  server.keepAliveTimeout = 60_000;
  const listen = () => new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => { server.off('error', reject); resolve(); });
  });
  await listen();
  port = (server.address() as net.AddressInfo).port;
  const url = `${certs ? 'https' : 'http'}://127.0.0.1:${port}/`;

  const srv: FaultServer = {
    url,
    fileUrl: `${url}u.iso`,
    mirrorUrl: `${url}mirror/u.iso`,
    port,
    caFile: certs?.caFile,
    fault: 'none',
    requests: 0,
    bytesSent: 0,
    log: [],
    current: () => {
      const f = current();
      return { file: f.file, size: f.size, etag: f.etag, lastModified: f.mtime.toUTCString() };
    },
    replace: (newFile: string) => { file = newFile; },
    stop: () => new Promise<void>((resolve) => {
      if (!server.listening) { resolve(); return; }
      server.close(() => resolve());
      server.closeAllConnections();
    }),
    start: async () => { if (!server.listening) await listen(); },
  };
  return srv;
}
