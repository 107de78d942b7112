// Test helper: Debian's nginx (/usr/sbin/nginx) serving a directory on
// 127.0.0.1 over HTTP or HTTPS, as the "real web server" the remote-reading
// tests read universal ISOs from. Each server runs in the foreground
// (daemon off, one master and one worker) with a generated config, pid,
// logs and temp paths in its own temp directory; static files get ranges,
// a strong ETag ("<mtime hex>-<size hex>") and Last-Modified; directories
// get autoindex listings (httpdirfs needs them). The access log is kept (one
// tab-separated line per request, see accessEntries) so tests can count
// requests and bytes. stop() always kills it and removes the temp directory;
// kill()/start() take it down and bring it back on the same port; a process
// 'exit' hook and the master's parent-death signal (setpriv --pdeathsig)
// make sure a crashing or killed test process never leaves nginx running.

import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { ChildProcess, spawn } from 'node:child_process';
import { testCerts } from './tls-certs';
import { freePort } from './fixture';

export { freePort };

export const NGINX = '/usr/sbin/nginx';

export interface NginxOptions {
  /** The directory served at the URL's root. */
  root: string;
  /** Serve HTTPS with a certificate of testCerts()' CA (caFile). */
  https?: boolean;
}

/** One access-log line. */
export interface AccessEntry {
  method: string;
  /** The request target as sent (path and query). */
  uri: string;
  status: number;
  /** Body bytes sent ($body_bytes_sent). */
  bytes: number;
  /** The Range request header, undefined when none was sent. */
  range?: string;
  /** The If-Range request header, undefined when none was sent. */
  ifRange?: string;
}

export interface NginxServer {
  /** `http://127.0.0.1:PORT/` or `https://127.0.0.1:PORT/`. */
  url: string;
  port: number;
  root: string;
  /** PEM of the CA that signed the server certificate (https only). */
  caFile?: string;
  /** The access log so far ('' before the first request). A line is written when its response is done. */
  accessLog(): Promise<string>;
  /** The access log parsed. */
  accessEntries(): Promise<AccessEntry[]>;
  /** Kill nginx (fast shutdown: open connections are cut), keep its config and port. */
  kill(): Promise<void>;
  /** Start it again on the same port after kill(); resolves once the port accepts connections. */
  start(): Promise<void>;
  /** kill() then start(). */
  restart(): Promise<void>;
  /** Kill it and remove its temp directory (idempotent). */
  stop(): Promise<void>;
}

// Tab-separated; nginx writes tabs, quotes, backslashes and control characters in values as \xHH
// (undone by accessEntries), and "-" for an empty value.
const LOG_FORMAT = '$request_method\\t$request_uri\\t$status\\t$body_bytes_sent\\t$http_range\\t$http_if_range';

/** Whether something accepts TCP connections on 127.0.0.1:port. */
export function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port });
    s.setTimeout(500, () => { s.destroy(); resolve(false); });
    s.once('connect', () => { s.destroy(); resolve(true); });
    s.once('error', () => resolve(false));
  });
}

function config(dir: string, root: string, port: number, tls?: { cert: string; key: string }): string {
  const p = (n: string) => JSON.stringify(path.join(dir, n));
  return `daemon off;
master_process on;
worker_processes 1;
${process.getuid?.() === 0 ? 'user root;' : ''}
pid ${p('nginx.pid')};
error_log ${p('error.log')} notice;
events { worker_connections 512; }
http {
  client_body_temp_path ${p('tmp/body')};
  proxy_temp_path ${p('tmp/proxy')};
  fastcgi_temp_path ${p('tmp/fastcgi')};
  uwsgi_temp_path ${p('tmp/uwsgi')};
  scgi_temp_path ${p('tmp/scgi')};
  log_format uniso escape=default '${LOG_FORMAT}';
  access_log ${p('access.log')} uniso;
  types { text/html html; }
  default_type application/octet-stream;
  sendfile on;
  tcp_nopush on;
  keepalive_timeout 65;
  server {
    listen 127.0.0.1:${port}${tls ? ' ssl' : ''};
    server_name localhost;
    root ${JSON.stringify(root)};
    autoindex on;
${tls ? `    ssl_certificate ${JSON.stringify(tls.cert)};
    ssl_certificate_key ${JSON.stringify(tls.key)};
` : ''}  }
}
`;
}

// Every nginx still running, killed (process group, SIGKILL) if the test process exits without stopping it.
const live = new Map<ChildProcess, string>();
process.on('exit', () => {
  for (const [proc, dir] of live) {
    try { process.kill(-proc.pid!, 'SIGKILL'); } catch { /* gone */ }
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Start nginx serving `opts.root`; resolves once its port accepts connections, rejects with its stderr if it exits. */
export async function startNginx(opts: NginxOptions): Promise<NginxServer> {
  const root = path.resolve(opts.root);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'uniso-nginx-'));
  fs.mkdirSync(path.join(dir, 'tmp'));
  const certs = opts.https ? testCerts() : undefined;
  let port = 0;
  let proc: ChildProcess | undefined;
  let exited: Promise<void> = Promise.resolve();
  let stopped = false;

  const start = async (): Promise<void> => {
    if (stopped) throw new Error('nginx: start() after stop()');
    if (proc) throw new Error('nginx: already running');
    const conf = path.join(dir, 'nginx.conf');
    fs.writeFileSync(conf, config(dir, root, port, certs && { cert: certs.certFile, key: certs.keyFile }));
    // its own process group (killed as one: master and worker); SIGTERM to the master if we die
    const p = spawn('setpriv', ['--pdeathsig', 'TERM', NGINX, '-p', dir, '-e', path.join(dir, 'error.log'), '-c', conf],
      { stdio: ['ignore', 'ignore', 'pipe'], detached: true });
    proc = p;
    live.set(p, dir);
    let stderr = '';
    p.stderr!.on('data', (d: Buffer) => { stderr += d.toString(); });
    let gone = false;
    let spawnError = '';
    exited = new Promise<void>((resolve) => {
      const done = () => { gone = true; live.delete(p); if (proc === p) proc = undefined; resolve(); };
      p.once('close', done);
      p.once('error', (e) => { spawnError = e.message; done(); }); // setpriv or nginx missing
    });
    const deadline = Date.now() + 15000;
    for (;;) {
      if (gone) {
        let log = '';
        try { log = fs.readFileSync(path.join(dir, 'error.log'), 'utf8'); } catch { /* none */ }
        throw new Error(`nginx exited at start (code ${p.exitCode}, signal ${p.signalCode}): ${spawnError || stderr.trim() || log.trim()}`);
      }
      if (await accepts(port)) return;
      if (Date.now() > deadline) {
        await kill();
        throw new Error(`nginx did not accept connections on 127.0.0.1:${port} within 15 s: ${stderr.trim()}`);
      }
      await sleep(50);
    }
  };

  const kill = async (): Promise<void> => {
    const p = proc;
    if (!p) return;
    const signal = (s: NodeJS.Signals) => { try { process.kill(-p.pid!, s); } catch { /* gone */ } };
    signal('SIGTERM'); // fast shutdown of the master and its worker
    const timer = setTimeout(() => signal('SIGKILL'), 5000);
    await exited;
    clearTimeout(timer);
    signal('SIGKILL'); // a worker the master left behind, if any
  };

  port = await freePort();
  const scheme = opts.https ? 'https' : 'http';
  const server: NginxServer = {
    url: `${scheme}://127.0.0.1:${port}/`,
    port,
    root,
    caFile: certs?.caFile,
    accessLog: async () => {
      try { return await fs.promises.readFile(path.join(dir, 'access.log'), 'utf8'); } catch { return ''; }
    },
    accessEntries: async () => (await server.accessLog()).split('\n').filter((l) => l).map((l) => {
      const [method, uri, status, bytes, range, ifRange] = l.split('\t');
      const opt = (v: string) => (v === '-' ? undefined : v.replace(/\\x([0-9A-Fa-f]{2})/g, (_, h: string) => String.fromCharCode(parseInt(h, 16))));
      return { method, uri, status: Number(status), bytes: Number(bytes), range: opt(range), ifRange: opt(ifRange) };
    }),
    kill,
    start,
    restart: async () => { await kill(); await start(); },
    stop: async () => {
      if (stopped) return;
      stopped = true;
      await kill();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
  try {
    await start();
  } catch (e) {
    await server.stop();
    throw e;
  }
  return server;
}
