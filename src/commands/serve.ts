// `uniso serve IMAGE --http ADDR:PORT`: serve an image's files over HTTP
// (no FUSE needed) until SIGINT/SIGTERM.

import { openImage } from '../image/open';
import { RemoteSourceOptions } from '../io/remote-source';
import { HttpServer } from '../serve/http';
import { listenError, parseListen } from '../serve/listen';


export async function serve(image: string, listen: string, opts: { cacheMb: number; quiet?: boolean; remote?: RemoteSourceOptions; trust?: string }): Promise<void> {
  const { host, port } = parseListen(listen, '--http');
  const log = (line: string) => process.stderr.write(`${new Date().toISOString()} uniso serve: ${line}\n`);
  const img = await openImage(image, { cacheBytes: opts.cacheMb << 20, remote: { ...opts.remote, log }, trust: opts.trust });
  const server = new HttpServer(img, { log });
  try {
    await server.listen(host, port);
  } catch (e) {
    img.close();
    throw listenError(listen, e as NodeJS.ErrnoException);
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
