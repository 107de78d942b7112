// FAT32's on-disk structures, named as in Microsoft's "FAT: General Overview
// of On-Disk Format": the boot sector with its BPB, the FSInfo sector, short
// (8.3) directory entries, VFAT long-name entries with their checksum, DOS
// dates and times, and the rules for short names (which names fit 8.3 as
// they are, and the "~N" alias of a name that does not). Pure encoders: the
// layout is image.ts's, the geometry geometry.ts's.

export class FatError extends Error {
  override name = 'FatError';
}

export const SECTOR = 512; // BPB_BytsPerSec: the only size written here
export const DIR_ENTRY_SIZE = 32;
export const NUM_FATS = 2; // BPB_NumFATs
export const MEDIA_FIXED = 0xf8; // BPB_Media: fixed (non-removable) media
export const FSINFO_SECTOR = 1; // BPB_FSInfo
export const BACKUP_BOOT_SECTOR = 6; // BPB_BkBootSec (its FSInfo copy follows it)
export const ROOT_CLUSTER = 2; // BPB_RootClus
export const FIRST_CLUSTER = 2; // clusters 0 and 1 are reserved FAT entries
export const MIN_CLUSTERS = 65525; // fewer is FAT12/FAT16, by the spec's definition
export const MAX_CLUSTERS = 0x0ffffff4; // cluster numbers up to 0x0FFFFFF6 (exclusive) are allocatable
export const MAX_FILE_SIZE = 0xffffffff; // DIR_FileSize is 32 bits
export const MAX_DIR_ENTRIES = 65536; // a directory is at most 2 MiB of entries

export const FAT_EOC = 0x0fffffff; // end of a cluster chain
export const FAT_ENTRY_MASK = 0x0fffffff; // FAT32 entries are 28 bits

export const FSI_LEAD_SIG = 0x41615252;
export const FSI_STRUC_SIG = 0x61417272;
export const FSI_TRAIL_SIG = 0xaa550000;
export const FSI_UNKNOWN = 0xffffffff;

export const ATTR_READ_ONLY = 0x01;
export const ATTR_HIDDEN = 0x02;
export const ATTR_SYSTEM = 0x04;
export const ATTR_VOLUME_ID = 0x08;
export const ATTR_DIRECTORY = 0x10;
export const ATTR_ARCHIVE = 0x20;
export const ATTR_LONG_NAME = ATTR_READ_ONLY | ATTR_HIDDEN | ATTR_SYSTEM | ATTR_VOLUME_ID;
export const LAST_LONG_ENTRY = 0x40;
export const LFN_CHARS = 13; // UCS-2 characters per long-name entry
export const MAX_LONG_NAME = 255;

// DIR_NTRes bits (Windows NT and Linux): the base / extension of an 8.3 name is shown lower case
export const NTRES_LOWER_BASE = 0x08;
export const NTRES_LOWER_EXT = 0x10;

const OEM_NAME = 'UNISO   ';
const FIL_SYS_TYPE = 'FAT32   ';
const NO_NAME = 'NO NAME    ';
const DRIVE_NUMBER = 0x80;
const EXT_BOOT_SIG = 0x29;
// What runs if the partition's boot sector is ever executed: int 18h (no bootable
// disk: the BIOS tries the next device), then halt in a loop.
const BOOT_CODE = Buffer.from([0xfa, 0xcd, 0x18, 0xf4, 0xeb, 0xfd]);
const BOOT_CODE_OFFSET = 90; // right after the FAT32 BPB; BS_jmpBoot jumps here

// ---- boot sector and FSInfo ----------------------------------------------

export interface BootFields {
  secPerClus: number;
  rsvdSecCnt: number;
  totSec32: number;
  fatSz32: number;
  secPerTrk: number;
  numHeads: number;
  hiddSec: number;
  volId: number;
  volLab: string; // 11 chars, padded ('' -> NO NAME)
}

export function encodeBootSector(f: BootFields): Buffer {
  const b = Buffer.alloc(SECTOR);
  b[0] = 0xeb; // BS_jmpBoot: jmp short BOOT_CODE_OFFSET; nop
  b[1] = BOOT_CODE_OFFSET - 2;
  b[2] = 0x90;
  b.write(OEM_NAME, 3, 8, 'latin1'); // BS_OEMName
  b.writeUInt16LE(SECTOR, 11); // BPB_BytsPerSec
  b[13] = f.secPerClus; // BPB_SecPerClus
  b.writeUInt16LE(f.rsvdSecCnt, 14); // BPB_RsvdSecCnt
  b[16] = NUM_FATS; // BPB_NumFATs
  b.writeUInt16LE(0, 17); // BPB_RootEntCnt: 0 on FAT32
  b.writeUInt16LE(0, 19); // BPB_TotSec16: 0 on FAT32
  b[21] = MEDIA_FIXED; // BPB_Media
  b.writeUInt16LE(0, 22); // BPB_FATSz16: 0 on FAT32
  b.writeUInt16LE(f.secPerTrk, 24); // BPB_SecPerTrk
  b.writeUInt16LE(f.numHeads, 26); // BPB_NumHeads
  b.writeUInt32LE(f.hiddSec >>> 0, 28); // BPB_HiddSec
  b.writeUInt32LE(f.totSec32 >>> 0, 32); // BPB_TotSec32
  b.writeUInt32LE(f.fatSz32 >>> 0, 36); // BPB_FATSz32
  b.writeUInt16LE(0, 40); // BPB_ExtFlags: FATs mirrored at run time
  b.writeUInt16LE(0, 42); // BPB_FSVer 0.0
  b.writeUInt32LE(ROOT_CLUSTER, 44); // BPB_RootClus
  b.writeUInt16LE(FSINFO_SECTOR, 48); // BPB_FSInfo
  b.writeUInt16LE(BACKUP_BOOT_SECTOR, 50); // BPB_BkBootSec
  // 52..63 BPB_Reserved
  b[64] = DRIVE_NUMBER; // BS_DrvNum
  b[66] = EXT_BOOT_SIG; // BS_BootSig
  b.writeUInt32LE(f.volId >>> 0, 67); // BS_VolID
  b.write(f.volLab === '' ? NO_NAME : f.volLab.padEnd(11, ' '), 71, 11, 'latin1'); // BS_VolLab
  b.write(FIL_SYS_TYPE, 82, 8, 'latin1'); // BS_FilSysType
  BOOT_CODE.copy(b, BOOT_CODE_OFFSET);
  b[510] = 0x55; // Signature_word
  b[511] = 0xaa;
  return b;
}

export function encodeFsInfo(freeCount: number, nxtFree: number): Buffer {
  const b = Buffer.alloc(SECTOR);
  b.writeUInt32LE(FSI_LEAD_SIG, 0); // FSI_LeadSig
  b.writeUInt32LE(FSI_STRUC_SIG, 484); // FSI_StrucSig
  b.writeUInt32LE(freeCount >>> 0, 488); // FSI_Free_Count
  b.writeUInt32LE(nxtFree >>> 0, 492); // FSI_Nxt_Free
  b.writeUInt32LE(FSI_TRAIL_SIG, 508); // FSI_TrailSig
  return b;
}

// ---- DOS date and time -----------------------------------------------------

export interface DosTime {
  date: number; // bits 15-9 year - 1980, 8-5 month, 4-0 day
  time: number; // bits 15-11 hours, 10-5 minutes, 4-0 seconds / 2
  tenth: number; // DIR_CrtTimeTenth: 0..199 hundredths of a second within the 2-second step
}

const DOS_MIN_SEC = Date.UTC(1980, 0, 1) / 1000;
const DOS_MAX_SEC = Date.UTC(2107, 11, 31, 23, 59, 59) / 1000;

/** A time in ns since the epoch as a DOS date and time (UTC), clamped to 1980-01-01 .. 2107-12-31. */
export function dosTime(ns: bigint): DosTime {
  let sec = ns / 1_000_000_000n;
  let rem = ns - sec * 1_000_000_000n;
  if (rem < 0n) { sec -= 1n; rem += 1_000_000_000n; }
  if (sec < BigInt(DOS_MIN_SEC)) { sec = BigInt(DOS_MIN_SEC); rem = 0n; }
  if (sec > BigInt(DOS_MAX_SEC)) { sec = BigInt(DOS_MAX_SEC); rem = 999_999_999n; }
  const s = Number(sec);
  const d = new Date(s * 1000);
  return {
    date: ((d.getUTCFullYear() - 1980) << 9) | ((d.getUTCMonth() + 1) << 5) | d.getUTCDate(),
    time: (d.getUTCHours() << 11) | (d.getUTCMinutes() << 5) | (d.getUTCSeconds() >> 1),
    tenth: (s % 2) * 100 + Number(rem / 10_000_000n),
  };
}

// ---- directory entries -----------------------------------------------------

export interface ShortEntry {
  name: Buffer; // DIR_Name, 11 bytes
  attr: number;
  ntRes: number;
  time: DosTime; // creation = write = access date
  cluster: number;
  size: number;
}

export function encodeShortEntry(e: ShortEntry, out: Buffer, off: number): void {
  e.name.copy(out, off, 0, 11); // DIR_Name
  out[off + 11] = e.attr; // DIR_Attr
  out[off + 12] = e.ntRes; // DIR_NTRes
  out[off + 13] = e.time.tenth; // DIR_CrtTimeTenth
  out.writeUInt16LE(e.time.time, off + 14); // DIR_CrtTime
  out.writeUInt16LE(e.time.date, off + 16); // DIR_CrtDate
  out.writeUInt16LE(e.time.date, off + 18); // DIR_LstAccDate
  out.writeUInt16LE(e.cluster >>> 16, off + 20); // DIR_FstClusHI
  out.writeUInt16LE(e.time.time, off + 22); // DIR_WrtTime
  out.writeUInt16LE(e.time.date, off + 24); // DIR_WrtDate
  out.writeUInt16LE(e.cluster & 0xffff, off + 26); // DIR_FstClusLO
  out.writeUInt32LE(e.size >>> 0, off + 28); // DIR_FileSize
}

/** The volume label's root directory entry (ATTR_VOLUME_ID, no cluster). */
export function encodeLabelEntry(label: string, time: DosTime, out: Buffer, off: number): void {
  encodeShortEntry({ name: Buffer.from(label.padEnd(11, ' '), 'latin1'), attr: ATTR_VOLUME_ID, ntRes: 0, time, cluster: 0, size: 0 },
    out, off);
}

/** The long-name checksum of an 11-byte short name (stored in every LDIR_Chksum). */
export function shortNameChecksum(name: Buffer): number {
  let sum = 0;
  for (let i = 0; i < 11; i++) sum = (((sum & 1) << 7) + (sum >> 1) + name[i]) & 0xff;
  return sum;
}

/** Number of long-name entries a name needs. */
export function lfnEntries(longName: string): number {
  return Math.ceil(longName.length / LFN_CHARS);
}

/** Writes the long-name entries of `longName` in on-disk order (last ordinal first); returns the offset after them. */
export function encodeLfnEntries(longName: string, checksum: number, out: Buffer, off: number): number {
  const n = lfnEntries(longName);
  // UCS-2 units, terminated by 0x0000 when shorter than the entries hold, then padded with 0xFFFF
  const units = new Array<number>(n * LFN_CHARS).fill(0xffff);
  for (let i = 0; i < longName.length; i++) units[i] = longName.charCodeAt(i);
  if (longName.length < units.length) units[longName.length] = 0;
  const slots = [1, 3, 5, 7, 9, 14, 16, 18, 20, 22, 24, 28, 30]; // LDIR_Name1 (5), LDIR_Name2 (6), LDIR_Name3 (2)
  for (let ord = n; ord >= 1; ord--) {
    out[off] = ord | (ord === n ? LAST_LONG_ENTRY : 0); // LDIR_Ord
    out[off + 11] = ATTR_LONG_NAME; // LDIR_Attr
    out[off + 12] = 0; // LDIR_Type
    out[off + 13] = checksum; // LDIR_Chksum
    out.writeUInt16LE(0, off + 26); // LDIR_FstClusLO
    for (let k = 0; k < LFN_CHARS; k++) out.writeUInt16LE(units[(ord - 1) * LFN_CHARS + k], off + slots[k]);
    off += DIR_ENTRY_SIZE;
  }
  return off;
}

// ---- names -----------------------------------------------------------------

const SHORT_SPECIALS = "!#$%&'()-@^_`{}~";
const LONG_FORBIDDEN = '"*/:<>?\\|';

function isShortChar(c: string): boolean {
  return (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || SHORT_SPECIALS.includes(c);
}

/** Throws unless `name` is a valid long file name (Windows' rules: no control or reserved characters, no trailing dot or space). */
export function checkLongName(name: string, where: string): void {
  if (name === '' || name === '.' || name === '..') throw new FatError(`${where}: invalid file name '${name}'`);
  if (name.length > MAX_LONG_NAME) throw new FatError(`${where}: file name longer than ${MAX_LONG_NAME} characters`);
  for (const c of name) {
    if (c.charCodeAt(0) < 0x20 || LONG_FORBIDDEN.includes(c)) {
      throw new FatError(`${where}: character ${JSON.stringify(c)} is not allowed in a FAT file name`);
    }
  }
  if (name.endsWith('.') || name.endsWith(' ')) throw new FatError(`${where}: a FAT file name cannot end with '.' or ' '`);
}

/** The upper-case key names are compared by (FAT names are case-insensitive). */
export function nameKey(name: string): string {
  return name.toUpperCase();
}

function caseOf(part: string): 'upper' | 'lower' | 'mixed' {
  const hasUpper = /[A-Z]/.test(part);
  const hasLower = /[a-z]/.test(part);
  return hasUpper && hasLower ? 'mixed' : hasLower ? 'lower' : 'upper';
}

/**
 * The 8.3 entry of a name that fits one as it is: base of 1-8 and extension of
 * 0-3 short-name characters, each part all upper or all lower case (lower case
 * recorded in DIR_NTRes, as Windows NT does). Undefined when a long name is needed.
 */
export function exactShortName(name: string): { name: Buffer; ntRes: number } | undefined {
  const dot = name.indexOf('.');
  const base = dot < 0 ? name : name.slice(0, dot);
  const ext = dot < 0 ? '' : name.slice(dot + 1);
  if (base.length < 1 || base.length > 8 || ext.length > 3 || (dot >= 0 && ext.length === 0)) return undefined;
  if (![...base.toUpperCase(), ...ext.toUpperCase()].every(isShortChar)) return undefined;
  const cb = caseOf(base);
  const ce = caseOf(ext);
  if (cb === 'mixed' || ce === 'mixed') return undefined;
  const n = Buffer.from(base.toUpperCase().padEnd(8, ' ') + ext.toUpperCase().padEnd(3, ' '), 'latin1');
  return { name: n, ntRes: (cb === 'lower' ? NTRES_LOWER_BASE : 0) | (ce === 'lower' ? NTRES_LOWER_EXT : 0) };
}

/**
 * The short alias of a long name: upper case, spaces and leading/embedded dots
 * dropped, other characters a short name cannot hold as '_', base cut so that
 * "~N" fits, extension from the last dot (3 characters). `taken` holds the
 * directory's 11-byte names (latin1) so far; the first free N is used.
 */
export function aliasShortName(name: string, taken: Set<string>): Buffer {
  const clean = (s: string) => [...s.toUpperCase()].filter((c) => c !== ' ' && c !== '.').map((c) => (isShortChar(c) ? c : '_')).join('');
  const stripped = name.replace(/^\.+/, '');
  const dot = stripped.lastIndexOf('.');
  let base = clean(dot < 0 ? stripped : stripped.slice(0, dot));
  const ext = clean(dot < 0 ? '' : stripped.slice(dot + 1)).slice(0, 3);
  if (base === '') base = '_';
  for (let n = 1; n < 1_000_000; n++) {
    const tail = `~${n}`;
    const candidate = (base.slice(0, 8 - tail.length) + tail).padEnd(8, ' ') + ext.padEnd(3, ' ');
    if (!taken.has(candidate)) return Buffer.from(candidate, 'latin1');
  }
  throw new FatError(`no free short name for '${name}'`);
}

/** Checks a volume label (<= 11 short-name characters or spaces, upper case) and returns it. */
export function checkLabel(label: string): string {
  if (label.length > 11) throw new FatError(`volume label '${label}' is longer than 11 characters`);
  for (const c of label) {
    if (c !== ' ' && !isShortChar(c)) throw new FatError(`volume label '${label}': character ${JSON.stringify(c)} not allowed (upper case A-Z, 0-9, ${SHORT_SPECIALS} and space)`);
  }
  if (label.startsWith(' ')) throw new FatError(`volume label '${label}' cannot start with a space`);
  return label.trimEnd();
}
