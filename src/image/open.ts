// Opens a universal image for reading: a universal ISO (files located with
// the ISO 9660 reader, read in place) or a directory holding its extracted
// contents (DIR/uniso/...). Checks the manifest and the catalog checksum,
// loads the catalog into memory and sets up the pool's block store.

import * as fs from 'node:fs';
import * as path from 'node:path';
import * as crypto from 'node:crypto';
import { ByteSource, FileSource, readAllBytes } from '../io/source';
import { IsoImage, looksLikeIso } from '../iso/iso9660';
import { Catalog } from '../catalog/reader';
import { BlockStore } from '../pool/reader';
import { CATALOG_NAME, MANIFEST_FORMAT, MANIFEST_NAME, MANIFEST_VERSION, Manifest, POOL_NAME, UNISO_DIR } from './layout';
import { fileError, describeErrno } from '../util/errors';

export interface OpenImage {
  path: string;
  manifest: Manifest;
  catalog: Catalog;
  blocks: BlockStore;
  pool: ByteSource;
  close(): void;
}

export interface OpenOptions {
  cacheBytes?: number;
}

function parseManifest(data: Buffer, where: string): Manifest {
  let m: Manifest;
  try {
    m = JSON.parse(data.toString('utf8')) as Manifest;
  } catch {
    throw fileError(where, 'uniso manifest is damaged (not valid JSON)');
  }
  if (m?.format !== MANIFEST_FORMAT) throw fileError(where, 'not a uniso manifest');
  if (typeof m.version !== 'number' || m.version > MANIFEST_VERSION) {
    throw fileError(where, `uniso image version ${m.version} is newer than this uniso supports (${MANIFEST_VERSION}); upgrade uniso`);
  }
  if (!m.catalog || !m.pool || typeof m.catalog.sha256 !== 'string') throw fileError(where, 'uniso manifest is incomplete');
  return m;
}

export async function openImage(p: string, opts: OpenOptions = {}): Promise<OpenImage> {
  let st: fs.Stats;
  try {
    st = fs.statSync(p);
  } catch (e) {
    throw fileError(p, describeErrno(e));
  }
  let manifestBytes: Buffer;
  let catalogSrc: ByteSource;
  let pool: ByteSource;
  const closers: (() => void)[] = [];
  try {
    if (st.isDirectory()) {
      const dir = fs.existsSync(path.join(p, UNISO_DIR, MANIFEST_NAME)) ? path.join(p, UNISO_DIR) : p;
      const mPath = path.join(dir, MANIFEST_NAME);
      if (!fs.existsSync(mPath)) throw fileError(p, `not an extracted universal ISO (no ${UNISO_DIR}/${MANIFEST_NAME})`);
      manifestBytes = fs.readFileSync(mPath);
      const open = (name: string) => {
        try {
          const s = FileSource.open(path.join(dir, name));
          closers.push(() => s.close());
          return s;
        } catch (e) {
          throw fileError(path.join(dir, name), describeErrno(e));
        }
      };
      catalogSrc = open(CATALOG_NAME);
      pool = open(POOL_NAME);
    } else {
      const src = FileSource.open(p);
      closers.push(() => src.close());
      if (!(await looksLikeIso(src))) throw fileError(p, 'not a universal ISO (not an ISO 9660 image)');
      const iso = await IsoImage.open(src, p);
      const find = async (name: string) => {
        const e = await iso.lookup(`${UNISO_DIR}/${name}`);
        if (!e || e.isDir) throw fileError(p, `not a universal ISO (no /${UNISO_DIR}/${name}; was it built with uniso build?)`);
        return iso.open(e, `/${UNISO_DIR}/${name}`);
      };
      manifestBytes = await readAllBytes(await find(MANIFEST_NAME), p);
      catalogSrc = await find(CATALOG_NAME);
      pool = await find(POOL_NAME);
    }
    const manifest = parseManifest(manifestBytes, p);
    if (catalogSrc.size !== manifest.catalog.size) {
      throw fileError(p, `catalog is damaged (${catalogSrc.size} bytes, manifest says ${manifest.catalog.size})`);
    }
    const catBytes = await readAllBytes(catalogSrc, p);
    if (crypto.createHash('sha256').update(catBytes).digest('hex') !== manifest.catalog.sha256) {
      throw fileError(p, 'catalog is damaged (SHA-256 does not match the manifest)');
    }
    if (pool.size < manifest.pool.size) {
      throw fileError(p, `pool is truncated (${pool.size} bytes, manifest says ${manifest.pool.size})`);
    }
    const catalog = new Catalog(catBytes, p);
    closers.push(() => catalog.close());
    const blocks = new BlockStore(pool, catalog.blockTable(manifest.pool.size), { name: `${p}: pool`, cacheBytes: opts.cacheBytes });
    return {
      path: p, manifest, catalog, blocks, pool,
      close: () => { for (const c of closers.reverse()) c(); },
    };
  } catch (e) {
    for (const c of closers.reverse()) c();
    throw e;
  }
}
