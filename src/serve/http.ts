// `uniso serve IMAGE --http ADDR:PORT`: the views over HTTP with node's http
// module. GET and HEAD for every file, single and multiple byte ranges
// (206, multipart/byteranges), 416 for unsatisfiable ranges, conditional
// requests (If-None-Match, If-Range, If-Modified-Since), ETag (the view's
// SHA-256), Last-Modified, Accept-Ranges; HTML and JSON indexes; streaming
// with backpressure (a slow client holds a few chunks at most).

import * as http from 'node:http';
import * as crypto from 'node:crypto';
import { Namespace, Node, SEQUENTIAL_READAHEAD } from '../image/namespace';
import { OpenImage } from '../image/open';
import { ByteSource } from '../io/source';
import { parseRange, ByteRange } from './ranges';
import { fmtBytes } from '../util/progress';

const CHUNK = 256 * 1024;

export interface HttpOptions {
  log: (line: string) => void;
}

function contentType(p: string): string {
  if (/\.(txt|sha256|mf)$/.test(p)) return 'text/plain; charset=utf-8';
  if (/\.(ovf)$/.test(p)) return 'application/xml';
  if (/\.(tar\.gz|tgz)$/.test(p)) return 'application/gzip';
  if (/\.(tar|ova)$/.test(p)) return 'application/x-tar';
  return 'application/octet-stream';
}

function htmlEscape(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

export class HttpServer {
  readonly server: http.Server;
  private readonly ns: Namespace;
  private readonly sockets = new Set<import('node:net').Socket>();

  /** when the server started: the latest Last-Modified it sends */
  private readonly startedMs = Date.now();

  constructor(private readonly img: OpenImage, private readonly opts: HttpOptions) {
    this.ns = new Namespace(img.catalog, img.blocks);
    this.server = http.createServer((req, res) => {
      this.handle(req, res).catch((e: Error) => {
        opts.log(`${req.method} ${req.url}: ${e.message}`);
        if (!res.headersSent) {
          res.writeHead(500, { 'Content-Type': 'text/plain' });
          res.end('internal error\n');
        } else {
          res.destroy();
        }
      });
    });
    this.server.on('connection', (s) => {
      this.sockets.add(s);
      s.on('close', () => this.sockets.delete(s));
    });
  }

  listen(host: string, port: number): Promise<void> {
    return new Promise((resolve, reject) => {
      const onError = (e: Error) => reject(e);
      this.server.once('error', onError);
      this.server.listen(port, host, () => {
        this.server.off('error', onError);
        resolve();
      });
    });
  }

  /** Stop accepting, end every connection, and resolve once closed. */
  close(): Promise<void> {
    return new Promise((resolve) => {
      this.server.close(() => resolve());
      for (const s of this.sockets) s.destroy();
    });
  }

  private etag(node: Node): string | undefined {
    if (node.kind === 'view' && node.view.sha256) return `"${node.view.sha256}"`;
    if (node.kind === 'tree') {
      const r = node.row;
      return `"${crypto.createHash('sha256').update(`${r.tree}:${r.ino}:${r.size}:${r.mtime_sec}:${r.mtime_nsec}:${r.content}`).digest('hex').slice(0, 32)}"`;
    }
    return undefined;
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { Allow: 'GET, HEAD', 'Content-Type': 'text/plain' });
      res.end('method not allowed\n');
      return;
    }
    const url = new URL(req.url ?? '/', 'http://localhost');
    let p: string;
    try {
      p = decodeURIComponent(url.pathname);
    } catch {
      res.writeHead(400, { 'Content-Type': 'text/plain' });
      res.end('bad path\n');
      return;
    }
    if (p.includes('\0') || p.split('/').includes('..')) {
      res.writeHead(400, { 'Content-Type': 'text/plain' });
      res.end('bad path\n');
      return;
    }
    const node = this.ns.lookup(p);
    if (!node) {
      res.writeHead(404, { 'Content-Type': 'text/plain' });
      res.end('not found\n');
      return;
    }
    if (this.ns.isDir(node)) {
      if (!p.endsWith('/')) {
        res.writeHead(301, { Location: `${url.pathname}/${url.search}` });
        res.end();
        return;
      }
      return this.index(req, res, node, p, url.searchParams.get('format') === 'json');
    }
    let src: ByteSource;
    try {
      src = this.ns.source(node, SEQUENTIAL_READAHEAD);
    } catch {
      res.writeHead(404, { 'Content-Type': 'text/plain' });
      res.end('not a regular file\n');
      return;
    }
    const attr = this.ns.attr(node);
    const size = src.size;
    const etag = this.etag(node);
    // never later than the response's Date (RFC 9110 8.8.2.1): an image may hold future
    // mtimes, which are capped at the server's start (stable, so validators keep matching)
    const modifiedMs = Math.floor(Math.max(0, Math.min(attr.mtimeMs, this.startedMs)) / 1000) * 1000;
    const lastModified = new Date(modifiedMs).toUTCString();
    const headers: http.OutgoingHttpHeaders = {
      'Accept-Ranges': 'bytes',
      'Last-Modified': lastModified,
      'Content-Type': contentType(p),
    };
    if (etag) headers.ETag = etag;
    // conditional requests
    const inm = req.headers['if-none-match'];
    if (etag && inm && (inm === '*' || inm.split(',').map((x) => x.trim().replace(/^W\//, '')).includes(etag))) {
      res.writeHead(304, headers);
      res.end();
      return;
    }
    const ims = req.headers['if-modified-since'];
    if (!inm && ims && Date.parse(ims) >= modifiedMs) {
      res.writeHead(304, headers);
      res.end();
      return;
    }
    let ranges = parseRange(req.headers.range, size);
    const ifRange = req.headers['if-range'] === undefined ? undefined : String(req.headers['if-range']);
    if (ranges && ifRange) {
      const ok = ifRange.startsWith('"') ? ifRange === etag : Date.parse(ifRange) >= modifiedMs;
      if (!ok) ranges = undefined;
    }
    if (ranges === 'unsatisfiable') {
      res.writeHead(416, { ...headers, 'Content-Range': `bytes */${size}`, 'Content-Type': 'text/plain' });
      res.end();
      return;
    }
    if (!ranges) {
      res.writeHead(200, { ...headers, 'Content-Length': size });
      if (req.method === 'HEAD') return void res.end();
      await this.stream(res, src, 0, size);
      res.end();
      return;
    }
    if (ranges.length === 1) {
      const r = ranges[0];
      res.writeHead(206, { ...headers, 'Content-Length': r.end - r.start + 1, 'Content-Range': `bytes ${r.start}-${r.end}/${size}` });
      if (req.method === 'HEAD') return void res.end();
      await this.stream(res, src, r.start, r.end + 1);
      res.end();
      return;
    }
    await this.multipart(req, res, src, ranges, headers, size);
  }

  private async multipart(req: http.IncomingMessage, res: http.ServerResponse, src: ByteSource, ranges: ByteRange[],
    headers: http.OutgoingHttpHeaders, size: number): Promise<void> {
    // deterministic: the same request gets the same bytes
    const boundary = `uniso-${crypto.createHash('sha256').update(`${headers.ETag ?? ''} ${ranges.map((r) => `${r.start}-${r.end}`).join(',')}`).digest('hex').slice(0, 24)}`;
    const type = String(headers['Content-Type']);
    const parts = ranges.map((r) => Buffer.from(`\r\n--${boundary}\r\nContent-Type: ${type}\r\nContent-Range: bytes ${r.start}-${r.end}/${size}\r\n\r\n`));
    const closing = Buffer.from(`\r\n--${boundary}--\r\n`);
    const length = parts.reduce((s, b, i) => s + b.length + ranges[i].end - ranges[i].start + 1, 0) + closing.length;
    res.writeHead(206, { ...headers, 'Content-Type': `multipart/byteranges; boundary=${boundary}`, 'Content-Length': length });
    if (req.method === 'HEAD') return void res.end();
    for (const [i, r] of ranges.entries()) {
      if (!(await this.write(res, parts[i]))) return;
      if (!(await this.stream(res, src, r.start, r.end + 1))) return;
    }
    await this.write(res, closing);
    res.end();
  }

  /**
   * Write with backpressure; false when the client went away. `flushed`
   * is called once the bytes of `b` have been handed to the system (then
   * `b` may be reused), not at all if the write failed.
   */
  private write(res: http.ServerResponse, b: Buffer, flushed?: () => void): Promise<boolean> {
    if (res.destroyed) return Promise.resolve(false);
    const handedOver = flushed ? (err?: Error | null) => { if (!err) flushed(); } : undefined;
    if (res.write(b, handedOver)) return Promise.resolve(true);
    return new Promise((resolve) => {
      const done = (ok: boolean) => {
        res.off('drain', onDrain);
        res.off('close', onClose);
        resolve(ok);
      };
      const onDrain = () => done(true);
      const onClose = () => done(false);
      res.once('drain', onDrain);
      res.once('close', onClose);
    });
  }

  /**
   * Stream [from, to) of `src`; false when the client went away. The next
   * chunk is read while the current one is written (two chunks per client
   * at most); a chunk's buffer is reused once the system has its bytes (a
   * new 256 KiB buffer per chunk cost page faults and collections).
   */
  private async stream(res: http.ServerResponse, src: ByteSource, from: number, to: number): Promise<boolean> {
    const spare: Buffer[] = [];
    const read = (pos: number): Promise<Buffer> => {
      const n = Math.min(CHUNK, to - pos);
      const whole = spare.pop() ?? Buffer.allocUnsafeSlow(CHUNK);
      const buf = n === CHUNK ? whole : whole.subarray(0, n);
      const p = src.pread(buf, pos).then((got) => {
        if (got !== buf.length) throw new Error(`short read at ${pos}`);
        return buf;
      });
      p.catch(() => { /* awaited below; a failure while the previous chunk is written is not unhandled */ });
      return p;
    };
    let next: Promise<Buffer> | undefined = read(from);
    for (let pos = from; next;) {
      const buf: Buffer = await next;
      pos += buf.length;
      next = pos < to && !res.destroyed ? read(pos) : undefined;
      const whole = buf.length === CHUNK ? buf : Buffer.from(buf.buffer, buf.byteOffset, CHUNK);
      if (res.destroyed || !(await this.write(res, buf, () => spare.push(whole)))) {
        await next?.catch(() => { /* the client is gone: nothing to report */ });
        return false;
      }
    }
    return true;
  }

  private index(req: http.IncomingMessage, res: http.ServerResponse, node: Node, p: string, json: boolean): void {
    const entries = this.ns.readdir(node).map(([name, child]) => {
      const a = this.ns.attr(child);
      const dir = this.ns.isDir(child);
      const type = dir ? 'directory' : (a.mode & 0o170000) === 0o100000 ? 'file' : (a.mode & 0o170000) === 0o120000 ? 'symlink' : 'special';
      return {
        name: dir ? `${name}/` : name,
        type,
        path: `${p}${name}${dir ? '/' : ''}`,
        size: dir ? null : a.size,
        sha256: child.kind === 'view' ? child.view.sha256 : null,
        mtime: new Date(Math.max(0, a.mtimeMs)).toISOString(),
        ...(child.kind === 'view' ? { description: child.view.description } : {}),
      };
    });
    let body: Buffer;
    let type: string;
    if (json) {
      body = Buffer.from(JSON.stringify({ name: this.img.manifest.name, path: p, entries }, null, 2) + '\n');
      type = 'application/json';
    } else {
      // symlinks and special files have no bytes to serve: listed, not linked
      const rows = entries.map((e) => `<tr><td>${e.type === 'file' || e.type === 'directory'
        ? `<a href="${htmlEscape(e.path.split('/').map(encodeURIComponent).join('/'))}">${htmlEscape(e.name)}</a>` : `${htmlEscape(e.name)} (${e.type})`}</td>`
        + `<td align="right">${e.size === null ? '' : htmlEscape(fmtBytes(e.size))}</td>`
        + `<td><code>${e.sha256 ? e.sha256 : ''}</code></td></tr>`);
      body = Buffer.from([
        '<!DOCTYPE html>', '<html><head><meta charset="utf-8">',
        `<title>${htmlEscape(this.img.manifest.name)} ${htmlEscape(p)}</title></head><body>`,
        `<h1>${htmlEscape(this.img.manifest.name)} ${htmlEscape(p)}</h1>`,
        '<table><tr><th align="left">file</th><th>size</th><th align="left">sha256</th></tr>',
        ...(p !== '/' ? ['<tr><td><a href="../">../</a></td><td></td><td></td></tr>'] : []),
        ...rows, '</table>',
        '<p>JSON: <a href="?format=json">?format=json</a></p>', '</body></html>', '',
      ].join('\n'));
      type = 'text/html; charset=utf-8';
    }
    res.writeHead(200, { 'Content-Type': type, 'Content-Length': body.length });
    res.end(req.method === 'HEAD' ? undefined : body);
  }
}
