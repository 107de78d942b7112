// The bootable disk of a family (vm, openstack): the preparer that adds GRUB,
// grub.cfg and fstab to the family tree before the pool is finished, and the
// memoized DiskImage (MBR + core.img + our ext4) every disk format reads.

import { Family, FormatContext, Preparer } from '../context';
import { BootPrep, prepareBootTree } from './bootprep';
import { DiskImage, PARTITION_OFFSET, SECTOR } from './diskimage';
import { makeMbr } from './mbr';
import { buildExt4, Ext4Error } from '../ext4/image';
import { Recipe } from '../../recipe/recipe';
import { UserError } from '../../util/errors';

export const DISK_FAMILIES: Family[] = ['vm', 'openstack'];

/**
 * The file system's own timestamps (created, written, checked): the root
 * directory's mtime, deterministic and normally the appliance's build time;
 * a time e2fsck would see as out of range (beyond 2038) becomes the epoch.
 */
function fsTime(rootMtimeNs: bigint): bigint {
  return rootMtimeNs >= 0n && rootMtimeNs < 2n ** 31n * 1_000_000_000n ? rootMtimeNs : 0n;
}

export const bootDiskPreparer: Preparer = {
  name: 'boot disk',
  families: DISK_FAMILIES,
  async prepare(ctx, family) {
    const base = ctx.tree(family);
    // families sharing one tree share one prepared tree
    const prep = await ctx.memo(`bootprep-for:${ctx.treeKey(family)}`, () =>
      prepareBootTree(base, { name: ctx.names.name, pool: ctx.pool, provided: (p) => ctx.provided(family, p) }));
    for (const w of prep.warnings) ctx.warn(`${family} disk: ${w}`);
    ctx.setTree(family, prep.tree);
    ctx.memo(`bootprep:${family}`, () => prep);
  },
};

export interface FamilyDisk {
  /** equal for families sharing one disk (memo keys of what is made from it) */
  key: string;
  image: DiskImage;
  raw: Recipe;
  prep: BootPrep;
  size: number;
}

export function familyDisk(ctx: FormatContext, family: Family): FamilyDisk {
  const key = `disk:${ctx.treeKey(family)}`;
  return ctx.memo(key, () => {
    const prep = ctx.memo<BootPrep | undefined>(`bootprep:${family}`, () => undefined);
    if (!prep) throw new Error(`no boot preparation for family ${family}`);
    const size = ctx.options.diskSize;
    const partBytes = size - PARTITION_OFFSET;
    let fs;
    try {
      fs = buildExt4(ctx.tree(family), {
        partitionBytes: partBytes, uuid: prep.uuid, hashSeed: prep.hashSeed,
        label: ctx.names.app ? `turnkey-${ctx.names.app}`.slice(0, 16) : 'rootfs', timeNs: fsTime(ctx.tree(family).root.mtimeNs),
      });
    } catch (e) {
      if (e instanceof Ext4Error) throw new UserError(`${family} disk image: ${e.message}`);
      throw e;
    }
    const partSectors = (fs.blocks * 4096) / SECTOR;
    const signature = prep.uuid.readUInt32LE(0);
    const mbr = makeMbr(prep.bootImg, signature, PARTITION_OFFSET / SECTOR, partSectors);
    const image = new DiskImage(size, mbr, prep.coreImg, fs);
    return { key, image, raw: image.rawRecipe(), prep, size };
  });
}
