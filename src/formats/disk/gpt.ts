// The GUID Partition Table (UEFI 2.10, chapter 5.3) of the UEFI and hybrid
// disks: the primary header at LBA 1 with its 128-entry array at LBA 2-33,
// the backup array and header in the disk's last 33 sectors, and the
// protective MBR (one 0xEE partition over the whole disk) at LBA 0, which
// may carry GRUB's boot.img so BIOS boots the same disk.

import { crc32 } from '../../checksum/crc32';

// ---- GPT header (all fields little-endian) -------------------------------------
const SECTOR = 512;
const SIGNATURE = 'EFI PART';
const REVISION = 0x00010000;
const HEADER_SIZE = 92;
const HDR_SIGNATURE = 0;
const HDR_REVISION = 8;
const HDR_HEADER_SIZE = 12;
const HDR_HEADER_CRC32 = 16;
const HDR_MY_LBA = 24;
const HDR_ALTERNATE_LBA = 32;
const HDR_FIRST_USABLE_LBA = 40;
const HDR_LAST_USABLE_LBA = 48;
const HDR_DISK_GUID = 56;
const HDR_PARTITION_ENTRY_LBA = 72;
const HDR_NUMBER_OF_PARTITION_ENTRIES = 80;
const HDR_SIZE_OF_PARTITION_ENTRY = 84;
const HDR_PARTITION_ENTRY_ARRAY_CRC32 = 88;

// ---- partition entry -------------------------------------------------------------
export const NUMBER_OF_PARTITION_ENTRIES = 128;
const SIZE_OF_PARTITION_ENTRY = 128;
const ENT_PARTITION_TYPE_GUID = 0;
const ENT_UNIQUE_PARTITION_GUID = 16;
const ENT_STARTING_LBA = 32;
const ENT_ENDING_LBA = 40; // inclusive
const ENT_ATTRIBUTES = 48;
const ENT_PARTITION_NAME = 56;
const PARTITION_NAME_CHARS = 36; // UTF-16LE
/** Sectors of the entry array: 128 entries of 128 bytes. */
export const ENTRY_ARRAY_SECTORS = (NUMBER_OF_PARTITION_ENTRIES * SIZE_OF_PARTITION_ENTRY) / SECTOR;
/** Sectors the backup GPT takes at the end of the disk (entry array + header). */
export const BACKUP_SECTORS = ENTRY_ARRAY_SECTORS + 1;

// ---- protective MBR ------------------------------------------------------------------
const MBR_BOOT_CODE_END = 440;
const MBR_PARTITION_RECORD = 0x1be;
const MBR_SIGNATURE = 0x1fe;
const OS_TYPE_GPT_PROTECTIVE = 0xee;

// ---- partition type GUIDs -----------------------------------------------------------
export const TYPE_EFI_SYSTEM = 'C12A7328-F81F-11D2-BA4B-00A0C93EC93B';
export const TYPE_BIOS_BOOT = '21686148-6449-6E6F-744E-656564454649'; // GRUB's core.img ("Hah!IdontNeedEFI")
export const TYPE_LINUX_FILESYSTEM = '0FC63DAF-8483-4772-8E79-3D69D8477DE4';

export interface GptPartition {
  type: string; // type GUID, text form
  guid: Buffer; // unique partition GUID, 16 bytes as stored
  firstLba: number;
  lastLba: number; // inclusive
  name: string;
}

/** A GUID's text form as stored on disk: the first three fields little-endian, the rest as written. */
export function guidBytes(text: string): Buffer {
  const h = text.replace(/-/g, '');
  if (!/^[0-9a-fA-F]{32}$/.test(h)) throw new Error(`bad GUID ${text}`);
  const b = Buffer.from(h, 'hex');
  return Buffer.concat([Buffer.from(b.subarray(0, 4)).reverse(), Buffer.from(b.subarray(4, 6)).reverse(),
    Buffer.from(b.subarray(6, 8)).reverse(), b.subarray(8)]);
}

function entryArray(parts: GptPartition[]): Buffer {
  if (parts.length > NUMBER_OF_PARTITION_ENTRIES) throw new Error('too many GPT partitions');
  const a = Buffer.alloc(NUMBER_OF_PARTITION_ENTRIES * SIZE_OF_PARTITION_ENTRY);
  parts.forEach((p, i) => {
    const e = i * SIZE_OF_PARTITION_ENTRY;
    guidBytes(p.type).copy(a, e + ENT_PARTITION_TYPE_GUID);
    p.guid.copy(a, e + ENT_UNIQUE_PARTITION_GUID, 0, 16);
    a.writeBigUInt64LE(BigInt(p.firstLba), e + ENT_STARTING_LBA);
    a.writeBigUInt64LE(BigInt(p.lastLba), e + ENT_ENDING_LBA);
    a.writeBigUInt64LE(0n, e + ENT_ATTRIBUTES);
    a.write(p.name.slice(0, PARTITION_NAME_CHARS), e + ENT_PARTITION_NAME, 'utf16le');
  });
  return a;
}

function header(myLba: number, alternateLba: number, firstUsable: number, lastUsable: number, diskGuid: Buffer,
  entryLba: number, entriesCrc: number): Buffer {
  const h = Buffer.alloc(SECTOR);
  h.write(SIGNATURE, HDR_SIGNATURE, 'latin1');
  h.writeUInt32LE(REVISION, HDR_REVISION);
  h.writeUInt32LE(HEADER_SIZE, HDR_HEADER_SIZE);
  h.writeBigUInt64LE(BigInt(myLba), HDR_MY_LBA);
  h.writeBigUInt64LE(BigInt(alternateLba), HDR_ALTERNATE_LBA);
  h.writeBigUInt64LE(BigInt(firstUsable), HDR_FIRST_USABLE_LBA);
  h.writeBigUInt64LE(BigInt(lastUsable), HDR_LAST_USABLE_LBA);
  diskGuid.copy(h, HDR_DISK_GUID, 0, 16);
  h.writeBigUInt64LE(BigInt(entryLba), HDR_PARTITION_ENTRY_LBA);
  h.writeUInt32LE(NUMBER_OF_PARTITION_ENTRIES, HDR_NUMBER_OF_PARTITION_ENTRIES);
  h.writeUInt32LE(SIZE_OF_PARTITION_ENTRY, HDR_SIZE_OF_PARTITION_ENTRY);
  h.writeUInt32LE(entriesCrc >>> 0, HDR_PARTITION_ENTRY_ARRAY_CRC32);
  h.writeUInt32LE(crc32(h.subarray(0, HEADER_SIZE)) >>> 0, HDR_HEADER_CRC32); // computed with the field zero
  return h;
}

export interface Gpt {
  /** LBA 1 to 33: the primary header and entry array (written after the protective MBR) */
  primary: Buffer;
  /** the last 33 sectors of the disk: the backup entry array, then the backup header */
  backup: Buffer;
  backupOffset: number; // byte offset of `backup`
}

/** Both copies of the GPT of a disk of `diskSectors` sectors. */
export function makeGpt(diskSectors: number, diskGuid: Buffer, parts: GptPartition[]): Gpt {
  const lastLba = diskSectors - 1;
  const firstUsable = 2 + ENTRY_ARRAY_SECTORS;
  const lastUsable = lastLba - BACKUP_SECTORS;
  for (const p of parts) {
    if (p.firstLba < firstUsable || p.lastLba > lastUsable || p.firstLba > p.lastLba) {
      throw new Error(`GPT partition ${p.name} (LBA ${p.firstLba}-${p.lastLba}) outside the usable LBAs ${firstUsable}-${lastUsable}`);
    }
  }
  const entries = entryArray(parts);
  const entriesCrc = crc32(entries);
  const primaryHeader = header(1, lastLba, firstUsable, lastUsable, diskGuid, 2, entriesCrc);
  const backupEntryLba = lastLba - ENTRY_ARRAY_SECTORS;
  const backupHeader = header(lastLba, 1, firstUsable, lastUsable, diskGuid, backupEntryLba, entriesCrc);
  return {
    primary: Buffer.concat([primaryHeader, entries]),
    backup: Buffer.concat([entries, backupHeader]),
    backupOffset: backupEntryLba * SECTOR,
  };
}

/**
 * The protective MBR: one partition of type 0xEE from LBA 1 over the whole
 * disk (capped at 2^32-1 sectors), not active; `bootCode` (GRUB's patched
 * boot.img, first 440 bytes) for hybrid disks, zeros otherwise.
 */
export function protectiveMbr(diskSectors: number, bootCode: Buffer | undefined): Buffer {
  const m = Buffer.alloc(SECTOR);
  if (bootCode) bootCode.copy(m, 0, 0, MBR_BOOT_CODE_END);
  const e = MBR_PARTITION_RECORD;
  m[e] = 0x00; // not bootable
  m[e + 1] = 0x00; // starting CHS 0/0/2: LBA 1
  m[e + 2] = 0x02;
  m[e + 3] = 0x00;
  m[e + 4] = OS_TYPE_GPT_PROTECTIVE;
  m[e + 5] = 0xff; // ending CHS: beyond CHS
  m[e + 6] = 0xff;
  m[e + 7] = 0xff;
  m.writeUInt32LE(1, e + 8);
  m.writeUInt32LE(Math.min(diskSectors - 1, 0xffffffff), e + 12);
  m[MBR_SIGNATURE] = 0x55;
  m[MBR_SIGNATURE + 1] = 0xaa;
  return m;
}
