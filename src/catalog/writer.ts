// Catalog writer (build time): collects the pool's block table, contents,
// trees, recipes and views into a fresh SQLite file, then VACUUMs
// it into its final, deterministic form.

import Database from 'better-sqlite3';
import { XXHash128 } from 'xxhash-addon';
import { SCHEMA, SCHEMA_VERSION } from './schema';
import { packXattrs } from './xattrs';
import { serializeRecipe, Recipe } from '../recipe/recipe';
import type { BlockInfo } from '../pool/format';
import type { Content } from '../tree';
import { EntryType, Tree } from '../tree';

export interface ViewRecord {
  path: string;
  kind: 'file' | 'tree';
  recipe?: number;
  tree?: number;
  size: number;
  mtimeSec: number;
  sha256?: string;
  format: string;
  description: string;
}

export class CatalogWriter {
  private readonly db: Database.Database;
  private readonly recipeIds = new Map<string, number>();
  private readonly insRecipe: Database.Statement;
  private nextViewIno = 2;

  constructor(readonly path: string) {
    this.db = new Database(path);
    this.db.pragma('journal_mode = OFF');
    this.db.pragma('synchronous = OFF');
    this.db.pragma('page_size = 4096');
    this.db.exec(SCHEMA);
    this.setMeta('schema_version', String(SCHEMA_VERSION));
    this.insRecipe = this.db.prepare('INSERT INTO recipes(id, size, data) VALUES (?, ?, ?)');
  }

  setMeta(key: string, value: string): void {
    this.db.prepare('INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)').run(key, value);
  }

  writeBlocks(blocks: BlockInfo[], hashes: Buffer[]): void {
    const ins = this.db.prepare(
      'INSERT INTO blocks(id, offset, csize, usize, flags, sxh, crc32, adler32, hash) VALUES (?,?,?,?,?,?,?,?,?)');
    this.db.transaction(() => {
      blocks.forEach((b, i) => ins.run(i + 1, b.offset, b.csize, b.usize, b.flags, b.sxh, b.crc32, b.adler32, hashes[i]));
    })();
  }

  writeContents(contents: Content[]): void {
    const ins = this.db.prepare('INSERT INTO contents(id, size, blocks) VALUES (?, ?, ?)');
    this.db.transaction(() => {
      for (const c of contents) {
        const packed = Buffer.allocUnsafe(c.blocks.length * 4);
        for (let i = 0; i < c.blocks.length; i++) packed.writeUInt32LE(c.blocks[i], i * 4);
        ins.run(c.id, c.size, packed);
      }
    })();
  }

  /** Store a tree under `name`; returns its id. */
  writeTree(name: string, tree: Tree): number {
    let bytes = 0;
    for (const i of tree.inodes.values()) if (i.content) bytes += i.content.size;
    const id = Number(this.db.prepare('INSERT INTO trees(name, entries, bytes) VALUES (?, ?, ?)')
      .run(name, tree.entryCount, bytes).lastInsertRowid);
    const insI = this.db.prepare(`INSERT INTO inodes(tree, ino, type, mode, uid, gid, mtime_sec, mtime_nsec, nlink,
      size, rdev_major, rdev_minor, target, content, xattrs, sparse) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)`);
    const insD = this.db.prepare('INSERT INTO dirents(tree, parent, name, ino) VALUES (?, ?, ?, ?)');
    this.db.transaction(() => {
      for (const i of tree.inodes.values()) {
        const sec = i.mtimeNs / 1_000_000_000n;
        const nsec = i.mtimeNs - sec * 1_000_000_000n;
        const size = i.type === EntryType.Symlink ? Buffer.byteLength(i.target ?? '', 'latin1') : i.content?.size ?? 0;
        insI.run(id, i.ino, i.type, i.mode, i.uid, i.gid, sec, nsec, i.nlink, size, i.rdevMajor, i.rdevMinor,
          i.target !== undefined ? Buffer.from(i.target, 'latin1') : null, i.content?.id ?? null,
          packXattrs(i.xattrs), i.sparse ? 1 : 0);
      }
      for (const [dir, kids] of tree.dirs) {
        for (const [name, ino] of kids) insD.run(id, dir, Buffer.from(name, 'latin1'), ino);
      }
    })();
    return id;
  }

  setFamily(family: string, treeId: number): void {
    this.db.prepare('INSERT OR REPLACE INTO families(family, tree) VALUES (?, ?)').run(family, treeId);
  }

  /** Store a recipe (deduplicated); returns its id. */
  addRecipe(r: Recipe): number {
    const data = serializeRecipe(r);
    const key = XXHash128.hash(data).toString('latin1');
    const known = this.recipeIds.get(key);
    if (known !== undefined) return known;
    const id = this.recipeIds.size + 1;
    this.insRecipe.run(id, r.size, data);
    this.recipeIds.set(key, id);
    return id;
  }

  addView(v: ViewRecord): void {
    this.db.prepare(`INSERT INTO views(path, ino, kind, recipe, tree, size, mtime_sec, sha256, format, description)
      VALUES (?,?,?,?,?,?,?,?,?,?)`).run(v.path, this.nextViewIno++, v.kind, v.recipe ?? null, v.tree ?? null,
      v.size, v.mtimeSec, v.sha256 ?? null, v.format, v.description);
  }

  setViewSha(path: string, sha256: string): void {
    this.db.prepare('UPDATE views SET sha256 = ? WHERE path = ?').run(sha256, path);
  }

  /** Compact into `finalPath` (deterministic page layout) and close. */
  finish(finalPath: string): void {
    this.db.exec(`VACUUM INTO '${finalPath.replace(/'/g, "''")}'`);
    this.db.close();
  }

  close(): void {
    if (this.db.open) this.db.close();
  }

  /** Read access to what has been written so far (used while computing checksums). */
  get database(): Database.Database {
    return this.db;
  }
}
