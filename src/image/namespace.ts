// The file namespace of a mounted universal image: directories synthesized
// from view paths, file views (recipes), and rootfs/ (a stored tree). It is
// what mount, extract, ls and serve all resolve paths against, and it knows
// no format: a view is a recipe, a tree file is its content's blocks.

import { LRUCache } from 'lru-cache';
import { Catalog, InodeRow, ViewRow } from '../catalog/reader';
import { BlockStore } from '../pool/reader';
import { RecipeReader } from '../recipe/reader';
import { Recipe, RecipeBuilder } from '../recipe/recipe';
import { ByteSource } from '../io/source';
import { EntryType, BLOCK_SIZE, ROOT_INO } from '../tree';

/**
 * Readahead of a file read from start to end (mount, serve, extract,
 * verify): blocks are prefetched this far ahead of the reader; a remote
 * pool is told further ahead when it asks (ByteSource.announceAhead).
 */
export const SEQUENTIAL_READAHEAD = 2 << 20;

export const TREE_INO_BASE = 1 << 24;

export type Node =
  | { kind: 'dir'; ino: number; path: string; children: Map<string, Node>; mtimeSec: number }
  | { kind: 'view'; ino: number; path: string; view: ViewRow }
  | { kind: 'tree'; ino: number; path: string; tree: number; row: InodeRow };

export interface Attr {
  ino: number;
  mode: number; // including the file type bits
  uid: number;
  gid: number;
  size: number;
  nlink: number;
  rdev: number;
  mtimeMs: number;
  blocks: number; // 512-byte units
}

const S_IFDIR = 0o040000, S_IFREG = 0o100000, S_IFLNK = 0o120000, S_IFCHR = 0o020000,
  S_IFBLK = 0o060000, S_IFIFO = 0o010000, S_IFSOCK = 0o140000;

const TYPE_BITS: Record<number, number> = {
  [EntryType.File]: S_IFREG, [EntryType.Dir]: S_IFDIR, [EntryType.Symlink]: S_IFLNK, [EntryType.CharDev]: S_IFCHR,
  [EntryType.BlockDev]: S_IFBLK, [EntryType.Fifo]: S_IFIFO, [EntryType.Socket]: S_IFSOCK,
};

export class NotFound extends Error {
  readonly code = 'ENOENT';
}

export class Namespace {
  readonly root: Node & { kind: 'dir' };
  private readonly byPath = new LRUCache<string, Node>({ max: 65536 });
  private readonly recipes = new LRUCache<number, Recipe>({ max: 4096 });
  private readonly allocated = new LRUCache<number, number>({ max: 65536 });

  constructor(readonly catalog: Catalog, readonly blocks: BlockStore) {
    const views = catalog.views();
    const mtime = views.reduce((m, v) => Math.max(m, v.mtime_sec), 0);
    this.root = { kind: 'dir', ino: 1, path: '', children: new Map(), mtimeSec: mtime };
    let nextIno = views.reduce((m, v) => Math.max(m, v.ino), 1) + 1;
    for (const v of views) {
      const parts = v.path.split('/');
      let dir = this.root;
      for (let i = 0; i < parts.length - 1; i++) {
        let d = dir.children.get(parts[i]);
        if (!d) {
          d = { kind: 'dir', ino: nextIno++, path: parts.slice(0, i + 1).join('/'), children: new Map(), mtimeSec: mtime };
          dir.children.set(parts[i], d);
        }
        if (d.kind !== 'dir') throw new Error(`view ${v.path} is below a file`);
        dir = d;
      }
      const leaf = parts[parts.length - 1];
      if (v.kind === 'tree') {
        const row = catalog.rootInode(v.tree!);
        if (!row) throw new Error(`tree ${v.tree} has no root`);
        dir.children.set(leaf, { kind: 'tree', ino: TREE_INO_BASE + ROOT_INO, path: v.path, tree: v.tree!, row });
      } else {
        dir.children.set(leaf, { kind: 'view', ino: v.ino, path: v.path, view: v });
      }
    }
  }

  /** Resolve "/a/b" (UTF-8, as FUSE gives it); undefined if absent. */
  lookup(p: string): Node | undefined {
    const key = p.replace(/\/+$/, '') || '/';
    const hit = this.byPath.get(key);
    if (hit) return hit;
    const parts = key.split('/').filter(Boolean);
    let node: Node = this.root;
    for (let i = 0; i < parts.length; i++) {
      const part = parts[i];
      if (node.kind === 'dir') {
        const next = node.children.get(part);
        if (!next) return undefined;
        node = next;
      } else if (node.kind === 'tree') {
        if (node.row.type !== EntryType.Dir) return undefined;
        const row = this.catalog.child(node.tree, node.row.ino, Buffer.from(part, 'utf8'));
        if (!row) return undefined;
        node = { kind: 'tree', ino: TREE_INO_BASE + row.ino, path: `${node.path}/${part}`, tree: node.tree, row };
      } else {
        return undefined;
      }
    }
    this.byPath.set(key, node);
    return node;
  }

  readdir(node: Node): [string, Node][] {
    if (node.kind === 'dir') return [...node.children.entries()].sort((a, b) => (a[0] < b[0] ? -1 : 1));
    if (node.kind === 'tree' && node.row.type === EntryType.Dir) {
      const out: [string, Node][] = [];
      for (const { name: bytes, row } of this.catalog.children(node.tree, node.row.ino)) {
        const name = bytes.toString('utf8');
        out.push([name, { kind: 'tree', ino: TREE_INO_BASE + row.ino, path: `${node.path}/${name}`, tree: node.tree, row }]);
      }
      return out;
    }
    throw new Error('not a directory');
  }

  isDir(node: Node): boolean {
    return node.kind === 'dir' || (node.kind === 'tree' && node.row.type === EntryType.Dir);
  }

  attr(node: Node): Attr {
    switch (node.kind) {
      case 'dir': {
        const subdirs = [...node.children.values()].filter((c) => this.isDir(c)).length;
        return { ino: node.ino, mode: S_IFDIR | 0o555, uid: 0, gid: 0, size: 4096, nlink: 2 + subdirs, rdev: 0,
          mtimeMs: node.mtimeSec * 1000, blocks: 8 };
      }
      case 'view':
        return { ino: node.ino, mode: S_IFREG | 0o444, uid: 0, gid: 0, size: node.view.size, nlink: 1, rdev: 0,
          mtimeMs: node.view.mtime_sec * 1000, blocks: Math.ceil(node.view.size / 512) };
      case 'tree': {
        const r = node.row;
        const rdev = r.type === EntryType.CharDev || r.type === EntryType.BlockDev
          ? ((r.rdev_minor & 0xff) | ((r.rdev_major & 0xfff) << 8) | ((r.rdev_minor & ~0xff) << 12)) >>> 0 : 0;
        return { ino: node.ino, mode: (TYPE_BITS[r.type] ?? S_IFREG) | (r.mode & 0o7777), uid: r.uid, gid: r.gid,
          size: r.type === EntryType.Dir ? 4096 : r.size, nlink: r.nlink, rdev,
          mtimeMs: r.mtime_sec * 1000 + Math.floor(r.mtime_nsec / 1e6), blocks: this.allocatedSectors(r) };
      }
    }
  }

  /** Extended attributes of a rootfs entry (views have none). */
  xattrs(node: Node): Map<string, Buffer> {
    const out = new Map<string, Buffer>();
    if (node.kind === 'tree') {
      for (const x of this.catalog.xattrs(node.row)) out.set(Buffer.from(x.name, 'latin1').toString('utf8'), x.value);
    }
    return out;
  }

  /** 512-byte units a file occupies: holes (all-zero blocks) of sparse files count nothing. */
  private allocatedSectors(r: InodeRow): number {
    if (r.type !== EntryType.File || !r.sparse || !r.content) return Math.ceil(r.size / 512);
    let n = this.allocated.get(r.content);
    if (n === undefined) {
      const c = this.catalog.content(r.content);
      let bytes = 0;
      for (let i = 0; i < c.blocks.length; i++) if (c.blocks[i]) bytes += Math.min(BLOCK_SIZE, c.size - i * BLOCK_SIZE);
      n = Math.ceil(bytes / 512);
      this.allocated.set(r.content, n);
    }
    return n;
  }

  readlink(node: Node): string {
    if (node.kind !== 'tree' || node.row.type !== EntryType.Symlink) throw new Error('not a symlink');
    return (node.row.target ?? Buffer.alloc(0)).toString('utf8');
  }

  /** A reader of a file node's bytes (`readahead`: bytes to prefetch for sequential reads; see SEQUENTIAL_READAHEAD). */
  source(node: Node, readahead = 0): ByteSource {
    if (node.kind === 'view') {
      if (node.view.recipe === null) throw new Error('view has no recipe');
      return new RecipeReader(this.catalog.recipe(node.view.recipe), this.blocks, { readahead });
    }
    if (node.kind === 'tree' && node.row.type === EntryType.File) {
      return new RecipeReader(this.contentRecipe(node.row.content ?? 0, node.row.size), this.blocks, { readahead });
    }
    throw new Error('not a regular file');
  }

  private contentRecipe(contentId: number, size: number): Recipe {
    if (contentId === 0) return new RecipeBuilder().build();
    let r = this.recipes.get(contentId);
    if (!r) {
      const c = this.catalog.content(contentId);
      if (c.size !== size) throw new Error(`content ${contentId} size mismatch`);
      const rb = new RecipeBuilder();
      for (let i = 0; i < c.blocks.length; i++) rb.raw(c.blocks[i], 0, Math.min(BLOCK_SIZE, c.size - i * BLOCK_SIZE));
      r = rb.build();
      this.recipes.set(contentId, r);
    }
    return r;
  }

  /** Every file view (not rootfs), in path order. */
  fileViews(): ViewRow[] {
    return this.catalog.views().filter((v) => v.kind === 'file');
  }
}
