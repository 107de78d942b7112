// ADDR:PORT options (--http, --nfs): parsing them, and one-line errors for
// an address that cannot be listened on.

import { UserError } from '../util/errors';

/** "0.0.0.0:8080", "[::]:8080", "localhost:80" or ":8080". */
export function parseListen(v: string, option: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d+)$/.exec(v.trim());
  if (!m) throw new UserError(`${option} ${v}: expected ADDR:PORT, e.g. 0.0.0.0:8080`);
  const port = Number(m[3]);
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new UserError(`${option} ${v}: bad port`);
  return { host: m[1] ?? (m[2] || '0.0.0.0'), port };
}

/** The one-line error for a failed listen on `where` (ADDR:PORT); `inUse` adds a hint to EADDRINUSE. */
export function listenError(where: string, e: NodeJS.ErrnoException, inUse = ''): UserError {
  if (e.code === 'EADDRINUSE') return new UserError(`${where}: address already in use${inUse}`);
  if (e.code === 'EACCES') return new UserError(`${where}: permission denied (ports below 1024 need root)`);
  if (e.code === 'EADDRNOTAVAIL') return new UserError(`${where}: address not available on this machine`);
  return new UserError(`${where}: cannot listen (${e.message})`);
}
