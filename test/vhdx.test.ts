// The dynamic VHDX view against qemu-img (info, check, compare with the raw
// view), and against [MS-VHDX] read back by hand: the file type identifier,
// both headers and region tables with their CRC-32C (computed here bit by
// bit, independently of src/checksum/crc32c.ts), the metadata items, and
// the BAT (payload entries, sector bitmap entries interleaved every chunk
// ratio, 1 MiB-aligned blocks, exactly the raw disk's non-zero blocks).
// Also: the view is reproducible, about the size of its data, and other
// disk sizes (300M, 1G, and 5G: a sector bitmap entry inside the BAT and
// data past 4 GiB) compare equal too.

import t, { Test } from 'tap';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { buildUniversal, FIXTURE_NAME, mount, must, mustUniso, run, tempDir, readAt } from './lib/fixture';
import { crc32c } from '../src/checksum/crc32c';

const N = FIXTURE_NAME;
const MiB = 1024 * 1024;
const SIZE = 256 * MiB;
const VIEW = `vhdx/${N}.vhdx`;
const RAW_VIEW = `raw/${N}.img`;

const dir = tempDir(t);
const uni = buildUniversal(dir, undefined, ['--formats', 'vhdx,raw']);
const mnt = mount(t, uni);
const VHDX = path.join(mnt, VIEW);
const RAW = path.join(mnt, RAW_VIEW);

/** CRC-32C bit by bit (Castagnoli, reflected 0x82F63B78): an implementation independent of the table-driven one. */
function crc32cBitwise(b: Uint8Array): number {
  let c = 0xffffffff;
  for (const x of b) {
    c ^= x;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
  }
  return (c ^ 0xffffffff) >>> 0;
}

/** The CRC-32C of `b` with its 4-byte checksum field at `at` taken as zero. */
function crcWithFieldZero(b: Buffer, at: number): number {
  const c = Buffer.from(b);
  c.writeUInt32LE(0, at);
  return crc32cBitwise(c);
}

/** GUID text to its on-disk form (Data1-3 little-endian). */
function guid(text: string): Buffer {
  const h = Buffer.from(text.replace(/-/g, ''), 'hex');
  const g = Buffer.from(h);
  g.writeUInt32LE(h.readUInt32BE(0), 0);
  g.writeUInt16LE(h.readUInt16BE(4), 4);
  g.writeUInt16LE(h.readUInt16BE(6), 6);
  return g;
}

const BAT_GUID = guid('2DC27766-F623-4200-9D64-115E9BFD4A08');
const METADATA_GUID = guid('8B7CA206-4790-4B9A-B8FE-575F050F886E');
const ITEMS: Record<string, { id: Buffer; flags: number; length: number }> = {
  fileParameters: { id: guid('CAA16737-FA36-4D43-B3B6-33F0AA44E76B'), flags: 4, length: 8 },
  virtualDiskSize: { id: guid('2FA54224-CD1B-4876-B211-5DBED83BF4B8'), flags: 6, length: 8 },
  page83: { id: guid('BECA12AB-B2E6-4523-93EF-C309E000C746'), flags: 6, length: 16 },
  logicalSectorSize: { id: guid('8141BF1D-A96F-4709-BA47-F233A8FAAB5F'), flags: 6, length: 4 },
  physicalSectorSize: { id: guid('CDA348C7-445D-4471-9CC9-E9885251C556'), flags: 6, length: 4 },
};

interface Parsed {
  batOffset: number;
  batLength: number;
  blockSize: number;
  diskSize: number;
  chunkRatio: number;
  /** payload block index -> file offset, for the FULLY_PRESENT ones */
  present: Map<number, number>;
  /** states of the sector bitmap entries */
  bitmapStates: number[];
  totalBatEntries: number;
}

/** Read the VHDX structures back, checking them against the spec on the way. */
function parseVhdx(tt: Test, file: string): Parsed {
  const fileSize = fs.statSync(file).size;
  const id = readAt(file, 0, 64 * 1024);
  tt.equal(id.subarray(0, 8).toString('latin1'), 'vhdxfile', 'file type identifier signature');
  tt.equal(id.subarray(8, 8 + 10).toString('utf16le'), 'uniso', 'creator (UTF-16LE)');

  const headers = [64 * 1024, 128 * 1024].map((off) => readAt(file, off, 4096));
  headers.forEach((h, i) => {
    tt.equal(h.subarray(0, 4).toString('latin1'), 'head', `header ${i + 1} signature`);
    tt.equal(h.readUInt32LE(4), crcWithFieldZero(h, 4), `header ${i + 1} CRC-32C over its 4 KiB`);
    tt.equal(h.readBigUInt64LE(8), BigInt(i + 1), `header ${i + 1} sequence number`);
    tt.ok(h.subarray(48, 64).every((x) => x === 0), `header ${i + 1} LogGuid zero`);
    tt.same([h.readUInt16LE(64), h.readUInt16LE(66)], [0, 1], 'LogVersion 0, Version 1');
    const logLength = h.readUInt32LE(68);
    const logOffset = Number(h.readBigUInt64LE(72));
    tt.ok(logLength >= MiB && logLength % MiB === 0 && logOffset >= MiB && logOffset % MiB === 0, `log at ${logOffset}, ${logLength} bytes, 1 MiB multiples`);
    tt.ok(readAt(file, logOffset, logLength).every((x) => x === 0), 'the log region is empty');
  });
  tt.ok(headers[0].subarray(16, 48).equals(headers[1].subarray(16, 48)), 'both headers: same FileWriteGuid and DataWriteGuid');
  tt.notOk(headers[0].subarray(16, 32).every((x) => x === 0), 'FileWriteGuid set');

  const tables = [192 * 1024, 256 * 1024].map((off) => readAt(file, off, 64 * 1024));
  tt.ok(tables[0].equals(tables[1]), 'the two region tables are identical');
  const rt = tables[0];
  tt.equal(rt.subarray(0, 4).toString('latin1'), 'regi', 'region table signature');
  tt.equal(rt.readUInt32LE(4), crcWithFieldZero(rt, 4), 'region table CRC-32C over its 64 KiB');
  tt.equal(rt.readUInt32LE(8), 2, 'two region entries');
  const regions = new Map<string, { offset: number; length: number; required: number }>();
  for (let i = 0; i < 2; i++) {
    const e = rt.subarray(16 + i * 32, 48 + i * 32);
    regions.set(e.subarray(0, 16).toString('hex'), { offset: Number(e.readBigUInt64LE(16)), length: e.readUInt32LE(24), required: e.readUInt32LE(28) });
  }
  const bat = regions.get(BAT_GUID.toString('hex'))!;
  const meta = regions.get(METADATA_GUID.toString('hex'))!;
  tt.ok(bat && meta, 'BAT and metadata regions');
  for (const r of [bat, meta]) {
    tt.equal(r.required, 1, 'region marked required');
    tt.ok(r.offset % MiB === 0 && r.length % MiB === 0 && r.offset >= MiB, 'region 1 MiB aligned, after the header section');
  }

  const m = readAt(file, meta.offset, meta.length);
  tt.equal(m.subarray(0, 8).toString('latin1'), 'metadata', 'metadata table signature');
  const count = m.readUInt16LE(10);
  tt.equal(count, 5, 'five metadata items');
  const items = new Map<string, Buffer>();
  for (let i = 0; i < count; i++) {
    const e = m.subarray(32 + i * 32, 64 + i * 32);
    const name = Object.keys(ITEMS).find((k) => ITEMS[k].id.equals(e.subarray(0, 16)));
    tt.ok(name, `metadata item ${i} known`);
    if (!name) continue;
    const off = e.readUInt32LE(16);
    const len = e.readUInt32LE(20);
    tt.same([len, e.readUInt32LE(24)], [ITEMS[name].length, ITEMS[name].flags], `${name}: length and flags`);
    tt.ok(off >= 64 * 1024 && off + len <= meta.length, `${name} inside the region, past the table`);
    items.set(name, m.subarray(off, off + len));
  }
  const blockSize = items.get('fileParameters')!.readUInt32LE(0);
  tt.equal(items.get('fileParameters')!.readUInt32LE(4), 0, 'LeaveBlocksAllocated 0, HasParent 0');
  const diskSize = Number(items.get('virtualDiskSize')!.readBigUInt64LE(0));
  const logical = items.get('logicalSectorSize')!.readUInt32LE(0);
  tt.equal(logical, 512, 'logical sector size 512');
  tt.ok([512, 4096].includes(items.get('physicalSectorSize')!.readUInt32LE(0)), 'physical sector size 512 or 4096');
  tt.notOk(items.get('page83')!.every((x) => x === 0), 'a virtual disk id');
  tt.ok(blockSize >= MiB && blockSize <= 256 * MiB && (blockSize & (blockSize - 1)) === 0, `block size ${blockSize}: a power of 2, 1..256 MiB`);

  const chunkRatio = (2 ** 23 * logical) / blockSize;
  const payloadBlocks = Math.ceil(diskSize / blockSize);
  const totalBatEntries = payloadBlocks + Math.floor((payloadBlocks - 1) / chunkRatio);
  tt.ok(totalBatEntries * 8 <= bat.length, `the BAT region holds all ${totalBatEntries} entries`);
  const b = readAt(file, bat.offset, bat.length);
  const present = new Map<number, number>();
  const bitmapStates: number[] = [];
  const offsets = new Set<number>();
  let bad = 0;
  for (let i = 0; i < bat.length / 8; i++) {
    const e = b.readBigUInt64LE(i * 8);
    const state = Number(e & 7n);
    const offset = Number(e >> 20n) * MiB;
    if (i >= totalBatEntries) {
      if (e !== 0n) bad++;
    } else if ((i + 1) % (chunkRatio + 1) === 0) {
      bitmapStates.push(state);
      if (e !== 0n) bad++; // SB_BLOCK_NOT_PRESENT
    } else if (state === 6) {
      const block = i - Math.floor(i / (chunkRatio + 1));
      if (offset < bat.offset + bat.length || offset + blockSize > fileSize || offsets.has(offset) || (e & 0xffff8n) !== 0n) bad++;
      offsets.add(offset);
      present.set(block, offset);
    } else if (e !== 0n) {
      bad++; // PAYLOAD_BLOCK_NOT_PRESENT, no offset
    }
  }
  tt.equal(bad, 0, 'every BAT entry: FULLY_PRESENT with a distinct 1 MiB-aligned in-file offset past the BAT, or all zero');
  return { batOffset: bat.offset, batLength: bat.length, blockSize, diskSize, chunkRatio, present, bitmapStates, totalBatEntries };
}

/** Indexes of the blocks of `file` holding a non-zero byte. */
function nonZeroBlocks(file: string, blockSize: number): Set<number> {
  const out = new Set<number>();
  const fd = fs.openSync(file, 'r');
  try {
    const buf = Buffer.alloc(blockSize);
    for (let i = 0; ; i++) {
      const n = fs.readSync(fd, buf, 0, blockSize, i * blockSize);
      if (n <= 0) break;
      if (buf.subarray(0, n).some((x) => x !== 0)) out.add(i);
    }
  } finally {
    fs.closeSync(fd);
  }
  return out;
}

function sha256(file: string): string {
  return crypto.createHash('sha256').update(fs.readFileSync(file)).digest('hex');
}

function qemuInfo(file: string): { format: string; 'virtual-size': number; 'cluster-size'?: number } {
  return JSON.parse(must('qemu-img', ['info', '-f', 'vhdx', '--output=json', file]).stdout);
}

t.test('CRC-32C: the check value, and the table-driven and bitwise versions agree', async (t) => {
  t.equal(crc32cBitwise(Buffer.from('123456789')), 0xe3069283, 'bitwise: CRC-32C("123456789")');
  t.equal(crc32c(Buffer.from('123456789')), 0xe3069283, 'src/checksum/crc32c.ts');
  const r = crypto.randomBytes(70000);
  t.equal(crc32c(r), crc32cBitwise(r), 'random 70000 bytes');
  t.equal(crc32c(r.subarray(1000), crc32c(r.subarray(0, 1000))), crc32c(r), 'continued CRC');
});

t.test('qemu-img info: vhdx, 256 MiB, 1 MiB blocks', async (t) => {
  const i = qemuInfo(VHDX);
  t.same([i.format, i['virtual-size'], i['cluster-size']], ['vhdx', SIZE, MiB]);
});

t.test('qemu-img check finds no errors', async (t) => {
  const r = run('qemu-img', ['check', '-f', 'vhdx', VHDX]);
  t.equal(r.code, 0, `${r.stdout.trim()} ${r.stderr.trim()}`);
  t.match(r.stdout, /No errors were found on the image/);
});

t.test('qemu-img compare: identical to the raw view', async (t) => {
  const r = run('qemu-img', ['compare', '-f', 'vhdx', '-F', 'raw', VHDX, RAW]);
  t.equal(r.code, 0, `${r.stdout.trim()} ${r.stderr.trim()}`);
  t.match(r.stdout, /Images are identical/);
});

t.test('structures read back: headers, region tables, metadata, BAT; blocks are the raw disk non-zero blocks', async (t) => {
  const p = parseVhdx(t, VHDX);
  t.equal(p.diskSize, SIZE, 'virtual disk size');
  const want = nonZeroBlocks(RAW, p.blockSize);
  t.same([...p.present.keys()].sort((a, b) => a - b), [...want].sort((a, b) => a - b), `present blocks = the raw view's ${want.size} non-zero 1 MiB blocks`);
  for (const [block, offset] of p.present) {
    if (!readAt(VHDX, offset, p.blockSize).equals(readAt(RAW, block * p.blockSize, p.blockSize))) t.fail(`block ${block} at ${offset} differs`);
  }
  const size = fs.statSync(VHDX).size;
  t.equal(size, p.batOffset + p.batLength + p.present.size * p.blockSize, 'the file ends with the last payload block');
  const rawData = nonZeroBlocks(RAW, 64 * 1024).size * 64 * 1024;
  t.comment(`VHDX ${(size / MiB).toFixed(1)} MiB: ${p.present.size} blocks of 1 MiB + ${(p.batOffset + p.batLength) / MiB} MiB of header section, log, metadata, BAT; ` +
    `the raw view holds ${(rawData / MiB).toFixed(1)} MiB of non-zero 64 KiB grains`);
});

t.test('a damaged header or region table: the CRC no longer matches, and qemu-img refuses the file', async (t) => {
  const copy = path.join(tempDir(t), 'damaged.vhdx');
  fs.copyFileSync(VHDX, copy);
  const fd = fs.openSync(copy, 'r+');
  try {
    for (const off of [64 * 1024 + 100, 128 * 1024 + 100]) fs.writeSync(fd, Buffer.from([0x5a]), 0, 1, off); // reserved bytes of both headers
  } finally {
    fs.closeSync(fd);
  }
  const h = readAt(copy, 64 * 1024, 4096);
  t.not(h.readUInt32LE(4), crcWithFieldZero(h, 4), 'header CRC-32C mismatch detected');
  const r = run('qemu-img', ['info', '-f', 'vhdx', copy]);
  t.not(r.code, 0, `qemu-img info fails: ${r.stderr.trim()}`);
  fs.copyFileSync(VHDX, copy);
  const fd2 = fs.openSync(copy, 'r+');
  try {
    fs.writeSync(fd2, Buffer.from([0x5a]), 0, 1, 192 * 1024 + 1000); // reserved bytes of region table 1
  } finally {
    fs.closeSync(fd2);
  }
  const rt = readAt(copy, 192 * 1024, 65536);
  t.not(rt.readUInt32LE(4), crcWithFieldZero(rt, 4), 'region table CRC-32C mismatch detected');
  t.not(run('qemu-img', ['info', '-f', 'vhdx', copy]).code, 0, 'qemu-img info fails');
});

t.test('reproducible: a second build gives the same bytes', async (t) => {
  const d2 = tempDir(t);
  const uni2 = buildUniversal(d2, undefined, ['--formats', 'vhdx,raw']);
  const out = path.join(d2, 'again.vhdx');
  mustUniso(['extract', '-q', uni2, VIEW, '-o', out]);
  t.equal(sha256(out), sha256(VHDX), 'same sha256');
  const sidecar = fs.readFileSync(path.join(mnt, `${VIEW}.sha256`), 'utf8');
  t.match(sidecar, sha256(VHDX), 'the .sha256 beside the view is its checksum');
});

for (const size of ['300M', '1G', '5G']) {
  t.test(`--disk-size ${size}: qemu-img check and compare`, async (t) => {
    const d = tempDir(t);
    const u = buildUniversal(d, undefined, ['--formats', size === '5G' ? 'vhdx,raw,vhd,vdi' : 'vhdx,raw', '--disk-size', size]);
    const vhdx = path.join(d, 'd.vhdx');
    const raw = path.join(d, 'd.img');
    mustUniso(['extract', '-q', u, VIEW, '-o', vhdx]);
    mustUniso(['extract', '-q', u, RAW_VIEW, '-o', raw]);
    const bytes = fs.statSync(raw).size;
    t.equal(qemuInfo(vhdx)['virtual-size'], bytes, `virtual size ${bytes}`);
    const c = run('qemu-img', ['check', '-f', 'vhdx', vhdx]);
    t.equal(c.code, 0, `check: ${c.stdout.trim()} ${c.stderr.trim()}`);
    const p = parseVhdx(t, vhdx);
    t.equal(p.diskSize, bytes);
    if (size === '5G') {
      t.same(p.bitmapStates, [0], 'one sector bitmap entry (after the first chunk), not present');
      t.ok([...p.present.keys()].some((b) => b >= p.chunkRatio), 'data past the first chunk (past 4 GiB): read through the interleaved entry');
    } else {
      t.same(p.bitmapStates, [], 'one chunk: no sector bitmap entry');
    }
    const r = run('qemu-img', ['compare', '-f', 'vhdx', '-F', 'raw', vhdx, raw]);
    t.equal(r.code, 0, `compare: ${r.stdout.trim()} ${r.stderr.trim()}`);
    t.comment(`${size}: VHDX ${(fs.statSync(vhdx).size / MiB).toFixed(0)} MiB, ${p.present.size} present blocks, BAT ${p.totalBatEntries} entries`);
    if (size === '5G') {
      // the other dynamic formats include the raw disk block by block: past 4 GiB too
      for (const [view, fmt] of [[`vhd/${FIXTURE_NAME}.vhd`, 'vpc'], [`vdi/${FIXTURE_NAME}.vdi`, 'vdi']]) {
        const f = path.join(d, `d.${fmt}`);
        mustUniso(['extract', '-q', u, view, '-o', f]);
        const rc = run('qemu-img', ['compare', '-f', fmt, '-F', 'raw', f, raw]);
        t.equal(rc.code, 0, `${view} past 4 GiB: ${rc.stdout.trim()} ${rc.stderr.trim()}`);
      }
    }
  });
}
