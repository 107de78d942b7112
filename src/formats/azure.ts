// azure/<name>.vhd: the fixed VHD Azure takes for uploaded disks (page blob):
// the raw bootable disk as it is, zeros up to the next whole MiB (Azure
// refuses a virtual size that is not a whole number of MiB; disks are
// normally whole MiB already, so usually there are none), then the 512-byte
// hard disk footer (vhd.ts) with disk type fixed, no data offset, and
// original = current size = the rounded size, so the file is exactly that
// size plus 512 bytes, as Azure requires.

import * as crypto from 'node:crypto';
import { Format } from './context';
import { familyDisk } from './disk/disk';
import { Recipe, RecipeBuilder } from '../recipe/recipe';
import { DISK_TYPE_FIXED, NO_DATA_OFFSET, footer, vhdTimestamp } from './vhd';

/** Azure: the virtual size of an uploaded VHD is a whole number of MiB. */
export const AZURE_ALIGN = 1 << 20;

/** The virtual size of the fixed VHD for a disk of `size` bytes: the next whole MiB. */
export function azureSize(size: number): number {
  return Math.ceil(size / AZURE_ALIGN) * AZURE_ALIGN;
}

/** A fixed VHD over a raw disk recipe: its bytes, zero padding to a whole MiB, the footer. */
export function fixedVhdRecipe(raw: Recipe, timestamp: number, uid: Buffer): Recipe {
  const size = azureSize(raw.size);
  const rb = new RecipeBuilder();
  rb.include(raw);
  if (size > raw.size) rb.zero(size - raw.size);
  rb.literal(footer({ size, diskType: DISK_TYPE_FIXED, dataOffset: NO_DATA_OFFSET, timestamp, uid }));
  return rb.build();
}

export const azure: Format = {
  name: 'azure',
  family: 'openstack',
  async build(ctx) {
    const d = familyDisk(ctx, 'openstack');
    const uid = crypto.createHash('sha256').update('azure-vhd-uid').update(d.prep.uuid).digest().subarray(0, 16);
    return [{
      path: `azure/${ctx.names.name}.vhd`,
      recipe: fixedVhdRecipe(d.raw, vhdTimestamp(ctx.mtimeSec), uid),
      format: 'azure-vhd',
      description: 'fixed VHD for Azure (virtual size a whole number of MiB)',
    }];
  },
};
