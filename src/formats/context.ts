// What a format module gets to build its views, and what it returns. A
// format reads the variant tree of its family, writes literals and recipes
// through the catalog writer, and returns views (path + recipe). It never
// reads or writes files itself.

import { Tree } from '../tree';
import { Recipe } from '../recipe/recipe';
import { CatalogWriter } from '../catalog/writer';
import { BlockInfo } from '../pool/format';
import { GzipCompiler } from './gzip';
import { ApplianceNames } from './naming';
import { Piece } from './pieces';

export type Family = 'vm' | 'container' | 'xen' | 'openstack' | 'docker';
export const FAMILIES: Family[] = ['vm', 'container', 'xen', 'openstack', 'docker'];

export interface ViewOut {
  path: string; // e.g. "openvz/debian-12-turnkey-core_18.0-1_amd64.tar.gz"
  recipe: Recipe;
  format: string; // format name, e.g. "openvz"
  description: string; // one line for README.txt and `uniso ls`
}

export interface FormatContext {
  names: ApplianceNames;
  tree(family: Family): Tree;
  /** A key that is equal for families sharing one tree. */
  treeKey(family: Family): string;
  catalog: CatalogWriter;
  blocks: BlockInfo[];
  gzip: GzipCompiler;
  /** Fixed timestamp (seconds) for generated members: the tree's newest mtime. */
  mtimeSec: bigint;
  /** SHA-256 (hex) of a recipe's bytes, read through the pool. */
  sha256(r: Recipe): Promise<string>;
  /** Build-wide cache, so formats that share bytes compute them once. */
  memo<T>(key: string, make: () => T): T;
  warn(message: string): void;
}

export interface Format {
  name: string;
  family: Family;
  build(ctx: FormatContext): Promise<ViewOut[]>;
}

/** Turn piece lists into a gzip view recipe. */
export function gzipView(ctx: FormatContext, pieces: Piece[]): Recipe {
  return ctx.gzip.compile(pieces).recipe;
}
