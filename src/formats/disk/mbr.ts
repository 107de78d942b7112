// The MBR of the BIOS-only disks (--firmware bios): GRUB's boot code (see
// grub.ts), the disk signature and one active Linux partition at LBA 2048;
// GRUB's core.img is embedded at LBA 1, before the partition.

// ---- MBR layout ----------------------------------------------------------------
const MBR_SIZE = 512;
const BOOT_CODE_END = 440;
const DISK_SIGNATURE = 0x1b8;
const PARTITION_TABLE = 0x1be;
const BOOT_SIGNATURE = 0x1fe;
const PART_ACTIVE = 0x80;
const PART_LINUX = 0x83;
const CHS_HEADS = 255;
const CHS_SECTORS = 63;

function chs(lba: number): [number, number, number] {
  const c = Math.floor(lba / (CHS_HEADS * CHS_SECTORS));
  if (c > 1023) return [0xfe, 0xff, 0xff];
  const h = Math.floor(lba / CHS_SECTORS) % CHS_HEADS;
  const s = (lba % CHS_SECTORS) + 1;
  return [h, (s & 0x3f) | ((c >> 2) & 0xc0), c & 0xff];
}

/** `bootCode`: GRUB's patched boot.img (grubBootCode), or none. */
export function makeMbr(bootCode: Buffer | undefined, signature: number, partStartLba: number, partSectors: number): Buffer {
  const m = Buffer.alloc(MBR_SIZE);
  if (bootCode) bootCode.copy(m, 0, 0, BOOT_CODE_END);
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
