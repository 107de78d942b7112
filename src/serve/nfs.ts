// NFS export of a uniso mount through NFS-Ganesha (this machine's kernel has
// no NFS server): a read-only export of the mount point, pseudo path /uniso,
// NFSv3 and v4, root not squashed (owners show through). Starts rpcbind when
// none runs, and stops what it started.

import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { ChildProcess, spawn } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { UserError } from '../util/errors';
import { listenError } from './listen';

export const NFS_PSEUDO_PATH = '/uniso';
const GANESHA = 'ganesha.nfsd';
const FSAL_VFS_DIRS = ['/usr/lib/x86_64-linux-gnu/ganesha', '/usr/lib/ganesha', '/usr/lib64/ganesha'];
const RPCBIND_PORT = 111;
const START_TIMEOUT_MS = 20_000;

export interface NfsOptions {
  host: string;
  port: number;
  mountpoint: string;
  workDir: string; // private directory for the config, log, pid and recovery files
  log: (line: string) => void;
}

function which(cmd: string): string | undefined {
  for (const d of (process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin').split(':').concat(['/usr/sbin', '/sbin'])) {
    const p = path.join(d, cmd);
    try {
      fs.accessSync(p, fs.constants.X_OK);
      return p;
    } catch { /* next */ }
  }
  return undefined;
}

/** Fail early, with the Debian package names, when ganesha or its VFS backend is missing. */
export function checkNfsTools(): void {
  if (!which(GANESHA)) throw new UserError(`${GANESHA} not found: install the Debian packages nfs-ganesha and nfs-ganesha-vfs (and rpcbind)`);
  if (!FSAL_VFS_DIRS.some((d) => fs.existsSync(path.join(d, 'libfsalvfs.so')))) {
    throw new UserError('the ganesha VFS backend (libfsalvfs.so) is missing: install the Debian package nfs-ganesha-vfs');
  }
  if (!which('rpcbind')) throw new UserError('rpcbind not found: install the Debian package rpcbind');
}

/** Is something listening on host:port (TCP)? */
export function listening(host: string, port: number, timeoutMs = 500): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ host: host === '0.0.0.0' ? '127.0.0.1' : host === '::' ? '::1' : host, port });
    const done = (v: boolean) => {
      s.destroy();
      resolve(v);
    };
    s.setTimeout(timeoutMs, () => done(false));
    s.once('connect', () => done(true));
    s.once('error', () => done(false));
  });
}

/** Can we bind host:port? (so "port in use" is a clear error before anything starts) */
export function checkPortFree(host: string, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', (e: NodeJS.ErrnoException) => reject(listenError(`${host}:${port}`, e, ' (an NFS server already runs there?)')));
    srv.listen(port, host, () => srv.close(() => resolve()));
  });
}

function ganeshaConfig(o: NfsOptions): string {
  return [
    '# written by uniso for one mount; removed when the mount stops',
    'NFS_CORE_PARAM {',
    `  NFS_Port = ${o.port};`,
    `  Bind_addr = ${o.host};`,
    '  Protocols = 3, 4;',
    '  Enable_NLM = false;',
    '  Enable_RQUOTA = false;',
    '  Mount_Path_Pseudo = true;',
    '}',
    'NFSV4 {',
    '  Graceless = true;',
    `  RecoveryRoot = ${path.join(o.workDir, 'recovery')};`,
    '}',
    'EXPORT {',
    '  Export_Id = 1;',
    `  Path = ${o.mountpoint};`,
    `  Pseudo = ${NFS_PSEUDO_PATH};`,
    '  Access_Type = RO;',
    '  Squash = No_Root_Squash;',
    '  SecType = sys;',
    '  Protocols = 3, 4;',
    '  Transports = TCP;',
    '  FSAL { Name = VFS; }',
    '}',
    'LOG { Default_Log_Level = WARN; }',
    '',
  ].join('\n');
}

export class NfsExport {
  private ganesha?: ChildProcess;
  private rpcbind?: ChildProcess;
  private stopping = false;
  /** Called when ganesha exits on its own (the FUSE mount keeps serving). */
  onUnexpectedExit?: (why: string) => void;

  constructor(private readonly o: NfsOptions) {}

  get logFile(): string {
    return path.join(this.o.workDir, 'ganesha.log');
  }

  async start(): Promise<void> {
    checkNfsTools();
    fs.mkdirSync(path.join(this.o.workDir, 'recovery'), { recursive: true });
    if (!(await listening('127.0.0.1', RPCBIND_PORT))) {
      this.rpcbind = spawn(which('rpcbind')!, ['-f', '-w'], { stdio: 'ignore' });
      let up = false;
      for (let i = 0; i < 50 && !(up = await listening('127.0.0.1', RPCBIND_PORT)); i++) await sleep(100);
      if (!up) throw new UserError('rpcbind did not start');
      this.o.log('started rpcbind');
    }
    const conf = path.join(this.o.workDir, 'ganesha.conf');
    fs.writeFileSync(conf, ganeshaConfig(this.o));
    this.ganesha = spawn(which(GANESHA)!, ['-F', '-f', conf, '-L', this.logFile, '-p', path.join(this.o.workDir, 'ganesha.pid')],
      { stdio: 'ignore' });
    let exited: string | undefined;
    this.ganesha.on('exit', (code, sig) => {
      exited = sig ? `signal ${sig}` : `status ${code}`;
      if (!this.stopping) this.onUnexpectedExit?.(exited);
    });
    const deadline = Date.now() + START_TIMEOUT_MS;
    let up = false;
    while (Date.now() < deadline && !exited && !(up = await listening(this.o.host, this.o.port))) await sleep(200);
    if (exited || !up) {
      const tail = this.tail();
      await this.stop();
      throw new UserError(`NFS export failed: ganesha ${exited ? `exited (${exited})` : 'did not start'}${tail ? `: ${tail}` : ''}`);
    }
    this.o.log(`NFS export of ${this.o.mountpoint} as ${this.o.host}:${this.o.port}:${NFS_PSEUDO_PATH} (v3, v4; read-only)`);
  }

  get ganeshaPid(): number | undefined {
    return this.ganesha?.pid;
  }

  private tail(): string {
    try {
      const lines = fs.readFileSync(this.logFile, 'utf8').split('\n').filter((l) => /CRIT|MAJ|FATAL/.test(l) && !/DBUS/.test(l));
      return (lines.pop() ?? '').replace(/^.*?:\s*(\S+ :\S+ :\S+ :)/, '$1').trim();
    } catch {
      return '';
    }
  }

  /** Stop ganesha (and rpcbind if we started it), then remove the work directory; never throws. */
  async stop(): Promise<void> {
    this.stopping = true;
    for (const child of [this.ganesha, this.rpcbind]) {
      if (!child || child.exitCode !== null || child.signalCode !== null) continue;
      child.kill('SIGTERM');
      for (let i = 0; i < 100 && child.exitCode === null && child.signalCode === null; i++) await sleep(100);
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    }
    try {
      fs.rmSync(this.o.workDir, { recursive: true, force: true });
    } catch { /* left for the next mount there */ }
  }
}
