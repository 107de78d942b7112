// Range reads of one file on an HTTP(S) server, pinned to the version of
// the file first seen. Keep-alive connections (several at once), HTTPS
// with the system's CA store plus --ca, redirects followed (the final
// location is used for later requests), a proxy from http_proxy /
// https_proxy / no_proxy (absolute-URI requests, CONNECT tunnels for
// HTTPS), retries with backoff on connection errors, 5xx answers, idle
// connections and short bodies, resuming where the body stopped.
//
// Pinning: the first answer's size, ETag and Last-Modified are kept; every
// later request carries If-Range, and every answer is checked against them
// (Content-Range total, ETag), so a file replaced on the server is noticed
// and refused (RemoteChangedError), never mixed with the bytes read before.

import * as fs from 'node:fs';
import * as http from 'node:http';
import * as https from 'node:https';
import * as net from 'node:net';
import * as tls from 'node:tls';
import { UserError, describeErrno } from '../util/errors';

/** Redirects followed for one request. */
const MAX_REDIRECTS = 10;
/** Connections kept open to the server. */
export const MAX_SOCKETS = 6;
/** A request that receives nothing for this long is dropped and tried again. */
const IDLE_TIMEOUT_MS = 4000;
/** A fetch that makes no progress for this long fails (FUSE gives up on an operation after 15 s). */
export const NO_PROGRESS_DEADLINE_MS = 10_000;
/**
 * Once a fetch has given up (the server failed every try for the deadline),
 * a new fetch gets one short try until an answer succeeds again: a reader
 * whose reads each need a fetch (the kernel tries a failed read again, page
 * by page) fails within moments instead of waiting a whole deadline per
 * read, and a server that is back is noticed at once. The try may take
 * RECHECK_LATENCIES times the measured time to an answer, within these
 * bounds (a slow link still gets through).
 */
const RECHECK_MIN_MS = 500;
const RECHECK_LATENCIES = 4;
/** Waits between tries: doubling from the first, at most the last. */
const BACKOFF_FIRST_MS = 100;
const BACKOFF_MAX_MS = 2000;
/** CA bundle of Debian's ca-certificates (the system's store), unless SSL_CERT_FILE names another. */
const SYSTEM_CA_FILE = '/etc/ssl/certs/ca-certificates.crt';
/** Weight of the newest sample in the latency and throughput averages. */
const EWMA_WEIGHT = 0.3;

/** A remote read that failed: one line for the user, EIO at the mount. */
export class RemoteError extends UserError {
  constructor(message: string, readonly retryable = false) {
    super(message);
    this.name = 'UserError';
  }
}

/** The file on the server is no longer the one first read. */
export class RemoteChangedError extends RemoteError {}

export interface HttpClientOptions {
  /** PEM file of CA certificates trusted besides the system's */
  ca?: string;
  /** where one-line notices go (the daemon's log) */
  log?: (line: string) => void;
  /** a fetch without progress for this long fails (default NO_PROGRESS_DEADLINE_MS) */
  deadlineMs?: number;
}

/** What the first answer said about the file; every later answer must agree. */
export interface Pin {
  size: number;
  etag?: string;
  lastModified?: string;
}

export interface HttpStats {
  requests: number;
  /** body bytes received */
  bytes: number;
  retries: number;
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** The URL without user:password, for messages. */
export function displayUrl(u: string | URL): string {
  try {
    const x = new URL(String(u));
    x.username = '';
    x.password = '';
    return x.toString();
  } catch {
    return String(u);
  }
}

/**
 * CA certificates: Node's bundled ones, the system's store and `caFile`, as
 * one TLS context for every connection (building it parses some 150
 * certificates, ~60 ms: per connection, as node does when given `ca`, that
 * was most of the CPU time of a short command over HTTPS).
 */
function caContext(caFile: string | undefined): tls.SecureContext | undefined {
  if (!caFile) return undefined; // node's defaults, plus NODE_EXTRA_CA_CERTS
  let extra: string;
  try {
    extra = fs.readFileSync(caFile, 'utf8');
  } catch (e) {
    throw new UserError(`${caFile}: cannot read the CA file (${describeErrno(e)})`);
  }
  if (!extra.includes('-----BEGIN CERTIFICATE-----')) throw new UserError(`${caFile}: not a PEM file of CA certificates`);
  const list = [...tls.rootCertificates, extra];
  try {
    list.push(fs.readFileSync(process.env.SSL_CERT_FILE || SYSTEM_CA_FILE, 'utf8'));
  } catch { /* no system store: node's bundled CAs and the file given */ }
  try {
    return tls.createSecureContext({ ca: list });
  } catch (e) {
    throw new UserError(`${caFile}: not a PEM file of CA certificates (${(e as Error).message})`);
  }
}

/** The proxy for `u` from the environment (curl's conventions), or undefined. */
export function proxyFor(u: URL, env: NodeJS.ProcessEnv = process.env): URL | undefined {
  const noProxy = (env.no_proxy ?? env.NO_PROXY ?? '').split(',').map((s) => s.trim().toLowerCase()).filter(Boolean);
  const host = u.hostname.toLowerCase().replace(/^\[|\]$/g, '');
  for (const np of noProxy) {
    if (np === '*') return undefined;
    const [name, port] = np.split(':');
    if (port && port !== (u.port || (u.protocol === 'https:' ? '443' : '80'))) continue;
    const bare = name.replace(/^\*?\./, '');
    if (host === bare || host.endsWith(`.${bare}`)) return undefined;
  }
  const v = u.protocol === 'https:' ? env.https_proxy ?? env.HTTPS_PROXY : env.http_proxy ?? env.HTTP_PROXY;
  if (!v) return undefined;
  try {
    return new URL(/^[a-z]+:\/\//i.test(v) ? v : `http://${v}`);
  } catch {
    throw new UserError(`proxy ${v} (from the environment) is not a URL`);
  }
}

function proxyAuth(proxy: URL): Record<string, string> {
  if (!proxy.username) return {};
  const cred = `${decodeURIComponent(proxy.username)}:${decodeURIComponent(proxy.password)}`;
  return { 'Proxy-Authorization': `Basic ${Buffer.from(cred).toString('base64')}` };
}

type ConnectOptions = tls.ConnectionOptions & { host?: string; port?: number };

/** An HTTPS agent whose connections go through an HTTP proxy's CONNECT tunnel. */
class TunnelAgent extends https.Agent {
  constructor(proxy: URL, opts: https.AgentOptions) {
    super(opts);
    // node's Agent waits for createConnection's callback when it returns no socket
    (this as unknown as { createConnection: unknown }).createConnection = (options: ConnectOptions, cb: (err: Error | null, s?: net.Socket) => void) => {
      const target = `${options.host}:${options.port}`;
      const req = http.request({
        host: proxy.hostname, port: proxy.port || 80, method: 'CONNECT', path: target, agent: false,
        headers: { Host: target, ...proxyAuth(proxy) },
      });
      req.once('connect', (res, socket) => {
        if (res.statusCode !== 200) {
          socket.destroy();
          cb(new Error(`proxy ${proxy.host} refused the tunnel to ${target} (HTTP ${res.statusCode})`));
          return;
        }
        const host = options.servername ?? options.host;
        cb(null, tls.connect({ ...options, socket, servername: host && !net.isIP(host) ? host : undefined }));
      });
      req.once('error', (e) => cb(e));
      req.end();
      return undefined;
    };
  }
}

/** One answer, its body not yet read. */
interface Answer {
  res: http.IncomingMessage;
  url: URL;
}

const REDIRECTS = new Set([301, 302, 303, 307, 308]);

/** A 3-digit status the read should be tried again after. */
function retryableStatus(s: number): boolean {
  return s >= 500 || s === 429 || s === 408;
}

function parseContentRange(v: string | undefined): { start: number; end: number; total: number } | undefined {
  const m = /^bytes (\d+)-(\d+)\/(\d+)$/.exec(v?.trim() ?? '');
  if (!m) return undefined;
  const r = { start: Number(m[1]), end: Number(m[2]), total: Number(m[3]) };
  return Number.isSafeInteger(r.total) && r.start <= r.end && r.end < r.total ? r : undefined;
}

/** A strong ETag (If-Range needs one; W/ tags are weak). */
function strongEtag(v: string | undefined): string | undefined {
  return v && !v.startsWith('W/') ? v : undefined;
}

export class HttpRangeClient {
  readonly stats: HttpStats = { requests: 0, bytes: 0, retries: 0 };
  /** set once the file is seen to have changed: every later fetch fails with it */
  changed: RemoteChangedError | undefined;
  /** smoothed time to the first byte of an answer (ms) */
  latencyMs = 0;
  /** smoothed body throughput (bytes/s) */
  throughput = 0;
  /** the last location the file was found at (after redirects) */
  private location: URL;
  private readonly agents = new Map<string, http.Agent>();
  private readonly secureContext: tls.SecureContext | undefined;
  private readonly deadlineMs: number;
  private readonly active = new Set<http.ClientRequest>();
  private closed = false;
  /** a fetch gave up on the server, and no answer has succeeded since (see RECHECK_MIN_MS) */
  private down = false;
  pin: Pin = { size: 0 };

  private constructor(readonly url: URL, private readonly opts: HttpClientOptions) {
    this.location = url;
    this.secureContext = caContext(opts.ca);
    this.deadlineMs = opts.deadlineMs ?? NO_PROGRESS_DEADLINE_MS;
  }

  get name(): string {
    return displayUrl(this.url);
  }

  /**
   * Open `url`: one request for its first `probe` bytes (given to
   * `onData`), which pins the file's size and validators. Fails with one
   * line when the server does not answer ranges, or the file is not there.
   */
  static async open(url: string, opts: HttpClientOptions, probe: number, onData: (pos: number, data: Buffer) => void): Promise<HttpRangeClient> {
    let u: URL;
    try {
      u = new URL(url);
    } catch {
      throw new UserError(`${url}: not a URL`);
    }
    if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new UserError(`${url}: only http:// and https:// URLs are read`);
    const c = new HttpRangeClient(u, opts);
    try {
      await c.probe(probe, onData);
    } catch (e) {
      c.close();
      throw e;
    }
    return c;
  }

  private async probe(probe: number, onData: (pos: number, data: Buffer) => void): Promise<void> {
    const since = Date.now();
    for (let attempt = 0; ; attempt++) {
      try {
        const a = await this.request({ Range: `bytes=0-${probe - 1}` });
        const { res } = a;
        const s = res.statusCode ?? 0;
        if (s === 200) {
          res.destroy();
          throw new RemoteError(`${this.name}: the server does not answer Range requests (it sent the whole file); uniso reads parts of a remote image and needs them`);
        }
        if (s === 416) {
          res.destroy();
          throw new RemoteError(`${this.name}: the file is empty`);
        }
        if (s !== 206) {
          res.resume();
          const err = new RemoteError(`${this.name}: HTTP ${s} ${res.statusMessage ?? ''}`.trim(), retryableStatus(s));
          throw err;
        }
        const cr = parseContentRange(res.headers['content-range']);
        if (!cr || cr.start !== 0) {
          res.destroy();
          throw new RemoteError(`${this.name}: the server's answer has no valid Content-Range (${res.headers['content-range'] ?? 'none'})`);
        }
        this.pin = { size: cr.total, etag: strongEtag(res.headers.etag), lastModified: res.headers['last-modified'] };
        this.location = a.url;
        const got = await this.body(res, 0, cr.end + 1, onData, Date.now());
        if (got < cr.end + 1) throw new RemoteError(`${this.name}: the answer ended early (${got} of ${cr.end + 1} bytes)`, true);
        return;
      } catch (e) {
        const err = this.asRemote(e);
        if (!err.retryable || Date.now() - since >= this.deadlineMs || this.closed) throw err;
        this.stats.retries++;
        await sleep(Math.min(BACKOFF_MAX_MS, BACKOFF_FIRST_MS << attempt));
      }
    }
  }

  /** Errors of node (connection refused, reset, TLS) as one-line retryable RemoteErrors. */
  private asRemote(e: unknown): RemoteError {
    if (e instanceof RemoteError) return e;
    const err = e as NodeJS.ErrnoException;
    const tlsCodes = /CERT|SELF_SIGNED|UNABLE_TO|ERR_TLS|HOSTNAME/;
    if (err?.code && tlsCodes.test(err.code)) {
      return new RemoteError(`${this.name}: TLS: ${err.message} (give the server's CA with --ca FILE)`);
    }
    const msg = err?.message ?? String(e);
    return new RemoteError(`${this.name}: ${err?.code && !msg.includes(err.code) ? `${err.code} ` : ''}${msg}`, true);
  }

  private agent(u: URL, proxy: URL | undefined): http.Agent {
    const key = `${u.protocol}//${u.host} ${proxy?.href ?? ''}`;
    let a: http.Agent | undefined = this.agents.get(key);
    if (!a) {
      const common = { keepAlive: true, maxSockets: MAX_SOCKETS, scheduling: 'fifo' as const };
      if (u.protocol === 'https:') {
        const tlsOpts = this.secureContext ? { secureContext: this.secureContext } : {};
        a = proxy ? new TunnelAgent(proxy, { ...common, ...tlsOpts }) : new https.Agent({ ...common, ...tlsOpts });
      } else {
        a = new http.Agent(common);
      }
      this.agents.set(key, a);
    }
    return a;
  }

  /** One GET of the current location (following redirects); the answer's body is the caller's to read. */
  private async request(headers: Record<string, string>, from = this.location, idleMs = IDLE_TIMEOUT_MS): Promise<Answer> {
    let u = from;
    for (let hop = 0; ; hop++) {
      const res = await this.send(u, headers, idleMs);
      const s = res.statusCode ?? 0;
      if (!REDIRECTS.has(s)) return { res, url: u };
      res.resume();
      const loc = res.headers.location;
      if (!loc) throw new RemoteError(`${this.name}: HTTP ${s} redirect without a Location`);
      if (hop + 1 > MAX_REDIRECTS) throw new RemoteError(`${this.name}: too many redirects (more than ${MAX_REDIRECTS}; a redirect loop?)`);
      const next = new URL(loc, u);
      if (next.protocol !== 'http:' && next.protocol !== 'https:') throw new RemoteError(`${this.name}: redirected to ${loc}, which is not http(s)`);
      if (u.protocol === 'https:' && next.protocol === 'http:') throw new RemoteError(`${this.name}: redirected from https to plain http (${displayUrl(next)}); refused`);
      u = next;
    }
  }

  private send(u: URL, headers: Record<string, string>, idleMs: number): Promise<http.IncomingMessage> {
    if (this.closed) return Promise.reject(new RemoteError(`${this.name}: closed`));
    const proxy = proxyFor(u);
    const viaPlainProxy = proxy && u.protocol === 'http:';
    const auth = u.username ? { Authorization: `Basic ${Buffer.from(`${decodeURIComponent(u.username)}:${decodeURIComponent(u.password)}`).toString('base64')}` } : {};
    const target = new URL(u);
    target.username = '';
    target.password = '';
    const opts: http.RequestOptions = {
      method: 'GET',
      host: viaPlainProxy ? proxy.hostname : u.hostname.replace(/^\[|\]$/g, ''),
      port: viaPlainProxy ? proxy.port || 80 : u.port || (u.protocol === 'https:' ? 443 : 80),
      path: viaPlainProxy ? target.href : `${u.pathname}${u.search}`,
      headers: { Host: u.host, 'User-Agent': 'uniso', 'Accept-Encoding': 'identity', ...auth, ...(viaPlainProxy ? proxyAuth(proxy) : {}), ...headers },
      agent: this.agent(u, viaPlainProxy ? proxy : u.protocol === 'https:' ? proxy : undefined),
      servername: u.protocol === 'https:' && !net.isIP(u.hostname) ? u.hostname : undefined,
    } as http.RequestOptions;
    const mod = u.protocol === 'https:' && !viaPlainProxy ? https : http;
    this.stats.requests++;
    const sent = Date.now();
    return new Promise((resolve, reject) => {
      const req = mod.request(opts, (res) => {
        this.active.delete(req);
        this.latencyMs = this.latencyMs ? this.latencyMs * (1 - EWMA_WEIGHT) + (Date.now() - sent) * EWMA_WEIGHT : Date.now() - sent;
        resolve(res);
      });
      this.active.add(req);
      req.setTimeout(idleMs, () => req.destroy(new RemoteError(`${this.name}: no answer for ${Math.round(idleMs / 100) / 10} s`, true)));
      req.once('error', (e) => {
        this.active.delete(req);
        reject(e);
      });
      req.end();
    });
  }

  /**
   * Read an answer's body, bytes [pos, end) of the file, handing each piece
   * to `onData` as it arrives; resolves with the count read (short when
   * the connection ended early or failed after some bytes); rejects only
   * when it failed before any byte arrived.
   */
  private body(res: http.IncomingMessage, pos: number, end: number, onData: (pos: number, data: Buffer) => void, started: number,
    idleMs = IDLE_TIMEOUT_MS): Promise<number> {
    return new Promise((resolve, reject) => {
      let got = 0;
      const want = end - pos;
      res.setTimeout(idleMs, () => res.destroy(new RemoteError(`${this.name}: the server stopped sending for ${Math.round(idleMs / 100) / 10} s`, true)));
      res.on('data', (d: Buffer) => {
        const more = got + d.length > want; // more than asked for: not ours, and the connection is not reused
        if (more) d = d.subarray(0, want - got);
        if (d.length) {
          onData(pos + got, d);
          got += d.length;
          this.stats.bytes += d.length;
        }
        if (more) res.destroy();
      });
      const done = () => {
        const secs = (Date.now() - started) / 1000;
        if (got > 256 * 1024 && secs > 0) {
          const rate = got / secs;
          this.throughput = this.throughput ? this.throughput * (1 - EWMA_WEIGHT) + rate * EWMA_WEIGHT : rate;
        }
        resolve(got);
      };
      res.once('end', done);
      res.once('close', done);
      // A body cut short (the connection reset or closed early, an idle timeout) errors after its first
      // bytes went to onData: report what arrived, so the next try resumes after it and every byte is
      // handed on once, in order. Only an answer that gave nothing fails as such.
      res.once('error', (e) => (got > 0 ? done() : reject(e)));
    });
  }

  /** The error a pin mismatch gives, logged once. */
  private pinBroken(why: string): RemoteChangedError {
    if (!this.changed) {
      this.changed = new RemoteChangedError(`${this.name} changed on the server (${why}); bytes not read before are refused (EIO): mount or open it again to read the new file`);
      this.opts.log?.(this.changed.message);
    }
    return this.changed;
  }

  /** Headers that make the server answer with the whole file (200) unless it is still the pinned one. */
  private ifRange(): Record<string, string> {
    const v = this.pin.etag ?? this.pin.lastModified;
    return v ? { 'If-Range': v } : {};
  }

  /**
   * Fetch bytes [start, end) of the file, handing pieces to `onData` in
   * order as they arrive. Tries again (resuming after the last byte
   * received) on connection errors, 5xx and short bodies, until no byte
   * has arrived for the deadline; no try outlasts the deadline. After a
   * fetch gave up, a fetch gets one short try until the server answers
   * again (RECHECK_MIN_MS).
   */
  async fetch(start: number, end: number, onData: (pos: number, data: Buffer) => void): Promise<void> {
    end = Math.min(end, this.pin.size);
    let pos = start;
    let progressAt = Date.now();
    let attempt = 0;
    let fromOrigin = false;
    let recheck = this.down;
    while (pos < end) {
      if (this.changed) throw this.changed;
      // the time this try may go without an answer: what is left of the deadline (at least the recheck's)
      const short = Math.min(IDLE_TIMEOUT_MS, Math.max(RECHECK_MIN_MS, RECHECK_LATENCIES * this.latencyMs));
      const idleMs = recheck ? short : Math.min(IDLE_TIMEOUT_MS, Math.max(short, progressAt + this.deadlineMs - Date.now()));
      try {
        const a = await this.request({ Range: `bytes=${pos}-${end - 1}`, ...this.ifRange() }, fromOrigin ? this.url : this.location, idleMs);
        const got = await this.answer(a, pos, end, onData, idleMs);
        this.location = a.url;
        if (got > 0) {
          progressAt = Date.now();
          attempt = 0;
          this.down = false;
          recheck = false;
        }
        pos += got;
        if (pos < end) throw new RemoteError(`${this.name}: the answer ended early (${got} of ${end - pos + got} bytes)`, true);
      } catch (e) {
        const err = this.asRemote(e);
        if (err instanceof RemoteChangedError) throw err;
        // a mirror's location may expire: ask the original URL again, once
        if (!err.retryable && !fromOrigin && this.location.href !== this.url.href) {
          fromOrigin = true;
          continue;
        }
        if (!err.retryable || this.closed) throw err;
        if (recheck) throw new RemoteError(`${err.message} (the server has failed every try since a read gave up on it; not waiting again)`);
        const wait = Math.min(BACKOFF_MAX_MS, BACKOFF_FIRST_MS << Math.min(attempt++, 8));
        if (Date.now() + wait - progressAt >= this.deadlineMs) {
          this.down = true;
          throw new RemoteError(`${err.message} (gave up after ${Math.round((Date.now() - progressAt) / 1000)} s without progress)`);
        }
        this.stats.retries++;
        await sleep(wait);
      }
    }
  }

  /** Check one answer against the request and the pin, then read its body; the count of bytes read. */
  private async answer(a: Answer, pos: number, end: number, onData: (pos: number, data: Buffer) => void, idleMs: number): Promise<number> {
    const { res } = a;
    const s = res.statusCode ?? 0;
    const etag = strongEtag(res.headers.etag);
    if (s === 206) {
      const cr = parseContentRange(res.headers['content-range']);
      if (cr && cr.total !== this.pin.size) {
        res.destroy();
        throw this.pinBroken(`its size was ${this.pin.size} bytes, now ${cr.total}`);
      }
      if (this.pin.etag && etag && etag !== this.pin.etag) {
        res.destroy();
        throw this.pinBroken(`ETag ${this.pin.etag}, now ${etag}`);
      }
      if (!cr || cr.start !== pos || cr.end !== end - 1) {
        res.destroy();
        throw new RemoteError(`${this.name}: the server answered bytes ${res.headers['content-range'] ?? '(no Content-Range)'} to a request for ${pos}-${end - 1}; refused`, true);
      }
      return this.body(res, pos, end, onData, Date.now(), idleMs);
    }
    res.destroy();
    if (s === 200) {
      // If-Range did not match (the file changed), or the server ignored the range
      const size = Number(res.headers['content-length']);
      const lm = res.headers['last-modified'];
      if (this.pin.etag && etag && etag !== this.pin.etag) throw this.pinBroken(`ETag ${this.pin.etag}, now ${etag}`);
      if (Number.isSafeInteger(size) && size !== this.pin.size) throw this.pinBroken(`its size was ${this.pin.size} bytes, now ${size}`);
      if (this.pin.lastModified && lm && lm !== this.pin.lastModified) throw this.pinBroken(`Last-Modified ${this.pin.lastModified}, now ${lm}`);
      if ((this.pin.etag && !etag) || (this.pin.lastModified && !lm)) throw this.pinBroken('its answer no longer carries the validator first seen');
      throw new RemoteError(`${this.name}: the server ignored a Range request (sent the whole file)`);
    }
    if (s === 416) throw this.pinBroken(`bytes ${pos}-${end - 1} are no longer there`);
    throw new RemoteError(`${this.name}: HTTP ${s} ${res.statusMessage ?? ''}`.trim(), retryableStatus(s));
  }

  close(): void {
    this.closed = true;
    for (const r of this.active) r.destroy();
    for (const a of this.agents.values()) a.destroy();
    this.agents.clear();
  }
}
