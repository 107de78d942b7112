// Catalog writer (build time): collects the pool's block table, contents,
// trees, recipes and views into a fresh SQLite file, then VACUUMs
// it into its final, deterministic form. Block table, contents and
// directories are packed (packed.ts).

import { DIGEST_BYTES } from '../pool/digests';
import Database from 'better-sqlite3';
import { XXHash128 } from 'xxhash-addon';
import { BLOCKS_PER_CHUNK, CONTENTS_PER_CHUNK, SCHEMA, SCHEMA_VERSION } from './schema';
import { packBlocks, packContents, packDir, StoredBlock } from './packed';
import { serializeRecipe, Recipe } from '../recipe/recipe';
import type { Content } from '../tree';
import { ROOT_INO, Tree } from '../tree';

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
  private readonly recipeOf = new Map<Recipe, number>();
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

  writeBlocks(blocks: readonly StoredBlock[]): void {
    const ins = this.db.prepare('INSERT INTO blocks(chunk, count, size, data) VALUES (?, ?, ?, ?)');
    this.db.transaction(() => {
      let end = 0;
      for (let k = 0; k * BLOCKS_PER_CHUNK < blocks.length; k++) {
        const part = blocks.slice(k * BLOCKS_PER_CHUNK, (k + 1) * BLOCKS_PER_CHUNK);
        const row = packBlocks(part, end);
        ins.run(k, part.length, row.size, row.data);
        const last = part[part.length - 1];
        end = last.offset + last.csize;
      }
    })();
  }

  /** The blocks' digests (DIGEST_BYTES each, id order), BLOCKS_PER_CHUNK a row. */
  writeBlockDigests(digests: Buffer): void {
    const ins = this.db.prepare('INSERT INTO block_digests(chunk, data) VALUES (?, ?)');
    const row = BLOCKS_PER_CHUNK * DIGEST_BYTES;
    this.db.transaction(() => {
      for (let k = 0; k * row < digests.length; k++) ins.run(k, digests.subarray(k * row, (k + 1) * row));
    })();
  }

  /** Contents (id = index + 1). */
  writeContents(contents: readonly Content[]): void {
    const ins = this.db.prepare('INSERT INTO contents(chunk, count, size, data) VALUES (?, ?, ?, ?)');
    this.db.transaction(() => {
      for (let k = 0; k * CONTENTS_PER_CHUNK < contents.length; k++) {
        const part = contents.slice(k * CONTENTS_PER_CHUNK, (k + 1) * CONTENTS_PER_CHUNK);
        part.forEach((c, i) => { if (c.id !== k * CONTENTS_PER_CHUNK + i + 1) throw new Error(`content ${c.id} out of order`); });
        const row = packContents(part);
        ins.run(k, part.length, row.size, row.data);
      }
    })();
  }

  /**
   * Store a tree under `name`; returns its id. Its entries are stored (one
   * row per directory) only when `browsable`: a view shows it.
   */
  writeTree(name: string, tree: Tree, browsable = true): number {
    let bytes = 0;
    for (const i of tree.inodes.values()) if (i.content) bytes += i.content.size;
    const root = browsable ? packDir([['', tree.root]]) : undefined;
    const id = Number(this.db.prepare('INSERT INTO trees(name, entries, bytes, root_size, root) VALUES (?, ?, ?, ?, ?)')
      .run(name, tree.entryCount, bytes, root?.size ?? null, root?.data ?? null).lastInsertRowid);
    if (!browsable) return id;
    const ins = this.db.prepare('INSERT INTO dirs(tree, ino, size, data) VALUES (?, ?, ?, ?)');
    this.db.transaction(() => {
      for (const dir of tree.dirs.keys()) {
        const row = packDir(tree.sortedChildren(dir).map(([n, ino]) => [n, tree.inodes.get(ino)!]));
        ins.run(id, dir, row.size, row.data);
      }
    })();
    if (!tree.dirs.has(ROOT_INO)) throw new Error('tree has no root directory');
    return id;
  }

  setFamily(family: string, treeId: number): void {
    this.db.prepare('INSERT OR REPLACE INTO families(family, tree) VALUES (?, ?)').run(family, treeId);
  }

  /** Store a recipe (deduplicated), after the recipes it includes; returns its id. */
  addRecipe(r: Recipe): number {
    const known = this.recipeOf.get(r);
    if (known !== undefined) return known;
    for (const sub of r.subs) this.addRecipe(sub);
    const data = serializeRecipe(r, (sub) => this.recipeOf.get(sub)!);
    const key = XXHash128.hash(data).toString('latin1');
    let id = this.recipeIds.get(key);
    if (id === undefined) {
      id = this.recipeIds.size + 1;
      this.insRecipe.run(id, r.size, data);
      this.recipeIds.set(key, id);
    }
    this.recipeOf.set(r, id);
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
