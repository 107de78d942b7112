// What a format module gets to build its views, and what it returns. A
// format reads the variant tree of its family and returns views (path +
// recipe: literals, zero runs and pool blocks). It never reads or writes
// files itself.

import { Tree } from '../tree';
import { Recipe } from '../recipe/recipe';
import { BlockInfo } from '../pool/format';
import { GzipCompiler } from './gzip';
import { ApplianceNames } from './naming';
import { Piece } from './pieces';
import type { PoolWriter } from '../pool/writer';

export type Family = 'vm' | 'container' | 'xen' | 'openstack' | 'docker';
export const FAMILIES: Family[] = ['vm', 'container', 'xen', 'openstack', 'docker'];

/** Which firmware the disk views boot with: BIOS (MBR), UEFI (GPT + ESP), or both (hybrid GPT). */
export type Firmware = 'bios' | 'uefi' | 'hybrid';
export const FIRMWARES: Firmware[] = ['bios', 'uefi', 'hybrid'];

/** Build options the formats read. */
export interface FormatOptions {
  diskSize: number; // bytes of the virtual disks
  memoryMb: number; // RAM in the OVF
  ovfSha1: boolean; // SHA1 manifest for old ESXi (default SHA256)
  firmware: Firmware; // disk layout and boot loaders of the disk views (default hybrid)
}

export interface ViewOut {
  path: string; // e.g. "openvz/debian-12-turnkey-core_18.0-1_amd64.tar.gz"
  recipe: Recipe;
  format: string; // format name, e.g. "openvz"
  description: string; // one line for README.txt and `uniso ls`
}

export interface FormatContext {
  names: ApplianceNames;
  options: FormatOptions;
  tree(family: Family): Tree;
  /** A key that is equal for families sharing one tree. */
  treeKey(family: Family): string;
  blocks: BlockInfo[];
  gzip: GzipCompiler;
  /** Fixed timestamp (seconds) for generated members: the tree's newest mtime. */
  mtimeSec: bigint;
  /** SHA-256 (hex) of a recipe's bytes, read through the pool. */
  sha256(r: Recipe): Promise<string>;
  /** Another digest (e.g. "sha1") of a recipe's bytes. */
  hash(r: Recipe, alg: string): Promise<string>;
  /** The family's tree as a squashfs image (for the base tree: the live squashfs the ISO carries). */
  squashfs(family: Family): Recipe;
  /** Build-wide cache, so formats that share bytes compute them once. */
  memo<T>(key: string, make: () => T): T;
  warn(message: string): void;
}

export interface Format {
  name: string;
  family: Family;
  build(ctx: FormatContext): Promise<ViewOut[]>;
}

/** What a preparer gets: runs before the pool is finished, so it may add files to family trees. */
export interface PrepareContext {
  names: ApplianceNames;
  options: FormatOptions;
  tree(family: Family): Tree;
  /** A key that is equal for families whose current trees are the same object. */
  treeKey(family: Family): string;
  setTree(family: Family, tree: Tree): void;
  /** Does the family's overlay provide this path (e.g. "etc/fstab")? */
  provided(family: Family, path: string): boolean;
  pool: PoolWriter;
  memo<T>(key: string, make: () => T): T;
  warn(message: string): void;
}

/** Adjusts family trees before formats run (e.g. adds a boot loader for disk images). */
export interface Preparer {
  name: string;
  families: Family[];
  prepare(ctx: PrepareContext, family: Family): Promise<void>;
}

/** Turn piece lists into a gzip view recipe. */
export async function gzipView(ctx: FormatContext, pieces: Piece[]): Promise<Recipe> {
  return (await ctx.gzip.compile(pieces)).recipe;
}
