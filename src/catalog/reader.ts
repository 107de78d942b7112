// Catalog reader (mount, extract, serve, verify): opens a catalog (a SQLite
// file, read a page at a time through a small page cache, or bytes held in
// memory), checks its schema version, and answers the queries the daemon
// and commands need. Directories and contents are unpacked a row at a time
// and kept in small caches.

import { DIGEST_BYTES } from '../pool/digests';
import Database from 'better-sqlite3';
import { LRUCache } from 'lru-cache';
import { CONTENTS_PER_CHUNK, SCHEMA_VERSION } from './schema';
import { InodeRow, unpackBlocks, unpackContents, unpackDir } from './packed';
import { unpackXattrs } from './xattrs';
import { deserializeRecipe, Recipe } from '../recipe/recipe';
import { BlockTable } from '../pool/reader';
import { fileError } from '../util/errors';
import type { Xattr } from '../tree';

export type { InodeRow };

/** SQLite's page cache for a catalog read from a file (KiB): recipes are cached as parsed objects. */
const PAGE_CACHE_KIB = 2048;

export interface ViewRow {
  path: string;
  ino: number;
  kind: 'file' | 'tree';
  recipe: number | null;
  tree: number | null;
  size: number;
  mtime_sec: number;
  sha256: string | null;
  format: string;
  description: string;
}

/** Directories and content chunks kept unpacked. */
const DIR_CACHE = 1024;
const CONTENT_CACHE = 64;

export class Catalog {
  readonly db: Database.Database;
  private readonly recipeCache = new Map<number, Recipe>();
  private readonly stDir: Database.Statement;
  private readonly stContent: Database.Statement;
  private readonly dirs = new LRUCache<string, { byName: Map<string, InodeRow>; sorted: { name: Buffer; row: InodeRow }[] }>({ max: DIR_CACHE });
  private readonly contentChunks = new LRUCache<number, { size: number; blocks: Uint32Array }[]>({ max: CONTENT_CACHE });

  /** `source`: the catalog's file, or its bytes. `name` names it in errors. */
  constructor(source: string | Buffer, readonly name: string) {
    try {
      this.db = new Database(source, { readonly: true, fileMustExist: true });
      this.db.pragma('query_only = ON');
      this.db.pragma(`cache_size = -${PAGE_CACHE_KIB}`);
    } catch (e) {
      throw fileError(name, `catalog is not a valid SQLite database (${(e as Error).message})`);
    }
    let version: string | undefined;
    try {
      version = (this.db.prepare("SELECT value FROM meta WHERE key = 'schema_version'").get() as { value: string } | undefined)?.value;
    } catch (e) {
      throw fileError(name, `catalog is damaged (${(e as Error).message})`);
    }
    if (version === undefined) throw fileError(name, 'catalog has no schema version');
    const v = Number(version);
    if (!Number.isInteger(v) || v < 1) throw fileError(name, `catalog has a bad schema version "${version}"`);
    if (v > SCHEMA_VERSION) {
      throw fileError(name, `catalog schema version ${v} is newer than this uniso supports (${SCHEMA_VERSION}); upgrade uniso`);
    }
    try {
      this.stDir = this.db.prepare('SELECT size, data FROM dirs WHERE tree = ? AND ino = ?');
      this.stContent = this.db.prepare('SELECT count, size, data FROM contents WHERE chunk = ?');
      this.db.prepare('SELECT count(*) FROM views').get();
    } catch (e) {
      throw fileError(name, `catalog is damaged (${(e as Error).message})`);
    }
  }

  /** Run the SQLite integrity check; returns problems (empty when sound). */
  integrityProblems(): string[] {
    const rows = this.db.prepare('PRAGMA integrity_check').pluck().all() as string[];
    return rows.filter((r) => r !== 'ok');
  }

  meta(key: string): string | undefined {
    return (this.db.prepare('SELECT value FROM meta WHERE key = ?').pluck().get(key) as string | undefined);
  }

  allMeta(): Record<string, string> {
    const out: Record<string, string> = {};
    for (const r of this.db.prepare('SELECT key, value FROM meta ORDER BY key').all() as { key: string; value: string }[]) {
      out[r.key] = r.value;
    }
    return out;
  }

  blockTable(poolBytes: number): BlockTable {
    const damaged = (why: string) => fileError(this.name, `catalog is damaged (block table: ${why})`);
    const rows = this.db.prepare('SELECT chunk, count, size, data FROM blocks ORDER BY chunk').all() as
      { chunk: number; count: number; size: number; data: Buffer }[];
    const n = rows.reduce((s, r) => s + r.count, 0);
    const t: BlockTable = {
      count: n, offset: new Float64Array(n), csize: new Uint32Array(n), usize: new Uint32Array(n),
      flags: new Uint8Array(n), sxh: new Uint32Array(n), crc32: new Uint32Array(n), poolBytes,
    };
    let first = 0;
    let end = 0;
    for (const [k, r] of rows.entries()) {
      if (r.chunk !== k) throw damaged(`chunk ${k} is missing`);
      try {
        end = unpackBlocks(r, r.count, end, first, t, 'block table');
      } catch (e) {
        throw fileError(this.name, `catalog is damaged (${(e as Error).message})`);
      }
      first += r.count;
    }
    if (end > poolBytes) throw damaged(`blocks reach byte ${end} of a ${poolBytes}-byte pool`);
    return t;
  }

  /**
   * The blocks' digests (DIGEST_BYTES each, id order), or undefined when
   * the catalog has none (made by a uniso from before they were kept).
   */
  blockDigests(count: number): Buffer | undefined {
    let rows: { chunk: number; data: Buffer }[];
    try {
      rows = this.db.prepare('SELECT chunk, data FROM block_digests ORDER BY chunk').all() as { chunk: number; data: Buffer }[];
    } catch {
      return undefined;
    }
    const all = Buffer.concat(rows.map((r) => r.data));
    if (rows.some((r, k) => r.chunk !== k) || all.length !== count * DIGEST_BYTES) {
      throw fileError(this.name, `catalog is damaged (block digests: ${all.length} bytes for ${count} blocks)`);
    }
    return all;
  }

  /** Recipe `id`, with the recipes it includes (which the writer stored first: lower ids). */
  recipe(id: number): Recipe {
    let r = this.recipeCache.get(id);
    if (!r) {
      const row = this.db.prepare('SELECT data FROM recipes WHERE id = ?').get(id) as { data: Buffer } | undefined;
      if (!row) throw fileError(this.name, `catalog is missing recipe ${id}`);
      try {
        r = deserializeRecipe(row.data, `recipe ${id}`, (sub) => {
          if (!(sub >= 1 && sub < id)) throw new Error(`recipe ${id} includes recipe ${sub}, which it cannot`);
          return this.recipe(sub);
        });
      } catch (e) {
        throw fileError(this.name, `catalog is damaged (${(e as Error).message})`);
      }
      this.recipeCache.set(id, r);
    }
    return r;
  }

  views(): ViewRow[] {
    return this.db.prepare('SELECT * FROM views ORDER BY path').all() as ViewRow[];
  }

  families(): { family: string; tree: number }[] {
    return this.db.prepare('SELECT family, tree FROM families ORDER BY family').all() as { family: string; tree: number }[];
  }

  trees(): { id: number; name: string; entries: number; bytes: number }[] {
    return this.db.prepare('SELECT * FROM trees ORDER BY id').all() as { id: number; name: string; entries: number; bytes: number }[];
  }

  /** The root directory's own entry of a browsable tree. */
  rootInode(tree: number): InodeRow | undefined {
    const r = this.db.prepare('SELECT root_size, root FROM trees WHERE id = ?').get(tree) as { root_size: number | null; root: Buffer | null } | undefined;
    if (!r?.root || r.root_size === null) return undefined;
    return this.unpack({ size: r.root_size, data: r.root }, tree, 'root')[0]?.row;
  }

  private unpack(row: { size: number; data: Buffer }, tree: number, what: string): { name: Buffer; row: InodeRow }[] {
    try {
      return unpackDir(row, tree, `tree ${tree} ${what}`);
    } catch (e) {
      throw fileError(this.name, `catalog is damaged (${(e as Error).message})`);
    }
  }

  /** A directory's entries, unpacked once (cached). */
  private dir(tree: number, ino: number) {
    const key = `${tree}:${ino}`;
    let d = this.dirs.get(key);
    if (!d) {
      const row = this.stDir.get(tree, ino) as { size: number; data: Buffer } | undefined;
      const sorted = row ? this.unpack(row, tree, `directory ${ino}`) : [];
      d = { sorted, byName: new Map(sorted.map((e) => [e.name.toString('latin1'), e.row])) };
      this.dirs.set(key, d);
    }
    return d;
  }

  /** The entry `name` (bytes) of directory `parent`. */
  child(tree: number, parent: number, name: Buffer): InodeRow | undefined {
    return this.dir(tree, parent).byName.get(name.toString('latin1'));
  }

  /** A directory's entries in name order. */
  children(tree: number, parent: number): { name: Buffer; row: InodeRow }[] {
    return this.dir(tree, parent).sorted;
  }

  content(id: number): { size: number; blocks: Uint32Array } {
    const chunk = Math.floor((id - 1) / CONTENTS_PER_CHUNK);
    let list = this.contentChunks.get(chunk);
    if (!list) {
      const row = id >= 1 ? this.stContent.get(chunk) as { count: number; size: number; data: Buffer } | undefined : undefined;
      try {
        list = row ? unpackContents(row, row.count, `content chunk ${chunk}`) : [];
      } catch (e) {
        throw fileError(this.name, `catalog is damaged (${(e as Error).message})`);
      }
      this.contentChunks.set(chunk, list);
    }
    const c = list[(id - 1) % CONTENTS_PER_CHUNK];
    if (!c) throw fileError(this.name, `catalog content ${id} is missing or damaged`);
    return c;
  }

  xattrs(row: InodeRow): Xattr[] {
    return unpackXattrs(row.xattrs);
  }

  close(): void {
    if (this.db.open) this.db.close();
  }
}
