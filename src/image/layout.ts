// The files of a universal ISO that uniso reads: /uniso/ holds a small JSON
// manifest, the catalog (SQLite) and the side pool. The pool is a list of
// files on the ISO read one after another: the live root squashfs (its data
// blocks are pool blocks; e.g. /casper/10root.squashfs), then the side
// pool (/uniso/pool.bin: blocks only variant and overlay trees have). The
// manifest carries the catalog's size and SHA-256, so a damaged catalog is
// caught before SQLite reads it. A signed image also has
// /uniso/uniso.json.sig: an Ed25519 signature of the manifest's bytes
// (src/image/signature.ts).

export const UNISO_DIR = 'uniso';
export const MANIFEST_NAME = 'uniso.json';
/** The Ed25519 signature (64 bytes) of MANIFEST_NAME's bytes, beside it; only in signed images. */
export const SIGNATURE_NAME = 'uniso.json.sig';
export const CATALOG_NAME = 'catalog.sqlite';
export const POOL_NAME = 'pool.bin';
/** Where the squashfs of an input that had none (a directory, a tarball) goes. */
export const ROOTFS_SQUASHFS_NAME = 'rootfs.squashfs';
export const MANIFEST_FORMAT = 'uniso';
/** 2: the pool is a list of files (version 1 had /uniso/pool.bin alone: refused, build it again). */
export const MANIFEST_VERSION = 2;

/** One file of the pool: `size` bytes, pool offsets [at, at + size); `path` from the ISO's root. */
export interface PoolPart {
  path: string;
  size: number;
  at: number;
  /** what the file is: the live root squashfs, or the side pool */
  role: 'squashfs' | 'side';
}

export interface Manifest {
  format: typeof MANIFEST_FORMAT;
  version: number;
  name: string;
  catalog: { file: string; size: number; sha256: string };
  pool: { size: number; parts: PoolPart[] };
}
