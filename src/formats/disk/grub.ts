// GRUB's images for the disk views, made with grub-mkimage (deterministic
// for the same modules and prefix) and patched as grub-bios-setup would:
//   BIOS: boot.img (the MBR's boot code) loads the first sector of core.img
//     from `kernel sector`; that sector (diskboot.img) loads the rest from
//     the blocklist at its end. core.img sits at LBA 1 on MBR disks and in
//     the BIOS boot partition on GPT disks.
//   UEFI: one x86_64-efi image with the modules grub.cfg needs built in, so
//     the ESP holds only EFI/BOOT/BOOTX64.EFI (the removable-media path: no
//     NVRAM entry is needed) and the root file system no module directory.
// Both find /boot/grub on the root partition through the prefix
// "(,PART)/boot/grub": GRUB puts the disk it booted from before the comma.

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';

// ---- boot.img (GRUB's include/grub/i386/pc/boot.h) ---------------------------------
const BOOT_IMG_SIZE = 512;
const BOOT_CODE_END = 440; // the disk signature and partition table follow
const BPB_START = 0x03;
const BPB_END = 0x5a;
const KERNEL_SECTOR = 0x5c; // 8 bytes LE: LBA of core.img's first sector
const DRIVE_CHECK = 0x66; // "jmp short" over the boot-drive workaround; NOPped for hard disks
// ---- diskboot.img, core.img's first sector ------------------------------------------
const BLOCKLIST_START = 0x200 - 12; // 8 bytes LE: LBA of core.img's second sector, then length, segment
const MKIMAGE_CORE_LBA = 1; // where grub-mkimage's blocklist expects core.img

/** Built into the EFI image: everything the generated grub.cfg uses (dependencies come along). */
export const EFI_MODULES = ['part_gpt', 'part_msdos', 'ext2', 'fat', 'normal', 'linux', 'search', 'search_fs_uuid', 'configfile',
  'echo', 'test', 'serial', 'terminal', 'gzio', 'efi_gop', 'all_video', 'boot', 'ls', 'cat'];

export function grubPrefix(partition: string): string {
  return `(,${partition})/boot/grub`;
}

function mkimage(args: string[], what: string): Buffer {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'uniso-grub-'));
  try {
    const out = path.join(dir, 'image');
    const r = spawnSync('grub-mkimage', ['-o', out, ...args], { encoding: 'utf8' });
    if (r.error) throw new Error(`cannot run grub-mkimage (install the "grub-common" package): ${r.error.message}`);
    if (r.status !== 0) throw new Error(`grub-mkimage (${what}) failed: ${(r.stderr || '').trim().split('\n').pop()}`);
    return fs.readFileSync(out);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** core.img for BIOS from an i386-pc module directory; `partModule`: part_msdos or part_gpt. */
export function makeCoreImg(moduleDir: string, partModule: string, prefix: string): Buffer {
  return mkimage(['-O', 'i386-pc', '-d', moduleDir, '-p', prefix, 'biosdisk', partModule, 'ext2'], 'i386-pc');
}

/** BOOTX64.EFI from an x86_64-efi module directory. */
export function makeEfiImage(moduleDir: string, prefix: string): Buffer {
  return mkimage(['-O', 'x86_64-efi', '-d', moduleDir, '-p', prefix, ...EFI_MODULES], 'x86_64-efi');
}

/** boot.img's first 440 bytes, patched for a hard disk whose core.img starts at `coreLba`. */
export function grubBootCode(bootImg: Buffer, coreLba: number): Buffer {
  if (bootImg.length !== BOOT_IMG_SIZE) throw new Error(`boot.img is ${bootImg.length} bytes, expected 512`);
  const m = Buffer.from(bootImg.subarray(0, BOOT_CODE_END));
  m.fill(0, BPB_START, BPB_END); // no BIOS parameter block on a fresh disk
  m.writeBigUInt64LE(BigInt(coreLba), KERNEL_SECTOR);
  m[DRIVE_CHECK] = 0x90;
  m[DRIVE_CHECK + 1] = 0x90;
  return m;
}

/** core.img moved to `lba`: its blocklist then points at the sector after it. */
export function placeCoreImg(core: Buffer, lba: number): Buffer {
  const c = Buffer.from(core);
  const start = c.readBigUInt64LE(BLOCKLIST_START);
  if (start !== BigInt(MKIMAGE_CORE_LBA + 1)) throw new Error(`core.img: unexpected blocklist start ${start} (this GRUB lays out diskboot.img differently)`);
  c.writeBigUInt64LE(BigInt(lba + 1), BLOCKLIST_START);
  return c;
}
