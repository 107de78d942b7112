// `uniso serve IMAGE --http ADDR:PORT`: serve an image's files over HTTP
// (no FUSE needed) until SIGINT/SIGTERM.

import { openImage } from '../image/open';
import { HttpServer } from '../serve/http';
import { UserError } from '../util/errors';

/** "0.0.0.0:8080", "[::]:8080", "localhost:80" or ":8080". */
export function parseListen(v: string, option: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d+)$/.exec(v.trim());
  if (!m) throw new UserError(`${option} ${v}: expected ADDR:PORT, e.g. 0.0.0.0:8080`);
  const port = Number(m[3]);
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new UserError(`${option} ${v}: bad port`);
  return { host: m[1] ?? (m[2] || '0.0.0.0'), port };
}

export async function serve(image: string, listen: string, opts: { cacheMb: number; quiet?: boolean }): Promise<void> {
  const { host, port } = parseListen(listen, '--http');
  const img = await openImage(image, { cacheBytes: opts.cacheMb << 20 });
  const log = (line: string) => process.stderr.write(`${new Date().toISOString()} uniso serve: ${line}\n`);
  const server = new HttpServer(img, { log });
  try {
    await server.listen(host, port);
  } catch (e) {
    img.close();
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'EADDRINUSE') throw new UserError(`${listen}: address already in use`);
    if (code === 'EACCES') throw new UserError(`${listen}: permission denied (ports below 1024 need root)`);
    if (code === 'EADDRNOTAVAIL') throw new UserError(`${listen}: address not available on this machine`);
    throw new UserError(`${listen}: cannot listen (${(e as Error).message})`);
  }
  const where = `http://${host.includes(':') ? `[${host}]` : host}:${port}/`;
  if (!opts.quiet) log(`serving ${image} on ${where}`);
  await new Promise<void>((resolve) => {
    let stopping = false;
    const stop = (sig: string) => {
      if (stopping) return;
      stopping = true;
      if (!opts.quiet) log(`${sig}: shutting down`);
      server.close().then(() => {
        img.close();
        resolve();
      });
    };
    process.on('SIGINT', () => stop('SIGINT'));
    process.on('SIGTERM', () => stop('SIGTERM'));
  });
}
