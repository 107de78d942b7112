// The bootable disk of a family (vm, openstack): the preparer that adds GRUB,
// grub.cfg and fstab to the family tree before the pool is finished, and the
// memoized DiskImage every disk format reads: per --firmware (layout.ts),
// an MBR with core.img (bios), or a GPT with GRUB's BIOS boot partition
// (hybrid), an EFI system partition (our FAT32 holding BOOTX64.EFI), and
// always the root partition (our ext4).

import { Family, FormatContext, Preparer } from '../context';
import { BootPrep, prepareBootTree } from './bootprep';
import { DiskImage, DiskPiece, SECTOR } from './diskimage';
import { makeMbr } from './mbr';
import { makeGpt, protectiveMbr, GptPartition, TYPE_BIOS_BOOT, TYPE_EFI_SYSTEM, TYPE_LINUX_FILESYSTEM } from './gpt';
import { grubBootCode, placeCoreImg } from './grub';
import { diskLayout, DiskLayout, Extent, MIB } from './layout';
import { buildExt4, Ext4Error, Ext4Image } from '../ext4/image';
import { BLOCK_SIZE as FS_BLOCK } from '../ext4/constants';
import { buildFat32, FatError, FatImage } from '../fat/image';
import * as crypto from 'node:crypto';
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

/** The layout for the build's options; a disk too small for it is the user's error. */
function layoutFor(firmware: DiskLayout['firmware'], size: number): DiskLayout {
  const l = diskLayout(firmware, size);
  if (l.root.bytes < 16 * MIB) throw new UserError(`--disk-size ${size} bytes: too small for the ${firmware} disk layout (the root partition starts at ${l.root.offset / MIB} MiB)`);
  return l;
}

export const bootDiskPreparer: Preparer = {
  name: 'boot disk',
  families: DISK_FAMILIES,
  async prepare(ctx, family) {
    const base = ctx.tree(family);
    const layout = layoutFor(ctx.options.firmware, ctx.options.diskSize);
    // families sharing one tree share one prepared tree
    const prep = await ctx.memo(`bootprep-for:${ctx.treeKey(family)}`, () =>
      prepareBootTree(base, { name: ctx.names.name, pool: ctx.pool, provided: (p) => ctx.provided(family, p), layout }));
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
  layout: DiskLayout;
  size: number;
}

/** A content-derived GUID (RFC 4122 version 4 layout) for one role on this disk. */
function guidFor(prep: BootPrep, role: string): Buffer {
  const g = crypto.createHash('sha256').update(`gpt:${role}`).update(prep.uuid).digest().subarray(0, 16);
  g[7] = (g[7] & 0x0f) | 0x40; // stored mixed-endian: the version nibble is in byte 7, the variant in byte 8
  g[8] = (g[8] & 0x3f) | 0x80;
  return Buffer.from(g);
}

function ext4Pieces(fs: Ext4Image, base: number): DiskPiece[] {
  const out: DiskPiece[] = [];
  for (const [block, data] of fs.literals) out.push({ offset: base + block * FS_BLOCK, kind: 'lit', data });
  for (const d of fs.data) out.push({ offset: base + d.block * FS_BLOCK, kind: 'pool', id: d.id, len: d.len });
  return out;
}

function fatPieces(fat: FatImage, base: number): DiskPiece[] {
  return [
    ...fat.literals.map((l): DiskPiece => ({ offset: base + l.offset, kind: 'lit', data: l.data })),
    ...fat.data.map((d): DiskPiece => ({ offset: base + d.offset, kind: 'pool', id: d.id, len: d.len })),
  ];
}

const lba = (bytes: number): number => bytes / SECTOR;
const gptPart = (type: string, guid: Buffer, e: Extent, name: string): GptPartition =>
  ({ type, guid, firstLba: lba(e.offset), lastLba: lba(e.offset + e.bytes) - 1, name });

/** The ESP: FAT32 with EFI/BOOT/BOOTX64.EFI (empty when there is no GRUB for UEFI). */
function espImage(ctx: FormatContext, family: Family, prep: BootPrep, esp: Extent): FatImage {
  const files = prep.efiImage ? [{ path: 'EFI/BOOT/BOOTX64.EFI', content: prep.efiImage, mtimeNs: fsTime(ctx.tree(family).root.mtimeNs) }] : [];
  try {
    return buildFat32(files, {
      partitionBytes: esp.bytes, hiddenSectors: lba(esp.offset), volumeId: prep.uuid.readUInt32LE(4), label: 'EFI', timeNs: fsTime(ctx.tree(family).root.mtimeNs),
    });
  } catch (e) {
    if (e instanceof FatError) throw new UserError(`${family} disk image: EFI system partition: ${e.message}`);
    throw e;
  }
}

export function familyDisk(ctx: FormatContext, family: Family): FamilyDisk {
  const key = `disk:${ctx.treeKey(family)}`;
  return ctx.memo(key, () => {
    const prep = ctx.memo<BootPrep | undefined>(`bootprep:${family}`, () => undefined);
    if (!prep) throw new Error(`no boot preparation for family ${family}`);
    const size = ctx.options.diskSize;
    const layout = layoutFor(ctx.options.firmware, size);
    let fs;
    try {
      fs = buildExt4(ctx.tree(family), {
        partitionBytes: layout.root.bytes, uuid: prep.uuid, hashSeed: prep.hashSeed,
        label: ctx.names.app ? `turnkey-${ctx.names.app}`.slice(0, 16) : 'rootfs', timeNs: fsTime(ctx.tree(family).root.mtimeNs),
      });
    } catch (e) {
      if (e instanceof Ext4Error) throw new UserError(`${family} disk image: ${e.message}`);
      throw e;
    }
    const rootBytes = fs.blocks * FS_BLOCK; // the partition is exactly the file system
    const pieces = ext4Pieces(fs, layout.root.offset);
    if (layout.table === 'mbr') {
      const bootCode = prep.bootImg && grubBootCode(prep.bootImg, 1);
      const mbr = makeMbr(bootCode, prep.uuid.readUInt32LE(0), lba(layout.root.offset), lba(rootBytes));
      pieces.push({ offset: 0, kind: 'lit', data: mbr });
      if (SECTOR + prep.coreImg.length > layout.root.offset) throw new Error('core.img does not fit before the partition');
      pieces.push({ offset: SECTOR, kind: 'lit', data: prep.coreImg });
    } else {
      const parts: GptPartition[] = [];
      let bootCode: Buffer | undefined;
      if (layout.biosBoot) {
        parts.push(gptPart(TYPE_BIOS_BOOT, guidFor(prep, 'bios-boot'), layout.biosBoot, 'BIOS boot'));
        if (prep.bootImg) {
          if (prep.coreImg.length > layout.biosBoot.bytes) throw new Error('core.img does not fit in the BIOS boot partition');
          bootCode = grubBootCode(prep.bootImg, lba(layout.biosBoot.offset));
          pieces.push({ offset: layout.biosBoot.offset, kind: 'lit', data: placeCoreImg(prep.coreImg, lba(layout.biosBoot.offset)) });
        }
      }
      if (layout.esp) {
        parts.push(gptPart(TYPE_EFI_SYSTEM, guidFor(prep, 'esp'), layout.esp, 'EFI system partition'));
        pieces.push(...fatPieces(espImage(ctx, family, prep, layout.esp), layout.esp.offset));
      }
      parts.push(gptPart(TYPE_LINUX_FILESYSTEM, guidFor(prep, 'root'), { offset: layout.root.offset, bytes: rootBytes }, 'root'));
      const gpt = makeGpt(lba(size), guidFor(prep, 'disk'), parts);
      pieces.push({ offset: 0, kind: 'lit', data: protectiveMbr(lba(size), bootCode) });
      pieces.push({ offset: SECTOR, kind: 'lit', data: gpt.primary });
      pieces.push({ offset: gpt.backupOffset, kind: 'lit', data: gpt.backup });
    }
    const image = new DiskImage(size, pieces);
    return { key, image, raw: image.rawRecipe(), prep, layout, size };
  });
}
