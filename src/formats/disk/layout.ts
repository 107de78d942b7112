// Where the partitions of a disk view go, per firmware. Everything is
// aligned to 1 MiB (so to the 64 KiB grains the compressed formats splice):
//
//   bios    MBR    p1 root at 1 MiB to the end          core.img at LBA 1
//   hybrid  GPT    p1 BIOS boot  1 MiB, 1 MiB            core.img here
//                  p2 ESP        2 MiB, 62 MiB           FAT32, BOOTX64.EFI
//                  p3 root      64 MiB to 1 MiB before the end (backup GPT)
//   uefi    GPT    p1 ESP        1 MiB, 63 MiB
//                  p2 root      64 MiB to 1 MiB before the end

import { Firmware } from '../context';

export const MIB = 1 << 20;
const ROOT_OFFSET_GPT = 64 * MIB;
const TAIL_GPT = MIB; // holds the backup GPT (33 sectors), keeps the root's end aligned

export interface Extent {
  offset: number; // bytes from the disk's start
  bytes: number;
}

export interface DiskLayout {
  firmware: Firmware;
  table: 'mbr' | 'gpt';
  biosBoot?: Extent; // GPT disks that boot with BIOS: GRUB's core.img
  esp?: Extent; // EFI system partition
  root: Extent;
  /** GRUB's name of the root partition ("msdos1", "gpt3") */
  rootPartition: string;
  /** GRUB's partition-table module */
  partModule: 'part_msdos' | 'part_gpt';
}

export function diskLayout(firmware: Firmware, size: number): DiskLayout {
  let l: DiskLayout;
  switch (firmware) {
    case 'bios':
      l = { firmware, table: 'mbr', root: { offset: MIB, bytes: size - MIB }, rootPartition: 'msdos1', partModule: 'part_msdos' };
      break;
    case 'hybrid':
      l = {
        firmware, table: 'gpt', biosBoot: { offset: MIB, bytes: MIB }, esp: { offset: 2 * MIB, bytes: 62 * MIB },
        root: { offset: ROOT_OFFSET_GPT, bytes: size - ROOT_OFFSET_GPT - TAIL_GPT }, rootPartition: 'gpt3', partModule: 'part_gpt',
      };
      break;
    case 'uefi':
      l = {
        firmware, table: 'gpt', esp: { offset: MIB, bytes: 63 * MIB },
        root: { offset: ROOT_OFFSET_GPT, bytes: size - ROOT_OFFSET_GPT - TAIL_GPT }, rootPartition: 'gpt2', partModule: 'part_gpt',
      };
      break;
  }
  return l;
}

/** The disk's layout in a few words, for the views' descriptions. */
export function layoutWords(l: DiskLayout): string {
  switch (l.firmware) {
    case 'bios': return 'MBR, GRUB for BIOS, ext4';
    case 'uefi': return 'GPT, GRUB for UEFI, ext4';
    case 'hybrid': return 'GPT, GRUB for BIOS and UEFI, ext4';
  }
}
