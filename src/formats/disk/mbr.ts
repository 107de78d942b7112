// MBR and GRUB for BIOS boot: the MBR is GRUB's boot.img with the patches
// grub-bios-setup applies for a hard disk, the disk signature and one
// active Linux partition at LBA 2048; core.img comes from grub-mkimage and
// is embedded at LBA 1 (before the partition), where its own blocklist
// already points.

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';

// ---- MBR layout ----------------------------------------------------------------
const MBR_SIZE = 512;
const BOOT_CODE_END = 440;
const BPB_START = 0x03;
const BPB_END = 0x5a;
const DRIVE_CHECK = 0x66; // "jmp short" over the boot-drive workaround; NOPped for hard disks
const DISK_SIGNATURE = 0x1b8;
const PARTITION_TABLE = 0x1be;
const BOOT_SIGNATURE = 0x1fe;
const PART_ACTIVE = 0x80;
const PART_LINUX = 0x83;
const CHS_HEADS = 255;
const CHS_SECTORS = 63;

export const GRUB_CORE_MODULES = ['biosdisk', 'part_msdos', 'ext2'];
export const GRUB_PREFIX = '(,msdos1)/boot/grub';

function chs(lba: number): [number, number, number] {
  const c = Math.floor(lba / (CHS_HEADS * CHS_SECTORS));
  if (c > 1023) return [0xfe, 0xff, 0xff];
  const h = Math.floor(lba / CHS_SECTORS) % CHS_HEADS;
  const s = (lba % CHS_SECTORS) + 1;
  return [h, (s & 0x3f) | ((c >> 2) & 0xc0), c & 0xff];
}

export function makeMbr(bootImg: Buffer | undefined, signature: number, partStartLba: number, partSectors: number): Buffer {
  const m = Buffer.alloc(MBR_SIZE);
  if (bootImg) {
    if (bootImg.length !== MBR_SIZE) throw new Error(`boot.img is ${bootImg.length} bytes, expected 512`);
    bootImg.copy(m, 0, 0, BOOT_CODE_END);
    m.fill(0, BPB_START, BPB_END); // no BIOS parameter block on a fresh disk
    m[DRIVE_CHECK] = 0x90;
    m[DRIVE_CHECK + 1] = 0x90;
  }
  m.writeUInt32LE(signature >>> 0, DISK_SIGNATURE);
  const e = PARTITION_TABLE;
  m[e] = PART_ACTIVE;
  Buffer.from(chs(partStartLba)).copy(m, e + 1);
  m[e + 4] = PART_LINUX;
  Buffer.from(chs(partStartLba + partSectors - 1)).copy(m, e + 5);
  m.writeUInt32LE(partStartLba, e + 8);
  m.writeUInt32LE(partSectors, e + 12);
  m[BOOT_SIGNATURE] = 0x55;
  m[BOOT_SIGNATURE + 1] = 0xaa;
  return m;
}

/** core.img for BIOS from a module directory (grub-mkimage; deterministic for the same modules). */
export function makeCoreImg(moduleDir: string): Buffer {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'uniso-grub-'));
  try {
    const out = path.join(dir, 'core.img');
    const r = spawnSync('grub-mkimage', ['-O', 'i386-pc', '-d', moduleDir, '-o', out, '-p', GRUB_PREFIX, ...GRUB_CORE_MODULES],
      { encoding: 'utf8' });
    if (r.error) throw new Error(`cannot run grub-mkimage (install the "grub-common" and "grub-pc-bin" packages): ${r.error.message}`);
    if (r.status !== 0) throw new Error(`grub-mkimage failed: ${(r.stderr || '').trim().split('\n').pop()}`);
    return fs.readFileSync(out);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
