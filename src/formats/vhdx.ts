// Dynamic VHDX ([MS-VHDX] v1.0: Hyper-V, current Azure/Windows tooling):
// the 1 MiB header section (file type identifier, two headers, two region
// tables), an empty 1 MiB log, the metadata region, the BAT, then only the
// payload blocks that hold data, each the raw disk bytes. All-zero blocks
// are PAYLOAD_BLOCK_NOT_PRESENT (read as zeros: a dynamic disk has no
// parent). Every GUID is derived from the disk's content, never random.
//
// File layout (every object 1 MiB aligned, as the spec requires):
//   0          File Type Identifier   "vhdxfile" + creator (UTF-16LE)
//   64 KiB     Header 1               SequenceNumber 1
//   128 KiB    Header 2               SequenceNumber 2 (the current one)
//   192 KiB    Region Table 1         BAT and metadata entries
//   256 KiB    Region Table 2         the same
//   1 MiB      Log                    1 MiB of zeros (LogGuid zero: no entries)
//   2 MiB      Metadata Region        table + the five required items
//   3 MiB      BAT                    payload entries, a sector bitmap entry after every ChunkRatio
//   after BAT  payload blocks         BLOCK_SIZE each, in disk order

import * as crypto from 'node:crypto';
import { Format, FormatContext } from './context';
import { familyDisk } from './disk/disk';
import { SECTOR } from './disk/diskimage';
import { Recipe, RecipeBuilder } from '../recipe/recipe';
import { crc32c } from '../checksum/crc32c';

// ---- [MS-VHDX] structures (little-endian) ----------------------------------------
const KiB = 1024;
const MiB = 1024 * KiB;

/** 1 MiB payload blocks: what Microsoft recommends for Linux guests (ext4 spreads its metadata). */
export const BLOCK_SIZE = 1 * MiB;
const LOGICAL_SECTOR_SIZE = SECTOR;
const PHYSICAL_SECTOR_SIZE = 4096;
/** ChunkRatio = (2^23 * LogicalSectorSize) / BlockSize: payload blocks per sector bitmap block. */
export const CHUNK_RATIO = (2 ** 23 * LOGICAL_SECTOR_SIZE) / BLOCK_SIZE;

// header section
const FILE_TYPE_IDENTIFIER_OFFSET = 0;
const HEADER1_OFFSET = 64 * KiB;
const HEADER2_OFFSET = 128 * KiB;
const REGION_TABLE1_OFFSET = 192 * KiB;
const REGION_TABLE2_OFFSET = 256 * KiB;
const HEADER_SECTION_SIZE = 1 * MiB;
const FILE_TYPE_SIGNATURE = 'vhdxfile';
const CREATOR = 'uniso';
const HEADER_SIGNATURE = 'head';
const HEADER_SIZE = 4 * KiB; // the checksummed part of the 64 KiB header block
const HEADER_VERSION = 1;
const LOG_VERSION = 0;
const REGION_TABLE_SIGNATURE = 'regi';
const REGION_TABLE_SIZE = 64 * KiB;
const REGION_ENTRY_REQUIRED = 0x1;

// objects after the header section
const LOG_OFFSET = 1 * MiB;
const LOG_LENGTH = 1 * MiB;
const METADATA_OFFSET = 2 * MiB;
const METADATA_LENGTH = 1 * MiB;
const BAT_OFFSET = 3 * MiB;
const METADATA_SIGNATURE = 'metadata';
const METADATA_ITEMS_OFFSET = 64 * KiB; // items follow the 64 KiB table
const META_IS_VIRTUAL_DISK = 0x2;
const META_IS_REQUIRED = 0x4;

// BAT entries: State in bits 0-2, FileOffsetMB in bits 20-63. An all-zero entry is
// PAYLOAD_BLOCK_NOT_PRESENT (0) for a payload block, SB_BLOCK_NOT_PRESENT (0) for a sector bitmap.
const PAYLOAD_BLOCK_FULLY_PRESENT = 6;
const BAT_ENTRY_SIZE = 8;

// well-known GUIDs
const BAT_GUID = '2DC27766-F623-4200-9D64-115E9BFD4A08';
const METADATA_REGION_GUID = '8B7CA206-4790-4B9A-B8FE-575F050F886E';
const FILE_PARAMETERS_GUID = 'CAA16737-FA36-4D43-B3B6-33F0AA44E76B';
const VIRTUAL_DISK_SIZE_GUID = '2FA54224-CD1B-4876-B211-5DBED83BF4B8';
const PAGE_83_DATA_GUID = 'BECA12AB-B2E6-4523-93EF-C309E000C746';
const LOGICAL_SECTOR_SIZE_GUID = '8141BF1D-A96F-4709-BA47-F233A8FAAB5F';
const PHYSICAL_SECTOR_SIZE_GUID = 'CDA348C7-445D-4471-9CC9-E9885251C556';

/** A GUID in its on-disk form: Data1, Data2, Data3 little-endian, Data4 as is. */
function guid(text: string): Buffer {
  const h = Buffer.from(text.replace(/-/g, ''), 'hex');
  if (h.length !== 16) throw new Error(`bad GUID ${text}`);
  const g = Buffer.from(h);
  g.writeUInt32LE(h.readUInt32BE(0), 0);
  g.writeUInt16LE(h.readUInt16BE(4), 4);
  g.writeUInt16LE(h.readUInt16BE(6), 6);
  return g;
}

/** A version 4 style GUID (on-disk form) derived from the disk's identity. */
function derivedGuid(seed: Buffer, label: string): Buffer {
  const g = crypto.createHash('sha256').update('vhdx:').update(label).update(seed).digest().subarray(0, 16);
  g[7] = (g[7] & 0x0f) | 0x40; // Data3 (little-endian): version 4
  g[8] = (g[8] & 0x3f) | 0x80; // variant 10b
  return g;
}

/** Store the CRC-32C of `b` (its checksum field zero while computing) at `at`. */
function sealChecksum(b: Buffer, at: number): Buffer {
  b.writeUInt32LE(0, at);
  b.writeUInt32LE(crc32c(b), at);
  return b;
}

function fileTypeIdentifier(): Buffer {
  const b = Buffer.alloc(64 * KiB);
  b.write(FILE_TYPE_SIGNATURE, 0, 'latin1');
  b.write(CREATOR, 8, 'utf16le'); // Creator[256]: UTF-16, diagnostic only
  return b;
}

function header(sequenceNumber: bigint, fileWriteGuid: Buffer, dataWriteGuid: Buffer): Buffer {
  const h = Buffer.alloc(HEADER_SIZE);
  h.write(HEADER_SIGNATURE, 0, 'latin1');
  h.writeBigUInt64LE(sequenceNumber, 8);
  fileWriteGuid.copy(h, 16);
  dataWriteGuid.copy(h, 32);
  // LogGuid (48..63) zero: the log holds no entries to replay
  h.writeUInt16LE(LOG_VERSION, 64);
  h.writeUInt16LE(HEADER_VERSION, 66);
  h.writeUInt32LE(LOG_LENGTH, 68);
  h.writeBigUInt64LE(BigInt(LOG_OFFSET), 72);
  return sealChecksum(h, 4);
}

function regionTable(batLength: number): Buffer {
  const r = Buffer.alloc(REGION_TABLE_SIZE);
  r.write(REGION_TABLE_SIGNATURE, 0, 'latin1');
  const entries: [string, number, number][] = [
    [BAT_GUID, BAT_OFFSET, batLength],
    [METADATA_REGION_GUID, METADATA_OFFSET, METADATA_LENGTH],
  ];
  r.writeUInt32LE(entries.length, 8);
  entries.forEach(([id, offset, length], i) => {
    const at = 16 + i * 32;
    guid(id).copy(r, at);
    r.writeBigUInt64LE(BigInt(offset), at + 16);
    r.writeUInt32LE(length, at + 24);
    r.writeUInt32LE(REGION_ENTRY_REQUIRED, at + 28);
  });
  return sealChecksum(r, 4);
}

/** The metadata table and its items (the rest of the 1 MiB region is zeros). */
function metadata(diskSize: number, virtualDiskId: Buffer): Buffer {
  const fileParameters = Buffer.alloc(8);
  fileParameters.writeUInt32LE(BLOCK_SIZE, 0);
  fileParameters.writeUInt32LE(0, 4); // LeaveBlocksAllocated 0, HasParent 0
  const virtualDiskSize = Buffer.alloc(8);
  virtualDiskSize.writeBigUInt64LE(BigInt(diskSize));
  const logical = Buffer.alloc(4);
  logical.writeUInt32LE(LOGICAL_SECTOR_SIZE);
  const physical = Buffer.alloc(4);
  physical.writeUInt32LE(PHYSICAL_SECTOR_SIZE);
  const items: [string, Buffer, number][] = [
    [FILE_PARAMETERS_GUID, fileParameters, META_IS_REQUIRED],
    [VIRTUAL_DISK_SIZE_GUID, virtualDiskSize, META_IS_REQUIRED | META_IS_VIRTUAL_DISK],
    [PAGE_83_DATA_GUID, virtualDiskId, META_IS_REQUIRED | META_IS_VIRTUAL_DISK],
    [LOGICAL_SECTOR_SIZE_GUID, logical, META_IS_REQUIRED | META_IS_VIRTUAL_DISK],
    [PHYSICAL_SECTOR_SIZE_GUID, physical, META_IS_REQUIRED | META_IS_VIRTUAL_DISK],
  ];
  const itemBytes = items.reduce((n, [, data]) => n + data.length, 0);
  const m = Buffer.alloc(METADATA_ITEMS_OFFSET + itemBytes);
  m.write(METADATA_SIGNATURE, 0, 'latin1');
  m.writeUInt16LE(items.length, 10); // EntryCount
  let offset = METADATA_ITEMS_OFFSET;
  items.forEach(([id, data, flags], i) => {
    const at = 32 + i * 32;
    guid(id).copy(m, at);
    m.writeUInt32LE(offset, at + 16);
    m.writeUInt32LE(data.length, at + 20);
    m.writeUInt32LE(flags, at + 24);
    data.copy(m, offset);
    offset += data.length;
  });
  return m;
}

/** Payload block count, and BAT entries with the interleaved sector bitmap entries (dynamic, no parent). */
export function batGeometry(diskSize: number): { payloadBlocks: number; totalBatEntries: number; batLength: number } {
  const payloadBlocks = Math.ceil(diskSize / BLOCK_SIZE);
  const totalBatEntries = payloadBlocks + Math.floor((payloadBlocks - 1) / CHUNK_RATIO);
  const batLength = Math.ceil((totalBatEntries * BAT_ENTRY_SIZE) / MiB) * MiB;
  return { payloadBlocks, totalBatEntries, batLength };
}

/** BAT index of payload block `b`: a sector bitmap entry follows every CHUNK_RATIO payload entries. */
function batIndex(b: number): number {
  return b + Math.floor(b / CHUNK_RATIO);
}

/** Ascending indexes of the payload blocks that hold a non-zero byte (pool blocks count as data). */
function presentBlocks(d: ReturnType<typeof familyDisk>): number[] {
  const out: number[] = [];
  const add = (b: number) => {
    if (out.length === 0 || out[out.length - 1] < b) out.push(b);
  };
  for (const p of d.image.pieces) {
    const len = p.kind === 'lit' ? p.data.length : p.len;
    if (len === 0) continue;
    const first = Math.floor(p.offset / BLOCK_SIZE);
    const last = Math.floor((p.offset + len - 1) / BLOCK_SIZE);
    for (let b = first; b <= last; b++) {
      if (p.kind === 'lit') {
        const from = Math.max(0, b * BLOCK_SIZE - p.offset);
        const to = Math.min(len, (b + 1) * BLOCK_SIZE - p.offset);
        if (!p.data.subarray(from, to).some((x) => x !== 0)) continue;
      }
      add(b);
    }
  }
  return out;
}

/** Gaps of zero BAT entries at least this long become zero runs, not literal bytes. */
const BAT_ZERO_GAP = 4 * KiB;

export function vhdxRecipe(ctx: FormatContext): Recipe {
  const d = familyDisk(ctx, 'vm');
  if (d.size % LOGICAL_SECTOR_SIZE !== 0) throw new Error('VHDX: the disk size must be a multiple of the logical sector size');
  const { batLength } = batGeometry(d.size);
  const payloadStart = BAT_OFFSET + batLength;
  const present = presentBlocks(d);

  // the disk's bytes follow from its tree (prep.uuid is a digest of it), its size and the firmware option
  const seed = Buffer.concat([d.prep.uuid, Buffer.from(`${d.size}:${ctx.options.firmware}`)]);
  const fileWriteGuid = derivedGuid(seed, 'FileWriteGuid');
  const dataWriteGuid = derivedGuid(seed, 'DataWriteGuid');
  const virtualDiskId = derivedGuid(seed, 'VirtualDiskId');

  const rb = new RecipeBuilder();
  let pos = 0;
  const at = (offset: number) => {
    if (offset < pos) throw new Error('VHDX layout overlaps');
    rb.zero(offset - pos);
    pos = offset;
  };
  const put = (b: Buffer) => {
    rb.literal(b);
    pos += b.length;
  };

  // header section
  at(FILE_TYPE_IDENTIFIER_OFFSET);
  put(fileTypeIdentifier());
  at(HEADER1_OFFSET);
  put(header(1n, fileWriteGuid, dataWriteGuid));
  at(HEADER2_OFFSET);
  put(header(2n, fileWriteGuid, dataWriteGuid));
  const rt = regionTable(batLength);
  at(REGION_TABLE1_OFFSET);
  put(rt);
  at(REGION_TABLE2_OFFSET);
  put(rt);
  at(HEADER_SECTION_SIZE);

  // the log (zeros), then the metadata region
  at(METADATA_OFFSET);
  put(metadata(d.size, virtualDiskId));

  // the BAT: literal runs around the present entries, zero runs elsewhere
  at(BAT_OFFSET);
  let run: Buffer[] = [];
  let runEnd = BAT_OFFSET; // file offset just after the pending literal run
  const flush = () => {
    if (run.length) put(Buffer.concat(run));
    run = [];
  };
  present.forEach((b, i) => {
    const entryAt = BAT_OFFSET + batIndex(b) * BAT_ENTRY_SIZE;
    if (entryAt - runEnd >= BAT_ZERO_GAP) {
      flush();
      at(entryAt);
    } else if (entryAt > runEnd) {
      run.push(Buffer.alloc(entryAt - runEnd));
    }
    const e = Buffer.alloc(BAT_ENTRY_SIZE);
    const fileOffset = payloadStart + i * BLOCK_SIZE; // a multiple of 1 MiB
    e.writeBigUInt64LE(BigInt(fileOffset) | BigInt(PAYLOAD_BLOCK_FULLY_PRESENT));
    run.push(e);
    runEnd = entryAt + BAT_ENTRY_SIZE;
  });
  flush();

  // the payload blocks, full BLOCK_SIZE each (the last one zero-padded past the disk's end),
  // included from the raw disk (the catalog keeps its literals once for every disk format)
  at(payloadStart);
  for (const b of present) {
    const blockStart = pos;
    const from = b * BLOCK_SIZE;
    const to = Math.min(d.size, from + BLOCK_SIZE);
    rb.include(d.raw, from, to);
    pos += to - from;
    at(blockStart + BLOCK_SIZE);
  }
  return rb.build();
}

export const vhdx: Format = {
  name: 'vhdx',
  family: 'vm',
  async build(ctx) {
    return [{ path: `vhdx/${ctx.names.name}.vhdx`, recipe: vhdxRecipe(ctx), format: 'vhdx', description: 'dynamic VHDX (Hyper-V)' }];
  },
};
