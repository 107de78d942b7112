// Reproducible builds and the input ISO kept intact: building the same input
// twice (different directories, more than a second apart) gives a
// bit-identical universal ISO and identical view bytes; the universal ISO
// keeps the input's El Torito boot (same platform, emulation, load size,
// boot image path and options, pointing at the relocated isolinux.bin with a
// correct boot info table), its isohybrid MBR, every input file with its
// bytes and metadata but the root squashfs (replaced by uniso's, whose data
// blocks are the pool), and adds exactly /uniso/{uniso.json,catalog.sqlite,pool.bin}.
// Oracles: xorriso's reports and extraction, and the raw sectors a BIOS reads.

import t from 'tap';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as crypto from 'node:crypto';
import { buildUniversal, fixture, must, mustUniso, run, tempDir, readAt,
} from './lib/fixture';
import { compareTrees } from './lib/treecmp';

const fx = fixture();
const dir = tempDir(t, 'uniso-repro-');
const SECTOR = 2048;

function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

function subdir(name: string): string {
  const d = path.join(dir, name);
  fs.mkdirSync(d);
  return d;
}

const sha256 = (b: Buffer) => crypto.createHash('sha256').update(b).digest('hex');

// two builds of the fixture ISO, 1.1 s apart
const isoA = buildUniversal(subdir('a'));
sleepSync(1100);
const isoB = buildUniversal(subdir('b'));

t.test('the same ISO input twice gives bit-identical universal ISOs', async (t) => {
  t.equal(run('cmp', [isoA, isoB]).code, 0, 'cmp finds no difference');
  t.equal(sha256(fs.readFileSync(isoA)), sha256(fs.readFileSync(isoB)), 'same SHA-256');
});

t.test('and identical view bytes', async (t) => {
  type V = { path: string; size: number; sha256: string | null };
  const la = JSON.parse(mustUniso(['ls', '--json', isoA]).stdout) as V[];
  const lb = JSON.parse(mustUniso(['ls', '--json', isoB]).stdout) as V[];
  t.same(la, lb, 'same listing, sizes and checksums');
  const files = la.filter((v) => !v.path.endsWith('/'));
  t.ok(files.length >= 15, `${files.length} file views`);
  for (const v of files) {
    const a = mustUniso(['extract', isoA, v.path, '-o', '-']).out;
    const b = mustUniso(['extract', isoB, v.path, '-o', '-']).out;
    t.equal(a.length, v.size, `${v.path}: ${v.size} bytes`);
    t.ok(a.equals(b), `${v.path}: same bytes from both builds`);
    t.equal(sha256(a), v.sha256, `${v.path}: matches its recorded SHA-256`);
  }
});

t.test('the same directory input twice gives bit-identical universal ISOs', async (t) => {
  const a = buildUniversal(subdir('dir-a'), fx.tree);
  sleepSync(1100);
  const b = buildUniversal(subdir('dir-b'), fx.tree);
  t.equal(run('cmp', [a, b]).code, 0, 'cmp finds no difference');
});

// ---- the input ISO's boot records and files ----------------------------------------


function report(iso: string, what: string): string[] {
  return must('xorriso', ['-indev', iso, what, 'plain']).stdout.split('\n').filter(Boolean);
}

/** LBA of each file, from xorriso's report_lba. */
function fileLbas(iso: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const l of must('xorriso', ['-indev', iso, '-find', '/', '-exec', 'report_lba', '--']).stdout.split('\n')) {
    const m = /^File data lba:\s*\d+\s*,\s*(\d+)\s*,\s*\d+\s*,\s*\d+\s*,\s*'(.*)'\s*$/.exec(l);
    if (m) out.set(m[2], Number(m[1]));
  }
  return out;
}

interface ElTorito {
  catalogLba: number;
  platform: number;
  bootable: number;
  media: number;
  loadSegment: number;
  sectorCount: number;
  loadRba: number;
}

/** The El Torito boot record (sector 17) and the catalog it points at, as a BIOS reads them. */
function elTorito(iso: string): ElTorito {
  const brvd = readAt(iso, 17 * SECTOR, SECTOR);
  if (brvd[0] !== 0 || brvd.toString('latin1', 1, 6) !== 'CD001' || !brvd.toString('latin1', 7, 30).startsWith('EL TORITO SPECIFICATION')) {
    throw new Error(`${iso}: no El Torito boot record at sector 17`);
  }
  const catalogLba = brvd.readUInt32LE(0x47);
  const cat = readAt(iso, catalogLba * SECTOR, 64);
  let sum = 0;
  for (let i = 0; i < 32; i += 2) sum = (sum + cat.readUInt16LE(i)) & 0xffff;
  if (cat[0] !== 1 || cat[30] !== 0x55 || cat[31] !== 0xaa || sum !== 0) throw new Error(`${iso}: bad El Torito validation entry`);
  return {
    catalogLba, platform: cat[1], bootable: cat[32], media: cat[33], loadSegment: cat.readUInt16LE(34),
    sectorCount: cat.readUInt16LE(38), loadRba: cat.readUInt32LE(40),
  };
}

const inIso = fx.iso;
const uni = isoA;

t.test('xorriso -report_el_torito: same boot image, relocated', async (t) => {
  const a = report(inIso, '-report_el_torito');
  const b = report(uni, '-report_el_torito');
  const pick = (lines: string[], key: string) => lines.filter((l) => l.startsWith(key)).map((l) => l.slice(l.indexOf(':') + 1).trim());
  t.ok(pick(a, 'El Torito boot img').length >= 1, 'the input has a boot image');
  t.same(pick(b, 'El Torito cat path'), pick(a, 'El Torito cat path'), 'same boot catalog path');
  t.same(pick(b, 'El Torito images'), pick(a, 'El Torito images'), 'same image table layout');
  t.same(pick(b, 'El Torito img path'), pick(a, 'El Torito img path'), 'same boot image path');
  t.same(pick(b, 'El Torito img path'), ['1  /isolinux/isolinux.bin'], 'the isolinux boot image');
  t.same(pick(b, 'El Torito img opts'), pick(a, 'El Torito img opts'), 'same boot image options (boot-info-table, isohybrid)');
  // N Pltf B Emul Ld_seg Hdpt Ldsiz LBA: all but the LBA must match
  const fields = (lines: string[]) => pick(lines, 'El Torito boot img').map((l) => l.split(/\s+/));
  t.same(fields(b).map((f) => f.slice(0, -1)), fields(a).map((f) => f.slice(0, -1)), 'same number, platform, bootable flag, emulation, load segment and size');
  t.equal(fields(b)[0]?.[1], 'BIOS', 'platform BIOS');
  t.equal(Number(fields(a)[0].at(-1)), fileLbas(inIso).get('/isolinux/isolinux.bin'), 'input: boot image LBA is isolinux.bin');
  t.equal(Number(fields(b)[0].at(-1)), fileLbas(uni).get('/isolinux/isolinux.bin'), 'universal: boot image LBA is isolinux.bin');
  const catCount = (lines: string[]) => pick(lines, 'El Torito catalog').map((l) => l.split(/\s+/)[1]);
  t.same(catCount(b), catCount(a), 'same number of boot catalog entries');
});

t.test('El Torito as a BIOS reads it (sector 17, boot catalog)', async (t) => {
  const a = elTorito(inIso);
  const b = elTorito(uni);
  const { catalogLba: _ca, loadRba: _la, ...restA } = a;
  const { catalogLba: _cb, loadRba: _lb, ...restB } = b;
  t.same(restB, restA, 'same platform, boot indicator, emulation, load segment, sector count');
  t.equal(b.bootable, 0x88, 'bootable');
  t.equal(b.loadRba, fileLbas(uni).get('/isolinux/isolinux.bin'), 'the default entry loads isolinux.bin');
  const xu = report(uni, '-report_el_torito').find((l) => l.startsWith('El Torito catalog'))!;
  t.equal(Number(xu.split(':')[1].trim().split(/\s+/)[0]), b.catalogLba, 'the boot record points at the catalog xorriso reports');
});

t.test('isohybrid MBR kept', async (t) => {
  const ma = readAt(inIso, 0, 512);
  const mb = readAt(uni, 0, 512);
  t.ok(mb.subarray(0, 432).equals(ma.subarray(0, 432)), 'same MBR boot code (isohdpfx)');
  t.ok(mb.subarray(0, 432).equals(fs.readFileSync('/usr/lib/ISOLINUX/isohdpfx.bin')), 'which is isohdpfx.bin');
  t.equal(mb.readUInt32LE(432), fileLbas(uni).get('/isolinux/isolinux.bin')! * 4, 'the MBR points at isolinux.bin (in 512-byte sectors)');
  t.equal(mb.readUInt16LE(510), 0xaa55, 'MBR signature');
  t.equal(mb[446], ma[446], 'partition 1: same status');
  t.equal(mb[446 + 4], ma[446 + 4], 'partition 1: same type');
  t.equal(mb.readUInt32LE(446 + 8), ma.readUInt32LE(446 + 8), 'partition 1: same start');
  const lines = (iso: string) => report(iso, '-report_system_area').filter((l) => /^(System area options|System area summary|Partition offset|MBR heads per cyl|MBR secs per head)/.test(l));
  t.same(lines(uni), lines(inIso), 'xorriso -report_system_area: same options, summary and geometry');
  t.ok(lines(uni).length >= 4, 'system area reported');
});

t.test('the input ISO\'s files are kept with their bytes and metadata', async (t) => {
  const xa = path.join(dir, 'x-input');
  const xb = path.join(dir, 'x-universal');
  must('xorriso', ['-osirrox', 'on', '-indev', inIso, '-extract', '/', xa]);
  must('xorriso', ['-osirrox', 'on', '-indev', uni, '-extract', '/', xb]);
  t.ok(fs.existsSync(path.join(xa, 'casper/10root.squashfs')) && fs.existsSync(path.join(xa, 'isolinux/isolinux.bin')), 'the input has casper/ and isolinux/');
  // isolinux.bin carries a boot info table and boot.cat the boot image LBA, both rewritten for the new layout
  const patched = ['isolinux/isolinux.bin', 'isolinux/boot.cat'];
  const squash = 'casper/10root.squashfs';
  t.same(compareTrees(xa, xb, { ignore: ['uniso', 'uniso/', squash, 'casper', ...patched] }), [],
    'every other input file and directory is identical (bytes, mode, mtime)');
  t.same(fs.readdirSync(path.join(xb, 'casper')), fs.readdirSync(path.join(xa, 'casper')), 'casper/ holds the same files');
  t.notOk(fs.readFileSync(path.join(xb, squash)).equals(fs.readFileSync(path.join(xa, squash))), `${squash}: replaced by uniso's`);
  const listing = (f: string) => must('unsquashfs', ['-lln', f]).stdout.split('\n').filter((l) => /^[-dlcbps][-rwxsStT]{9} /.test(l));
  t.same(listing(path.join(xb, squash)), listing(path.join(xa, squash)), `${squash}: the same tree (unsquashfs -lln)`);

  const ia = fs.readFileSync(path.join(xa, 'isolinux/isolinux.bin'));
  const ib = fs.readFileSync(path.join(xb, 'isolinux/isolinux.bin'));
  t.equal(ib.length, ia.length, 'isolinux.bin: same size');
  t.ok(Buffer.concat([ib.subarray(0, 8), ib.subarray(24)]).equals(Buffer.concat([ia.subarray(0, 8), ia.subarray(24)])),
    'isolinux.bin: identical but for the boot info table (bytes 8-23)');
  // boot info table: PVD LBA, file LBA, file length, checksum of the 32-bit words from byte 64 on
  const lba = fileLbas(uni).get('/isolinux/isolinux.bin')!;
  let csum = 0;
  for (let i = 64; i + 4 <= ib.length; i += 4) csum = (csum + ib.readUInt32LE(i)) >>> 0;
  const pvd = ib.readUInt32LE(8);
  t.equal(readAt(uni, pvd * SECTOR, 6).toString('latin1'), '\x01CD001', `boot info table: bi_pvd ${pvd} is a primary volume descriptor`);
  t.equal(ib.readUInt32LE(12), lba, 'boot info table: bi_file is isolinux.bin\'s LBA');
  t.equal(ib.readUInt32LE(16), ib.length, 'boot info table: bi_length');
  t.equal(ib.readUInt32LE(20), csum, 'boot info table: bi_csum');
  t.ok(readAt(uni, lba * SECTOR, ib.length).equals(ib), 'the boot image at that LBA is isolinux.bin');

  const ca = fs.readFileSync(path.join(xa, 'isolinux/boot.cat'));
  const cb = fs.readFileSync(path.join(xb, 'isolinux/boot.cat'));
  t.ok(Buffer.concat([cb.subarray(0, 40), cb.subarray(44)]).equals(Buffer.concat([ca.subarray(0, 40), ca.subarray(44)])),
    'boot.cat: identical but for the boot image LBA');
  t.equal(cb.readUInt32LE(40), lba, 'boot.cat: points at isolinux.bin');

  t.same(fs.readdirSync(path.join(xb, 'uniso')).sort(), ['catalog.sqlite', 'pool.bin', 'uniso.json'], '/uniso/ holds uniso.json, catalog.sqlite, pool.bin');
  t.same(fs.readdirSync(xb).sort(), [...fs.readdirSync(xa), 'uniso'].sort(), 'and nothing else was added at the top');
  const m = JSON.parse(fs.readFileSync(path.join(xb, 'uniso/uniso.json'), 'utf8')) as {
    format: string; catalog: { file: string; size: number; sha256: string };
    pool: { size: number; parts: { path: string; size: number; at: number; role: string }[] };
  };
  const cat = fs.readFileSync(path.join(xb, 'uniso/catalog.sqlite'));
  t.equal(m.format, 'uniso', 'uniso.json: format');
  t.equal(cat.toString('latin1', 0, 16), 'SQLite format 3\0', 'catalog.sqlite is SQLite');
  t.equal(m.catalog.size, cat.length, 'uniso.json: catalog size');
  t.equal(m.catalog.sha256, sha256(cat), 'uniso.json: catalog SHA-256');
  t.same(m.pool.parts.map((p) => [p.path, p.role]), [[squash, 'squashfs'], ['uniso/pool.bin', 'side']], 'uniso.json: the pool is the squashfs, then the side pool');
  for (const p of m.pool.parts) t.equal(p.size, fs.statSync(path.join(xb, p.path)).size, `uniso.json: ${p.path} size`);
  t.equal(m.pool.size, m.pool.parts.reduce((s, p) => s + p.size, 0), 'uniso.json: pool size');
  t.equal(mustUniso(['verify', '-q', xb]).code, 0, 'the extracted directory verifies as an image');
});
