// The VirtualBox VDI view and the fixed VHD for Azure against qemu-img (info,
// check, compare with the raw view), their headers/footers parsed field by
// field, cmp for the fixed VHD's data, at the default test disk size and at
// 257 MiB (not a whole number of 2 MiB blocks); a fixed VHD over a disk that
// is not a whole number of MiB gets zero padding (the CLI only makes whole
// MiB disks, so that case is built from a synthetic raw recipe); two builds
// give identical bytes.

import t, { Test } from 'tap';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as crypto from 'node:crypto';
import { buildUniversal, FIXTURE_NAME, mount, must, mustUniso, pseudoRandom, readAt, run, tempDir } from './lib/fixture';
import { RecipeBuilder } from '../src/recipe/recipe';
import { RecipeReader } from '../src/recipe/reader';
import type { BlockStore } from '../src/pool/reader';
import { fixedVhdRecipe } from '../src/formats/azure';

const N = FIXTURE_NAME;
const MiB = 1 << 20;
const FORMATS = ['--formats', 'vdi,azure,raw,qcow2,vhd'];

function info(file: string, fmt: string): { format: string; 'virtual-size': number } {
  return JSON.parse(must('qemu-img', ['info', '--output=json', '-f', fmt, file]).stdout);
}

function compareWithRaw(t: Test, file: string, fmt: string, raw: string): void {
  const r = run('qemu-img', ['compare', '-f', fmt, '-F', 'raw', file, raw]);
  t.equal(r.code, 0, `qemu-img compare -f ${fmt} ${path.basename(file)}: ${r.stdout.trim()}${r.stderr.trim()}`);
  t.match(r.stdout, /Images are identical/);
}

/** One's complement of the byte sum with the checksum field (64..67) left out: the VHD spec's rule, computed here. */
function vhdChecksum(f: Buffer): number {
  let sum = 0;
  for (let i = 0; i < 512; i++) if (i < 64 || i >= 68) sum += f[i];
  return ~sum >>> 0;
}

/** Check a fixed VHD footer field by field; returns its unique id. */
function checkFixedFooter(t: Test, f: Buffer, size: number): Buffer {
  t.equal(f.toString('latin1', 0, 8), 'conectix', 'cookie');
  t.equal(f.readUInt32BE(8), 2, 'features: reserved bit');
  t.equal(f.readUInt32BE(12), 0x00010000, 'format version 1.0');
  t.equal(f.readBigUInt64BE(16), 0xffffffffffffffffn, 'data offset: none (fixed disk)');
  t.equal(f.readBigUInt64BE(40), BigInt(size), 'original size');
  t.equal(f.readBigUInt64BE(48), BigInt(size), 'current size');
  t.equal(size % MiB, 0, 'a whole number of MiB');
  const chs = f.readUInt16BE(56) * f[58] * f[59];
  t.equal(chs * 512, size, `CHS ${f.readUInt16BE(56)}/${f[58]}/${f[59]} multiplies out to the size`);
  t.equal(f.readUInt32BE(60), 2, 'disk type: fixed');
  t.equal(f.readUInt32BE(64), vhdChecksum(f), 'checksum');
  const uid = f.subarray(68, 84);
  t.notOk(uid.every((b) => b === 0), 'unique id set');
  t.ok(f.subarray(85).every((b) => b === 0), 'reserved bytes zero');
  return Buffer.from(uid);
}

interface Built {
  iso: string;
  mnt: string;
  size: number;
}

function build(t: Test, sub: string, extra: string[], size: number): Built {
  const d = path.join(tempDir(t), sub);
  fs.mkdirSync(d);
  const iso = buildUniversal(d, undefined, [...extra, ...FORMATS]);
  return { iso, mnt: mount(t, iso), size };
}

const main = build(t, 'a', [], 256 * MiB);
const odd = build(t, 'odd', ['--disk-size', '257M'], 257 * MiB);

for (const b of [main, odd]) {
  const RAW = path.join(b.mnt, `raw/${N}.img`);
  const VDI = path.join(b.mnt, `vdi/${N}.vdi`);
  const AZ = path.join(b.mnt, `azure/${N}.vhd`);
  const VHD = path.join(b.mnt, `vhd/${N}.vhd`);
  const MB = b.size / MiB;

  t.test(`${MB} MiB disk: VDI: qemu-img info, check and compare with the raw view`, async (t) => {
    const i = info(VDI, 'vdi');
    t.same([i.format, i['virtual-size']], ['vdi', b.size], 'format and virtual size');
    const c = run('qemu-img', ['check', '-f', 'vdi', VDI]);
    t.equal(c.code, 0, `qemu-img check: ${c.stdout.trim()} ${c.stderr.trim()}`);
    t.match(c.stdout, /No errors were found on the image/);
    compareWithRaw(t, VDI, 'vdi', RAW);
  });

  t.test(`${MB} MiB disk: VDI pre-header, header and blocks array as VirtualBox writes them`, async (t) => {
    const h = readAt(VDI, 0, 472);
    t.equal(h.toString('latin1', 0, 40), '<<< Oracle VM VirtualBox Disk Image >>>\n', 'szFileInfo');
    t.ok(h.subarray(40, 64).every((x) => x === 0), 'szFileInfo NUL-padded');
    t.equal(h.readUInt32LE(64), 0xbeda107f, 'u32Signature');
    t.equal(h.readUInt32LE(68), 0x00010001, 'u32Version 1.1');
    t.equal(h.readUInt32LE(72), 400, 'cbHeader: VDIHEADER1PLUS');
    t.equal(h.readUInt32LE(76), 1, 'u32Type: normal (dynamic)');
    t.equal(h.readUInt32LE(80), 0, 'fFlags');
    t.ok(h.subarray(84, 340).every((x) => x === 0), 'szComment empty');
    const offBlocks = h.readUInt32LE(340);
    const offData = h.readUInt32LE(344);
    const cBlocks = Math.ceil(b.size / MiB);
    t.equal(offBlocks, MiB, 'offBlocks: 1 MiB aligned');
    t.equal(offData, Math.ceil((offBlocks + cBlocks * 4) / MiB) * MiB, 'offData: the next MiB after the blocks array');
    t.same([h.readUInt32LE(348), h.readUInt32LE(352), h.readUInt32LE(356), h.readUInt32LE(360)], [0, 0, 0, 512], 'LegacyGeometry: not calculated');
    t.equal(h.readUInt32LE(364), 0, 'u32Dummy');
    t.equal(h.readBigUInt64LE(368), BigInt(b.size), 'cbDisk');
    t.equal(h.readUInt32LE(376), MiB, 'cbBlock 1 MiB');
    t.equal(h.readUInt32LE(380), 0, 'cbBlockExtra');
    t.equal(h.readUInt32LE(384), cBlocks, 'cBlocks');
    const uuid = (at: number) => h.subarray(at, at + 16);
    const isNull = (u: Buffer) => u.every((x) => x === 0);
    t.notOk(isNull(uuid(392)), 'uuidCreate set');
    t.notOk(isNull(uuid(408)), 'uuidModify set (VirtualBox refuses a null one)');
    t.notOk(uuid(392).equals(uuid(408)), 'uuidCreate and uuidModify differ');
    t.ok(isNull(uuid(424)) && isNull(uuid(440)), 'uuidLinkage and uuidParentModify null: a base image');
    t.same([h.readUInt32LE(456), h.readUInt32LE(460), h.readUInt32LE(464), h.readUInt32LE(468)], [0, 0, 0, 512], 'LCHSGeometry: not calculated');
    t.ok(readAt(VDI, 472, offBlocks - 472).every((x) => x === 0), 'zeros up to the blocks array');
    // blocks array: allocated blocks numbered 0.. in disk order, the others free
    const map = readAt(VDI, offBlocks, cBlocks * 4);
    const allocated: number[] = [];
    for (let i = 0; i < cBlocks; i++) {
      const e = map.readUInt32LE(i * 4);
      if (e !== 0xffffffff) {
        t.equal(e, allocated.length, `block ${i} is data block ${allocated.length}`);
        allocated.push(i);
      }
    }
    t.equal(h.readUInt32LE(388), allocated.length, `cBlocksAllocated (${allocated.length} of ${cBlocks})`);
    t.ok(allocated.length > 0 && allocated.length < cBlocks, 'only the blocks with data are stored');
    t.equal(fs.statSync(VDI).size, offData + allocated.length * MiB, 'file size: data area + the allocated blocks');
    const fd = fs.openSync(RAW, 'r');
    const zero = Buffer.alloc(MiB);
    const buf = Buffer.alloc(MiB);
    let zeroFree = 0;
    for (let i = 0; i < cBlocks; i++) {
      if (allocated.includes(i)) continue;
      fs.readSync(fd, buf, 0, MiB, i * MiB);
      if (buf.equals(zero)) zeroFree++;
    }
    fs.closeSync(fd);
    t.equal(zeroFree, cBlocks - allocated.length, 'every free block is zeros in the raw view');
    for (const [k, i] of allocated.entries()) {
      if (!readAt(VDI, offData + k * MiB, MiB).equals(readAt(RAW, i * MiB, MiB))) t.fail(`data block ${k} = raw block ${i}`);
    }
  });

  t.test(`${MB} MiB disk: fixed VHD for Azure`, async (t) => {
    t.equal(fs.statSync(AZ).size, b.size + 512, 'file size: the disk, no padding (already whole MiB), the footer');
    const c = run('cmp', ['-n', String(b.size), AZ, RAW]);
    t.equal(c.code, 0, `cmp of the first ${b.size} bytes with the raw view: ${c.stdout}${c.stderr}`);
    const azUid = checkFixedFooter(t, readAt(AZ, b.size, 512), b.size);
    const i = info(AZ, 'vpc');
    t.same([i.format, i['virtual-size']], ['vpc', b.size], 'qemu-img info -f vpc: the exact virtual size');
    compareWithRaw(t, AZ, 'vpc', RAW);
    // the dynamic VHD shares the footer code: still its own type, offset and checksum
    const dyn = readAt(VHD, 0, 512);
    t.equal(dyn.readUInt32BE(60), 3, 'vhd/: disk type dynamic');
    t.equal(dyn.readBigUInt64BE(16), 512n, 'vhd/: data offset of the dynamic header');
    t.equal(dyn.readUInt32BE(64), vhdChecksum(dyn), 'vhd/: checksum');
    t.ok(readAt(VHD, fs.statSync(VHD).size - 512, 512).equals(dyn), 'vhd/: footer copy = footer');
    t.notOk(dyn.subarray(68, 84).equals(azUid), 'the two VHDs have different unique ids');
    t.same(info(VHD, 'vpc')['virtual-size'], b.size);
    compareWithRaw(t, VHD, 'vpc', RAW);
  });
}

t.test('reproducible: a second build gives the same VDI and Azure VHD bytes', async (t) => {
  const d = path.join(tempDir(t), 'b');
  fs.mkdirSync(d);
  const again = buildUniversal(d, undefined, FORMATS);
  const extract = (iso: string, v: string) => mustUniso(['extract', iso, v, '-o', '-', '-q']).out;
  const vdi = `vdi/${N}.vdi`;
  const vdiBytes = fs.readFileSync(path.join(main.mnt, vdi));
  t.ok(extract(again, vdi).equals(vdiBytes), `${vdi}: the same bytes (second build, uniso extract)`);
  t.equal(extract(main.iso, `${vdi}.sha256`).toString().split(' ')[0], crypto.createHash('sha256').update(vdiBytes).digest('hex'), `${vdi}.sha256`);
  // the build-time digests of the views' bytes
  const az = `azure/${N}.vhd.sha256`;
  t.ok(extract(again, az).equals(extract(main.iso, az)), az);
});

t.test('a disk that is not a whole number of MiB: zero padding, then the footer', async (t) => {
  const dir = tempDir(t);
  const disk = pseudoRandom(MiB + 3 * 65536 + 512, 7); // 1 MiB + 192.5 KiB
  const rb = new RecipeBuilder();
  rb.literal(disk);
  const raw = rb.build();
  const uid = crypto.createHash('sha256').update('test').digest().subarray(0, 16);
  const r = fixedVhdRecipe(raw, 12345, uid);
  t.equal(r.size, 2 * MiB + 512, 'rounded up to 2 MiB, plus the footer');
  const bytes = Buffer.alloc(r.size);
  const reader = new RecipeReader(r, {} as BlockStore); // literals and zeros only: no pool
  t.equal(await reader.pread(bytes, 0), r.size);
  t.ok(bytes.subarray(0, disk.length).equals(disk), 'the disk bytes');
  t.ok(bytes.subarray(disk.length, 2 * MiB).every((x) => x === 0), `${2 * MiB - disk.length} bytes of zero padding`);
  const f = bytes.subarray(2 * MiB);
  t.same(checkFixedFooter(t, f, 2 * MiB), uid, 'the unique id given');
  t.equal(f.readUInt32BE(24), 12345, 'timestamp');
  const vhdFile = path.join(dir, 'padded.vhd');
  const rawFile = path.join(dir, 'disk.img');
  fs.writeFileSync(vhdFile, bytes);
  fs.writeFileSync(rawFile, disk);
  t.equal(info(vhdFile, 'vpc')['virtual-size'], 2 * MiB, 'qemu-img info -f vpc: 2 MiB');
  compareWithRaw(t, vhdFile, 'vpc', rawFile); // qemu-img compares the longer image's tail with zeros
  bytes[100] ^= 1;
  fs.writeFileSync(vhdFile, bytes);
  t.equal(run('qemu-img', ['compare', '-f', 'vpc', '-F', 'raw', vhdFile, rawFile]).code, 1, 'one flipped bit: compare reports a difference');
});
