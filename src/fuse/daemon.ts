// The FUSE daemon: fuse-native operations over the image namespace.
// Read-only; getattr, readdir, open, read, release, statfs, readlink,
// getxattr/listxattr (rootfs/ xattrs such as security.capability). Every
// operation answers with an errno on failure (EIO for a corrupt block,
// ENOENT, EROFS...), never by crashing. Views never change while mounted,
// so the kernel may cache their pages (kernel_cache) and attributes.

import Fuse from 'fuse-native';
import * as path from 'node:path';
import { Namespace, Node, Attr, SEQUENTIAL_READAHEAD } from '../image/namespace';
import { OpenImage } from '../image/open';
import { ByteSource } from '../io/source';
import { RemoteChangedError, RemoteError } from '../io/http-client';

/** The same remote error (a server down) is logged at most once this often. */
const REMOTE_LOG_EVERY_MS = 10_000;

// fuse-native forwards only a fixed list of libfuse options; more are passed
// by appending them to the fsname value (its options are joined with ",").
// noforget: libfuse keeps every node it has looked up even after the kernel
// evicts the inode, so file handles held by an NFS server (ganesha, or
// kernel nfsd) still resolve after memory pressure; our namespace is fixed
// and bounded, so this costs little.
const EXTRA_LIBFUSE_OPTIONS = ['ro', 'use_ino', 'noforget', 'max_readahead=1048576'];
const O_ACCMODE = 3;
const ST_RDONLY = 1;
const CACHE_TIMEOUT_S = 3600;

export interface DaemonOptions {
  allowOther: boolean;
  log: (line: string) => void;
}

interface Handle {
  node: Node;
  src: ByteSource;
}

type Cb<T = unknown> = (err: number, ...rest: T[]) => void;

function stat(a: Attr) {
  const t = new Date(Math.max(0, a.mtimeMs));
  return { mode: a.mode, uid: a.uid, gid: a.gid, size: a.size, dev: 0, nlink: a.nlink, ino: a.ino, rdev: a.rdev,
    blksize: 4096, blocks: a.blocks, atime: t, mtime: t, ctime: t };
}

export class Daemon {
  private readonly ns: Namespace;
  private readonly handles = new Map<number, Handle>();
  private nextFd = 1;
  private fuse: Fuse | undefined;
  private readonly totalBytes: number;
  private readonly fileCount: number;

  constructor(private readonly img: OpenImage, private readonly mountpoint: string, private readonly opts: DaemonOptions) {
    this.ns = new Namespace(img.catalog, img.blocks);
    const views = img.catalog.views();
    this.totalBytes = views.reduce((s, v) => s + v.size, 0);
    this.fileCount = views.length + img.catalog.trees().reduce((s, t) => s + t.entries, 0);
  }

  private errno(e: unknown, where: string): number {
    const err = e as { code?: string; message?: string };
    if (err?.code === 'ENOENT') return Fuse.ENOENT;
    if (e instanceof RemoteChangedError) return Fuse.EIO; // the remote source logged it, once
    if (e instanceof RemoteError) {
      // a server that is down fails every read the same way: one line per REMOTE_LOG_EVERY_MS
      const now = Date.now();
      if (err.message === this.lastRemoteError && now - this.lastRemoteErrorAt < REMOTE_LOG_EVERY_MS) return Fuse.EIO;
      this.lastRemoteError = err.message;
      this.lastRemoteErrorAt = now;
    }
    this.opts.log(`${where}: ${err?.message ?? String(e)}`);
    return Fuse.EIO;
  }

  private lastRemoteError: string | undefined;
  private lastRemoteErrorAt = 0;

  private guard<T>(where: string, cb: Cb<T>, f: () => void): void {
    try {
      f();
    } catch (e) {
      cb(this.errno(e, where));
    }
  }

  private ops() {
    const ns = this.ns;
    return {
      getattr: (p: string, cb: Cb) => this.guard(`getattr ${p}`, cb, () => {
        const n = ns.lookup(p);
        if (!n) return cb(Fuse.ENOENT);
        cb(0, stat(ns.attr(n)));
      }),
      readdir: (p: string, cb: Cb) => this.guard(`readdir ${p}`, cb, () => {
        const n = ns.lookup(p);
        if (!n) return cb(Fuse.ENOENT);
        if (!ns.isDir(n)) return cb(Fuse.ENOTDIR);
        const entries = ns.readdir(n);
        const parent = ns.lookup(path.posix.dirname(p)) ?? n;
        const names = ['.', '..', ...entries.map((e) => e[0])];
        const stats = [stat(ns.attr(n)), stat(ns.attr(parent)), ...entries.map((e) => stat(ns.attr(e[1])))];
        cb(0, names as unknown, stats as unknown);
      }),
      open: (p: string, flags: number, cb: Cb) => this.guard(`open ${p}`, cb, () => {
        if ((flags & O_ACCMODE) !== 0) return cb(Fuse.EROFS);
        const n = ns.lookup(p);
        if (!n) return cb(Fuse.ENOENT);
        if (ns.isDir(n)) return cb(Fuse.EISDIR);
        const src = ns.source(n, SEQUENTIAL_READAHEAD);
        const fd = this.nextFd++;
        if (this.nextFd > 0x7fffffff) this.nextFd = 1;
        this.handles.set(fd, { node: n, src });
        cb(0, fd);
      }),
      read: (p: string, fd: number, buf: Buffer, len: number, pos: number, cb: Cb) => this.guard(`read ${p}`, cb, () => {
        let h = this.handles.get(fd);
        if (!h) {
          const n = ns.lookup(p);
          if (!n) return cb(Fuse.EBADF);
          h = { node: n, src: ns.source(n) };
        }
        if (pos >= h.src.size) return cb(0);
        const into = buf.subarray(0, Math.min(len, h.src.size - pos));
        const got = h.src.preadNow ? h.src.preadNow(into, pos) : h.src.pread(into, pos);
        if (typeof got === 'number') return cb(got);
        got.then(
          (n) => cb(n),
          (e) => cb(this.errno(e, `read ${p} @${pos}+${len}`)),
        );
      }),
      release: (_p: string, fd: number, cb: Cb) => {
        this.handles.delete(fd);
        cb(0);
      },
      readlink: (p: string, cb: Cb) => this.guard(`readlink ${p}`, cb, () => {
        const n = ns.lookup(p);
        if (!n) return cb(Fuse.ENOENT);
        if (n.kind !== 'tree') return cb(Fuse.EINVAL);
        cb(0, ns.readlink(n) as unknown);
      }),
      getxattr: (p: string, name: string, _position: number, cb: Cb) => this.guard(`getxattr ${p}`, cb, () => {
        const n = ns.lookup(p);
        if (!n) return cb(Fuse.ENOENT);
        const v = ns.xattrs(n).get(name);
        if (!v) return cb(Fuse.ENODATA);
        cb(0, v as unknown);
      }),
      listxattr: (p: string, cb: Cb) => this.guard(`listxattr ${p}`, cb, () => {
        const n = ns.lookup(p);
        if (!n) return cb(Fuse.ENOENT);
        cb(0, [...ns.xattrs(n).keys()] as unknown);
      }),
      statfs: (_p: string, cb: Cb) => {
        cb(0, {
          bsize: 4096, frsize: 4096, blocks: Math.min(0xffffffff, Math.ceil(this.totalBytes / 4096)), bfree: 0, bavail: 0,
          files: Math.min(0xffffffff, this.fileCount), ffree: 0, favail: 0, fsid: 0x756e6973, flag: ST_RDONLY, namemax: 255,
        } as unknown);
      },
    };
  }

  mount(): Promise<void> {
    const fsname = `uniso:${path.basename(this.img.path).replace(/[^A-Za-z0-9._+-]/g, '_')}`;
    this.fuse = new Fuse(this.mountpoint, this.ops() as never, {
      fsname: [fsname, ...EXTRA_LIBFUSE_OPTIONS].join(','),
      allowOther: this.opts.allowOther,
      defaultPermissions: true,
      subtype: 'uniso',
      kernelCache: true,
      attrTimeout: CACHE_TIMEOUT_S,
      entryTimeout: CACHE_TIMEOUT_S,
      timeout: false,
    } as never);
    return new Promise((resolve, reject) => {
      this.fuse!.mount((err: Error | null) => (err ? reject(err) : resolve()));
    });
  }

  unmount(): Promise<void> {
    return new Promise((resolve) => {
      if (!this.fuse) return resolve();
      this.fuse.unmount((err: Error | null) => {
        if (err) this.opts.log(`unmount: ${err.message}`);
        resolve();
      });
    });
  }
}
