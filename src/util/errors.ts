// User-facing errors: one line, naming the file and the problem. The CLI
// prints `uniso: <message>` and exits non-zero; anything else is a bug and
// gets a stack trace.

export class UserError extends Error {
  constructor(message: string, readonly exitCode = 1) {
    super(message);
    this.name = 'UserError';
  }
}

/** Error about a specific file: "<file>: <problem>". */
export function fileError(file: string, problem: string): UserError {
  return new UserError(`${file}: ${problem}`);
}

export function describeErrno(err: unknown): string {
  const e = err as NodeJS.ErrnoException;
  switch (e?.code) {
    case 'ENOENT': return 'no such file or directory';
    case 'EACCES': return 'permission denied';
    case 'EISDIR': return 'is a directory';
    case 'ENOTDIR': return 'not a directory';
    case 'ENOSPC': return 'no space left on device';
    case 'EROFS': return 'read-only file system';
    case 'ENOTCONN': return 'transport endpoint is not connected (stale FUSE mount)';
    default: return e?.message ?? String(err);
  }
}
