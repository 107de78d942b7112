// Opens a universal image for reading: a universal ISO (files located with
// the ISO 9660 reader, read in place), the same at an http(s):// URL (read
// through a RemoteSource: only what is read crosses the network), or a
// directory holding its extracted contents (DIR/uniso/..., DIR/casper/...).
// Checks the manifest's signature when asked to (--trust,
// src/image/signature.ts: before anything else of the image is used), the
// manifest and the catalog checksum, opens the catalog (from a temporary
// copy, deleted at once, when it lies inside an ISO) and sets up the
// pool's block store over the pool's files (the live squashfs, then the
// side pool) read as one.

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as crypto from 'node:crypto';
import { ByteSource, concatSources, FileSource, preadFully, readAllBytes, SliceableSource } from '../io/source';
import { RemoteSource, RemoteSourceOptions } from '../io/remote-source';
import { IsoImage, looksLikeIso } from '../iso/iso9660';
import { Catalog } from '../catalog/reader';
import { BlockStore } from '../pool/reader';
import { CATALOG_NAME, MANIFEST_FORMAT, MANIFEST_NAME, MANIFEST_VERSION, Manifest, PoolPart, SIGNATURE_NAME, UNISO_DIR } from './layout';
import { checkSignature, SignatureState } from './signature';
import { fileError, describeErrno } from '../util/errors';

export interface OpenImage {
  path: string;
  manifest: Manifest;
  catalog: Catalog;
  blocks: BlockStore;
  /** the pool's files read one after another (manifest.pool.parts) */
  pool: SliceableSource;
  /** the image's bytes, when it is read from a URL */
  remote?: RemoteSource;
  /** whether the image is signed, and the --trust key's fingerprint when its signature was checked */
  signature: SignatureState;
  close(): void;
}

export interface OpenOptions {
  cacheBytes?: number;
  /** how an http(s):// image is read: CA file, disk cache, log */
  remote?: RemoteSourceOptions;
  /** a public key file (PEM): the manifest's signature must verify with it before anything else of the image is used */
  trust?: string;
}

/** An image given as an http:// or https:// URL. */
export function isUrl(p: string): boolean {
  return /^https?:\/\//i.test(p);
}

const MANIFEST_KEYS = ['catalog', 'format', 'name', 'pool', 'version'];
const CATALOG_KEYS = ['file', 'sha256', 'size'];
const POOL_KEYS = ['parts', 'size'];
const PART_KEYS = ['at', 'path', 'role', 'size'];

/** `o` is an object with exactly these keys (sorted). */
function sameKeys(o: unknown, keys: string[]): boolean {
  if (typeof o !== 'object' || o === null || Array.isArray(o)) return false;
  const k = Object.keys(o).sort();
  return k.length === keys.length && k.every((x, i) => x === keys[i]);
}

/**
 * The manifest says what the catalog (checked against the manifest's
 * SHA-256) also records: the appliance's name and the pool files. A
 * manifest damaged where the catalog's SHA-256 cannot see it (the name, a
 * pool file's size that still adds up) is refused here.
 */
function checkManifestAgainstCatalog(m: Manifest, catalog: Catalog, where: string): void {
  const damaged = (why: string) => fileError(where, `uniso manifest is damaged (${why})`);
  const name = catalog.meta('name');
  if (name !== undefined && name !== m.name) throw damaged('its appliance name is not the catalog\'s');
  const squash = m.pool.parts.filter((p) => p.role === 'squashfs');
  const side = m.pool.parts.filter((p) => p.role === 'side');
  const sqPath = catalog.meta('squashfs_path');
  const sqBytes = catalog.meta('squashfs_bytes');
  if (squash.length > 1 || side.length > 1) throw damaged('bad pool file list');
  if (sqPath !== undefined && (squash.length !== 1 || squash[0].path !== sqPath || String(squash[0].size) !== sqBytes)) {
    throw damaged('its live squashfs is not the catalog\'s');
  }
  if (sqPath === undefined && squash.length) throw damaged('it names a live squashfs the catalog does not have');
  const sideBytes = catalog.meta('side_pool_bytes');
  if (sideBytes !== undefined && String(side.length ? side[0].size : 0) !== sideBytes) throw damaged('its side pool size is not the catalog\'s');
}

function parseManifest(data: Buffer, where: string): Manifest {
  let m: Manifest;
  try {
    m = JSON.parse(data.toString('utf8')) as Manifest;
  } catch {
    throw fileError(where, 'uniso manifest is damaged (not valid JSON)');
  }
  if (m?.format !== MANIFEST_FORMAT) throw fileError(where, 'not a uniso manifest');
  if (!Number.isSafeInteger(m.version) || m.version < 1) throw fileError(where, 'uniso manifest is damaged (no image version)');
  if (m.version > MANIFEST_VERSION) {
    throw fileError(where, `uniso image version ${m.version} (says its manifest) is newer than this uniso supports (${MANIFEST_VERSION}); upgrade uniso`);
  }
  if (m.version < MANIFEST_VERSION) {
    throw fileError(where, `uniso image version ${m.version} (says its manifest) was made by an older uniso; build it again with this one`);
  }
  if (!m.catalog || typeof m.catalog.sha256 !== 'string' || !m.pool || !Array.isArray(m.pool.parts)) {
    throw fileError(where, 'uniso manifest is incomplete');
  }
  // nothing checks the manifest's bytes (unless it is signed): a damaged one that is still JSON must not be
  // taken for another, so every field is what uniso writes, and no other (the catalog vouches for the rest, see
  // checkManifestAgainstCatalog)
  const damaged = (why: string) => fileError(where, `uniso manifest is damaged (${why})`);
  if (!sameKeys(m, MANIFEST_KEYS) || !sameKeys(m.catalog, CATALOG_KEYS) || !sameKeys(m.pool, POOL_KEYS)) throw damaged('unexpected fields');
  if (typeof m.name !== 'string' || m.name === '') throw damaged('no appliance name');
  if (m.catalog.file !== CATALOG_NAME) throw damaged(`the catalog is not ${CATALOG_NAME}`);
  if (!/^[0-9a-f]{64}$/.test(m.catalog.sha256)) throw damaged('the catalog\'s SHA-256 is not 64 hex digits');
  if (!Number.isSafeInteger(m.catalog.size) || m.catalog.size <= 0) throw damaged('bad catalog size');
  let at = 0;
  for (const part of m.pool.parts as PoolPart[]) {
    const safe = typeof part?.path === 'string' && part.path !== '' && !part.path.startsWith('/') &&
      !part.path.split('/').some((c) => c === '..' || c === '.' || c === '');
    if (!safe || !sameKeys(part, PART_KEYS) || part.at !== at || !Number.isSafeInteger(part.size) || part.size < 0 ||
      (part.role !== 'squashfs' && part.role !== 'side')) {
      throw damaged('bad pool file list');
    }
    at += part.size;
  }
  if (at !== m.pool.size) throw fileError(where, 'uniso manifest is damaged (pool files do not add up to the pool size)');
  return m;
}

/** Bytes read at a time when checking and copying the catalog. */
const CATALOG_CHUNK = 1 << 20;

/** SHA-256 (hex) of `src`, read a chunk at a time; each chunk is also written to `copyFd` when given. */
async function catalogDigest(src: ByteSource, image: string, copy?: { fd: number; file: string }): Promise<string> {
  const hash = crypto.createHash('sha256');
  const buf = Buffer.allocUnsafe(Math.min(CATALOG_CHUNK, Math.max(1, src.size)));
  for (let pos = 0; pos < src.size; pos += buf.length) {
    const chunk = buf.subarray(0, Math.min(buf.length, src.size - pos));
    await preadFully(src, chunk, pos, `${image}: catalog`);
    hash.update(chunk);
    if (copy) {
      try {
        fs.writeSync(copy.fd, chunk);
      } catch (e) {
        throw fileError(copy.file, `cannot write a temporary copy of the catalog of ${image} (${describeErrno(e)})`);
      }
    }
  }
  return hash.digest('hex');
}

/**
 * Check the catalog against the manifest's SHA-256 and open it. A catalog
 * inside an ISO is opened from a temporary copy, deleted at once (the open
 * file stays readable): SQLite then reads its pages on demand instead of
 * the daemon holding the whole catalog in memory.
 */
async function openCatalog(src: ByteSource, file: string | undefined, sha256: string, image: string): Promise<Catalog> {
  const damaged = () => fileError(image, 'catalog is damaged (SHA-256 does not match the manifest)');
  if (file) {
    if ((await catalogDigest(src, image)) !== sha256) throw damaged();
    return new Catalog(file, image);
  }
  let dir: string;
  try {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'uniso-catalog-'));
  } catch (e) {
    throw fileError(os.tmpdir(), `cannot make a temporary copy of the catalog of ${image} (${describeErrno(e)})`);
  }
  try {
    const copy = path.join(dir, CATALOG_NAME);
    const fd = fs.openSync(copy, 'wx', 0o600);
    try {
      if ((await catalogDigest(src, image, { fd, file: copy })) !== sha256) throw damaged();
    } finally {
      fs.closeSync(fd);
    }
    return new Catalog(copy, image);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

export async function openImage(p: string, opts: OpenOptions = {}): Promise<OpenImage> {
  const url = isUrl(p);
  let st: fs.Stats | undefined;
  try {
    if (!url) st = fs.statSync(p);
  } catch (e) {
    throw fileError(p, describeErrno(e));
  }
  let manifest: Manifest;
  let signature: SignatureState;
  let catalogSrc: ByteSource;
  let remote: RemoteSource | undefined;
  const poolParts: SliceableSource[] = [];
  let catalogFile: string | undefined; // the catalog as a file of its own (an extracted image)
  const closers: (() => void)[] = [];
  const truncated = (part: PoolPart, size: number) =>
    fileError(p, `pool file /${part.path} is truncated (${size} bytes, manifest says ${part.size})`);
  try {
    if (st?.isDirectory()) {
      // DIR is the extracted ISO, or its uniso/ directory
      const root = fs.existsSync(path.join(p, UNISO_DIR, MANIFEST_NAME)) ? p : path.dirname(path.resolve(p));
      const dir = path.join(root, UNISO_DIR);
      const mPath = path.join(dir, MANIFEST_NAME);
      if (!fs.existsSync(mPath)) throw fileError(p, `not an extracted universal ISO (no ${UNISO_DIR}/${MANIFEST_NAME})`);
      const open = (file: string) => {
        try {
          const s = FileSource.open(file);
          closers.push(() => s.close());
          return s;
        } catch (e) {
          throw fileError(file, describeErrno(e));
        }
      };
      const mBytes = fs.readFileSync(mPath);
      const sigPath = path.join(dir, SIGNATURE_NAME);
      signature = await checkSignature(p, mBytes, fs.existsSync(sigPath) ? open(sigPath) : undefined, opts.trust);
      manifest = parseManifest(mBytes, p);
      catalogSrc = open(path.join(dir, CATALOG_NAME));
      catalogFile = path.join(dir, CATALOG_NAME);
      for (const part of manifest.pool.parts) {
        const src = open(path.join(root, ...part.path.split('/')));
        if (src.size < part.size) throw truncated(part, src.size);
        poolParts.push(src.slice(0, part.size));
      }
    } else {
      let src: ByteSource;
      if (url) {
        const r = await RemoteSource.open(p, opts.remote);
        closers.push(() => r.close());
        src = remote = r;
      } else {
        const f = FileSource.open(p);
        closers.push(() => f.close());
        src = f;
      }
      if (!(await looksLikeIso(src))) throw fileError(p, 'not a universal ISO (not an ISO 9660 image)');
      const iso = await IsoImage.open(src, p);
      const find = async (name: string, what: string) => {
        const e = await iso.lookup(name);
        if (!e || e.isDir) throw fileError(p, `not a universal ISO (no /${name}${what})`);
        return iso.open(e, `/${name}`);
      };
      const mBytes = await readAllBytes(await find(`${UNISO_DIR}/${MANIFEST_NAME}`, '; was it built with uniso build?'), p);
      const sig = await iso.lookup(`${UNISO_DIR}/${SIGNATURE_NAME}`);
      signature = await checkSignature(p, mBytes, sig && !sig.isDir ? iso.open(sig, `/${UNISO_DIR}/${SIGNATURE_NAME}`) : undefined, opts.trust);
      manifest = parseManifest(mBytes, p);
      catalogSrc = await find(`${UNISO_DIR}/${CATALOG_NAME}`, '');
      for (const part of manifest.pool.parts) {
        const f = await find(part.path, `, a pool file the manifest names`);
        if (f.size < part.size) throw truncated(part, f.size);
        poolParts.push(f.slice(0, part.size));
      }
    }
    if (catalogSrc.size !== manifest.catalog.size) {
      throw fileError(p, `catalog is damaged (${catalogSrc.size} bytes, manifest says ${manifest.catalog.size})`);
    }
    const pool = concatSources(`${p}: pool`, poolParts);
    const catalog = await openCatalog(catalogSrc, catalogFile, manifest.catalog.sha256, p);
    closers.push(() => catalog.close());
    checkManifestAgainstCatalog(manifest, catalog, p);
    const table = catalog.blockTable(manifest.pool.size);
    // under --trust every block is checked against the signed catalog's digests
    const digests = opts.trust ? catalog.blockDigests(table.count) : undefined;
    if (opts.trust && !digests) throw fileError(p, 'its catalog has no block digests (made by an older uniso), so --trust cannot check its blocks; build it again');
    const blocks = new BlockStore(pool, table, { name: `${p}: pool`, cacheBytes: opts.cacheBytes, digests });
    return {
      path: p, manifest, catalog, blocks, pool, remote, signature,
      close: () => { for (const c of closers.reverse()) c(); },
    };
  } catch (e) {
    for (const c of closers.reverse()) c();
    throw e;
  }
}
