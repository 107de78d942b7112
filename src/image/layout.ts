// The /uniso/ directory of a universal ISO: a small JSON manifest, the
// catalog (SQLite) and the pool. The manifest carries the catalog's size and
// SHA-256, so a damaged catalog is caught before SQLite reads it.

export const UNISO_DIR = 'uniso';
export const MANIFEST_NAME = 'uniso.json';
export const CATALOG_NAME = 'catalog.sqlite';
export const POOL_NAME = 'pool.bin';
export const MANIFEST_FORMAT = 'uniso';
export const MANIFEST_VERSION = 1;

export interface Manifest {
  format: typeof MANIFEST_FORMAT;
  version: number;
  name: string;
  catalog: { file: string; size: number; sha256: string };
  pool: { file: string; size: number };
}
