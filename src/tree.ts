// The Tree model: a normalized appliance file system (inodes + directory
// entries, hard links as shared inodes), plus variants (a tree with a
// format family's overlay applied). Names and link targets are byte strings
// held as latin1 JS strings: one char per byte, so comparison is bytewise
// and nothing is lost for names that are not UTF-8.

export enum EntryType {
  File = 1,
  Dir = 2,
  Symlink = 3,
  CharDev = 4,
  BlockDev = 5,
  Fifo = 6,
  Socket = 7,
}

export interface Xattr {
  name: string; // full name, e.g. "security.capability" (latin1 bytes)
  value: Buffer;
}

/** File content: 64 KiB file-relative pool blocks (0 = all-zero block). */
export interface Content {
  id: number; // content id in the pool (deduplicated)
  size: number;
  blocks: Uint32Array;
}

export interface Inode {
  ino: number; // tree-local number, root = 1
  type: EntryType;
  mode: number; // permission bits including setuid/setgid/sticky (07777)
  uid: number;
  gid: number;
  mtimeNs: bigint;
  rdevMajor: number;
  rdevMinor: number;
  target?: string; // symlink target (latin1 bytes)
  content?: Content; // regular files
  xattrs: readonly Xattr[]; // sorted by name; never changed in place (trees share the lists)
  sparse: boolean; // the source stored holes for this file
  nlink: number; // number of directory entries naming it (dirs: 2 + subdirs)
}

/**
 * An inode record with every field in one fixed order: all inodes share one
 * object shape, their fields held in the object itself (an object made by
 * spreading keeps them in a separate property array: ~90 bytes more per
 * inode, per tree).
 */
function inodeOf(f: Omit<Inode, 'ino' | 'nlink'>, ino: number, nlink: number): Inode {
  return {
    ino, type: f.type, mode: f.mode, uid: f.uid, gid: f.gid, mtimeNs: f.mtimeNs, rdevMajor: f.rdevMajor, rdevMinor: f.rdevMinor,
    target: f.target, content: f.content, xattrs: f.xattrs, sparse: f.sparse, nlink,
  };
}

export const BLOCK_SIZE = 65536;

/** The empty xattr list every inode without xattrs shares. */
export const NO_XATTRS: readonly Xattr[] = Object.freeze([]);

/** Whole seconds of a time in nanoseconds, rounded down (pre-1970 times too). */
export function floorSeconds(ns: bigint): bigint {
  const s = ns / 1_000_000_000n;
  return ns < 0n && s * 1_000_000_000n !== ns ? s - 1n : s;
}
export const ROOT_INO = 1;

/** latin1 <-> UTF-8 conversions for byte-string names. */
export function bytesToName(b: Buffer): string {
  return b.toString('latin1');
}
export function nameToBytes(s: string): Buffer {
  return Buffer.from(s, 'latin1');
}
export function utf8ToName(s: string): string {
  return Buffer.from(s, 'utf8').toString('latin1');
}
export function nameToUtf8(s: string): string {
  return Buffer.from(s, 'latin1').toString('utf8');
}

export function fileSize(inode: Inode): number {
  return inode.content ? inode.content.size : 0;
}

export class Tree {
  readonly inodes = new Map<number, Inode>();
  /** directory ino -> (name -> child ino), kept sorted on demand */
  readonly dirs = new Map<number, Map<string, number>>();
  private nextIno = 2;

  constructor(rootMode = 0o755, rootMtimeNs = 0n) {
    this.inodes.set(ROOT_INO, inodeOf({
      type: EntryType.Dir, mode: rootMode, uid: 0, gid: 0, mtimeNs: rootMtimeNs,
      rdevMajor: 0, rdevMinor: 0, xattrs: NO_XATTRS, sparse: false,
    }, ROOT_INO, 2));
    this.dirs.set(ROOT_INO, new Map());
  }

  /** One more than the highest inode number ever given: an index limit for per-inode typed arrays. */
  get inoLimit(): number {
    return this.nextIno;
  }

  get root(): Inode {
    return this.inodes.get(ROOT_INO)!;
  }

  newInode(fields: Omit<Inode, 'ino' | 'nlink'>): Inode {
    const inode = inodeOf(fields, this.nextIno++, 0);
    this.inodes.set(inode.ino, inode);
    if (inode.type === EntryType.Dir) this.dirs.set(inode.ino, new Map());
    return inode;
  }

  children(dirIno: number): Map<string, number> {
    const d = this.dirs.get(dirIno);
    if (!d) throw new Error(`inode ${dirIno} is not a directory`);
    return d;
  }

  /** Sorted (bytewise) list of [name, ino] of a directory. */
  sortedChildren(dirIno: number): [string, number][] {
    return [...this.children(dirIno).entries()].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  }

  lookup(path: string): Inode | undefined {
    let ino = ROOT_INO;
    for (const part of splitPath(path)) {
      const d = this.dirs.get(ino);
      if (!d) return undefined;
      const next = d.get(part);
      if (next === undefined) return undefined;
      ino = next;
    }
    return this.inodes.get(ino);
  }

  /** Link `ino` under `dirIno` as `name`, replacing (and unlinking) any existing entry. */
  link(dirIno: number, name: string, ino: number): void {
    const d = this.children(dirIno);
    const old = d.get(name);
    if (old !== undefined) this.unlink(dirIno, name);
    d.set(name, ino);
    const inode = this.inodes.get(ino)!;
    if (inode.type === EntryType.Dir) {
      inode.nlink = 2;
      this.inodes.get(dirIno)!.nlink++;
    } else {
      inode.nlink++;
    }
  }

  unlink(dirIno: number, name: string): void {
    const d = this.children(dirIno);
    const ino = d.get(name);
    if (ino === undefined) return;
    d.delete(name);
    const inode = this.inodes.get(ino)!;
    if (inode.type === EntryType.Dir) {
      this.inodes.get(dirIno)!.nlink--;
      for (const childName of [...this.children(ino).keys()]) this.unlink(ino, childName);
      this.dirs.delete(ino);
      this.inodes.delete(ino);
    } else {
      inode.nlink--;
      if (inode.nlink === 0) this.inodes.delete(ino);
    }
  }

  /**
   * Make sure every directory on `dirPath` exists, creating missing ones
   * with default metadata (0755 root:root, mtime `mtimeNs`). Returns the ino.
   */
  ensureDir(parts: string[], mtimeNs = 0n): number {
    let ino = ROOT_INO;
    for (const part of parts) {
      const d = this.children(ino);
      let next = d.get(part);
      if (next !== undefined && this.inodes.get(next)!.type !== EntryType.Dir) {
        this.unlink(ino, part);
        next = undefined;
      }
      if (next === undefined) {
        const inode = this.newInode({
          type: EntryType.Dir, mode: 0o755, uid: 0, gid: 0, mtimeNs,
          rdevMajor: 0, rdevMinor: 0, xattrs: NO_XATTRS, sparse: false,
        });
        this.link(ino, part, inode.ino);
        next = inode.ino;
      }
      ino = next;
    }
    return ino;
  }

  /** Depth-first walk in sorted order: (path parts, inode, parent ino). Root first. */
  *walk(): Generator<{ path: string[]; inode: Inode; parent: number; name: string }> {
    const dirPaths = new Map<number, string[]>(); // directories walked so far: their paths
    let first = true;
    for (const e of this.walkEntries()) {
      const path = first ? [] : [...dirPaths.get(e.parent)!, e.name];
      first = false;
      if (e.inode.type === EntryType.Dir) dirPaths.set(e.inode.ino, path);
      yield { path, ...e };
    }
  }

  /**
   * The walk without the paths (a path array per entry costs memory and
   * time on large trees): (inode, parent ino, name). Root first.
   */
  *walkEntries(): Generator<{ inode: Inode; parent: number; name: string }> {
    const stack: { ino: number; parent: number; name: string }[] = [{ ino: ROOT_INO, parent: ROOT_INO, name: '' }];
    while (stack.length) {
      const e = stack.pop()!;
      const inode = this.inodes.get(e.ino)!;
      yield { inode, parent: e.parent, name: e.name };
      if (inode.type === EntryType.Dir) {
        const kids = this.sortedChildren(e.ino);
        for (let i = kids.length - 1; i >= 0; i--) stack.push({ ino: kids[i][1], parent: e.ino, name: kids[i][0] });
      }
    }
  }

  get entryCount(): number {
    let n = 0;
    for (const d of this.dirs.values()) n += d.size;
    return n + 1;
  }

  /** Newest mtime in the tree: the fixed timestamp of generated files. */
  newestMtimeNs(): bigint {
    let m = 0n;
    for (const i of this.inodes.values()) if (i.mtimeNs > m) m = i.mtimeNs;
    return m;
  }

  /**
   * Whether the inodes are already numbered 1..N in walk order, as
   * renumbered() would number them (a directory read in sorted order is).
   */
  inWalkOrder(): boolean {
    let next = ROOT_INO;
    for (const { inode } of this.walkEntries()) {
      if (inode.ino === next) next++;
      else if (inode.ino > next || inode.type === EntryType.Dir) return false; // a lower number: a further name of a hard link
    }
    return next === this.nextIno && this.inodes.size === next - 1;
  }

  /**
   * Renumber inodes 1..N in walk order, so that two trees with the same
   * content get the same numbers whatever order they were built in.
   */
  renumbered(): Tree {
    const t = new Tree();
    const map = new Map<number, number>();
    map.set(ROOT_INO, ROOT_INO);
    Object.assign(t.root, { ...this.root, ino: ROOT_INO, nlink: 2 });
    for (const { inode, parent, name } of this.walkEntries()) {
      if (inode.ino === ROOT_INO) continue;
      let newIno = map.get(inode.ino);
      if (newIno === undefined) {
        const { ino: _ino, nlink: _n, ...fields } = inode;
        newIno = t.newInode(fields).ino;
        map.set(inode.ino, newIno);
      }
      t.link(map.get(parent)!, name, newIno);
    }
    return t;
  }

  /**
   * Deep copy of the tree's structure: inodes and directories are copied,
   * contents and xattr lists (never changed in place) are shared. New
   * inodes of the copy are numbered after every number this tree gave.
   */
  clone(): Tree {
    const t = new Tree();
    t.inodes.clear();
    t.dirs.clear();
    for (const [ino, i] of this.inodes) t.inodes.set(ino, inodeOf(i, i.ino, i.nlink));
    for (const [ino, d] of this.dirs) t.dirs.set(ino, new Map(d));
    t.nextIno = this.nextIno;
    return t;
  }
}

/** Split a relative or absolute path into components, dropping '' and '.'. */
export function splitPath(p: string): string[] {
  return p.split('/').filter((x) => x !== '' && x !== '.');
}

const WHITEOUT_PREFIX = '.wh.';
const OPAQUE_MARKER = '.wh..wh..opq';

function isOverlayfsWhiteout(i: Inode): boolean {
  return i.type === EntryType.CharDev && i.rdevMajor === 0 && i.rdevMinor === 0;
}

/**
 * A variant: `base` with the files of `overlay` laid over it. Files and
 * symlinks replace, directories merge (the overlay's metadata wins), and
 * both whiteout conventions delete: overlayfs (a 0/0 character device) and
 * OCI/AUFS (".wh.NAME", and ".wh..wh..opq" to hide a whole directory).
 */
export function applyOverlay(base: Tree, overlay: Tree): Tree {
  const t = base.clone();
  const map = new Map<number, number>([[ROOT_INO, ROOT_INO]]);
  const clearIfOpaque = (overlayDir: number, treeDir: number) => {
    if (overlay.children(overlayDir).has(OPAQUE_MARKER)) {
      for (const name of [...t.children(treeDir).keys()]) t.unlink(treeDir, name);
    }
  };
  clearIfOpaque(ROOT_INO, ROOT_INO);
  for (const { inode, parent, name } of overlay.walkEntries()) {
    if (inode.ino === ROOT_INO) continue;
    const tParent = map.get(parent);
    if (tParent === undefined) continue; // under a deleted path
    if (name === OPAQUE_MARKER) continue;
    if (name.startsWith(WHITEOUT_PREFIX)) {
      t.unlink(tParent, name.slice(WHITEOUT_PREFIX.length));
      continue;
    }
    if (isOverlayfsWhiteout(inode)) {
      t.unlink(tParent, name);
      continue;
    }
    const known = map.get(inode.ino);
    if (known !== undefined && inode.type !== EntryType.Dir) {
      t.link(tParent, name, known);
      continue;
    }
    const { ino: _ino, nlink: _nlink, ...fields } = inode;
    if (inode.type === EntryType.Dir) {
      const existing = t.children(tParent).get(name);
      if (existing !== undefined && t.inodes.get(existing)!.type === EntryType.Dir) {
        const e = t.inodes.get(existing)!;
        Object.assign(e, { mode: fields.mode, uid: fields.uid, gid: fields.gid, mtimeNs: fields.mtimeNs, xattrs: fields.xattrs });
        map.set(inode.ino, existing);
        clearIfOpaque(inode.ino, existing);
        continue;
      }
      const d = t.newInode(fields);
      t.link(tParent, name, d.ino);
      map.set(inode.ino, d.ino);
      continue;
    }
    const n = t.newInode(fields);
    t.link(tParent, name, n.ino);
    map.set(inode.ino, n.ino);
  }
  return t.renumbered();
}
