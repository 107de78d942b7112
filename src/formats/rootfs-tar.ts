// The container root file system as a tar.gz (members "./..."), shared by
// the openvz, opennode and proxmox templates and the xen tarball: computed
// once per (tree, prefix) and reused.

import { FormatContext, Family } from './context';
import { tarOfTree } from './tar';
import { Recipe } from '../recipe/recipe';

export interface RootfsTarGz {
  recipe: Recipe;
  tarSize: number; // uncompressed size
}

export function rootfsTarGz(ctx: FormatContext, family: Family): Promise<RootfsTarGz> {
  const tree = ctx.tree(family);
  return ctx.memo(`rootfs-tar-gz:${ctx.treeKey(family)}`, async () => {
    const { pieces, skipped } = tarOfTree(tree, { prefix: './', includeRoot: true });
    if (skipped.length) ctx.warn(`${family} tree: ${skipped.length} socket(s) cannot be stored in tar and were left out`);
    const out = await ctx.gzip.compile(pieces.done());
    return { recipe: out.recipe, tarSize: out.size };
  });
}
