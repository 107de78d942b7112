// Catalog reader (mount, extract, serve, verify): opens a catalog (a SQLite
// file, read a page at a time through a small page cache, or bytes held in
// memory), checks its schema version, and answers the queries the daemon
// and commands need.

import Database from 'better-sqlite3';
import { SCHEMA_VERSION } from './schema';
import { unpackXattrs } from './xattrs';
import { deserializeRecipe, Recipe } from '../recipe/recipe';
import { BlockTable } from '../pool/reader';
import { fileError } from '../util/errors';
import type { EntryType, Xattr } from '../tree';

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

export interface InodeRow {
  tree: number;
  ino: number;
  type: EntryType;
  mode: number;
  uid: number;
  gid: number;
  mtime_sec: number;
  mtime_nsec: number;
  nlink: number;
  size: number;
  rdev_major: number;
  rdev_minor: number;
  target: Buffer | null;
  content: number | null;
  xattrs: Buffer | null;
  sparse: number;
}

export class Catalog {
  readonly db: Database.Database;
  private readonly recipeCache = new Map<number, Recipe>();
  private readonly stInode: Database.Statement;
  private readonly stChild: Database.Statement;
  private readonly stChildren: Database.Statement;
  private readonly stContent: Database.Statement;

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
      this.stInode = this.db.prepare('SELECT * FROM inodes WHERE tree = ? AND ino = ?');
      this.stChild = this.db.prepare('SELECT ino FROM dirents WHERE tree = ? AND parent = ? AND name = ?').pluck();
      this.stChildren = this.db.prepare('SELECT name, ino FROM dirents WHERE tree = ? AND parent = ? ORDER BY name');
      this.stContent = this.db.prepare('SELECT size, blocks FROM contents WHERE id = ?');
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
    const n = (this.db.prepare('SELECT count(*) FROM blocks').pluck().get() as number);
    const t: BlockTable = {
      count: n, offset: new Float64Array(n), csize: new Uint32Array(n), usize: new Uint32Array(n),
      flags: new Uint8Array(n), sxh: new Uint32Array(n), crc32: new Uint32Array(n), adler32: new Uint32Array(n), poolBytes,
    };
    let expect = 1;
    let end = 0;
    for (const row of this.db.prepare('SELECT id, offset, csize, usize, flags, sxh, crc32, adler32 FROM blocks ORDER BY id')
      .raw().iterate() as Iterable<number[]>) {
      const [id, offset, csize, usize, flags, sxh, crc, adler] = row;
      if (id !== expect || offset < end || offset + csize > poolBytes) {
        throw fileError(this.name, `catalog block table is damaged (block ${id})`);
      }
      const i = id - 1;
      t.offset[i] = offset; t.csize[i] = csize; t.usize[i] = usize; t.flags[i] = flags;
      t.sxh[i] = sxh; t.crc32[i] = crc; t.adler32[i] = adler;
      expect++;
      end = offset + csize;
    }
    return t;
  }

  recipe(id: number): Recipe {
    let r = this.recipeCache.get(id);
    if (!r) {
      const row = this.db.prepare('SELECT data FROM recipes WHERE id = ?').get(id) as { data: Buffer } | undefined;
      if (!row) throw fileError(this.name, `catalog is missing recipe ${id}`);
      r = deserializeRecipe(row.data, `${this.name}: recipe ${id}`);
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

  inode(tree: number, ino: number): InodeRow | undefined {
    return this.stInode.get(tree, ino) as InodeRow | undefined;
  }

  child(tree: number, parent: number, name: Buffer): number | undefined {
    return this.stChild.get(tree, parent, name) as number | undefined;
  }

  children(tree: number, parent: number): { name: Buffer; ino: number }[] {
    return this.stChildren.all(tree, parent) as { name: Buffer; ino: number }[];
  }

  content(id: number): { size: number; blocks: Uint32Array } {
    const row = this.stContent.get(id) as { size: number; blocks: Buffer } | undefined;
    if (!row || row.blocks.length % 4 !== 0) throw fileError(this.name, `catalog content ${id} is missing or damaged`);
    const blocks = new Uint32Array(row.blocks.length / 4);
    for (let i = 0; i < blocks.length; i++) blocks[i] = row.blocks.readUInt32LE(i * 4);
    return { size: row.size, blocks };
  }

  xattrs(row: InodeRow): Xattr[] {
    return unpackXattrs(row.xattrs);
  }

  close(): void {
    if (this.db.open) this.db.close();
  }
}
