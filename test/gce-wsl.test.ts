// The Google Compute Engine image (gce/NAME.tar.gz: disk.raw, sparse, in
// an oldgnu tar.gz) against GNU tar and bsdtar: one member of the disk's
// size, extracted sparse and equal to the raw view byte for byte, header
// fields as `tar --format=oldgnu -S` writes them, base-256 sizes for a
// disk over 8 GiB; and the WSL root file system (wsl/NAME.tar.gz) extracted
// the way `wsl --import` does (bsdtar -x -p --xattrs --numeric-owner),
// equal to the source tree.

import t from 'tap';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as zlib from 'node:zlib';
import { buildUniversal, fixture, FIXTURE_NAME, FIXTURE_TEMPLATE, mount, must, mustUniso, run, tempDir } from './lib/fixture';
import { compareTrees } from './lib/treecmp';

const fx = fixture();
const N = FIXTURE_NAME;
const SIZE = 256 * 1024 * 1024;
const dir = tempDir(t);
const uni = buildUniversal(dir, undefined, ['--formats', 'gce,wsl,raw,openvz']);
const mnt = mount(t, uni);
const GCE = path.join(mnt, `gce/${N}.tar.gz`);
const RAW = path.join(mnt, `raw/${N}.img`);
const WSL = path.join(mnt, `wsl/${N}.tar.gz`);
const env = { ...process.env, TZ: 'UTC', LC_ALL: 'C.UTF-8' };

/**
 * Compare two (sparse) files: same size, and the same bytes over the union
 * of both files' data extents (SEEK_DATA/SEEK_HOLE); elsewhere both read as
 * holes, i.e. zeros. Prints "equal SIZE COMPARED".
 */
const SPARSE_CMP = `
import os, sys
def extents(p):
    fd = os.open(p, os.O_RDONLY); size = os.fstat(fd).st_size; out = []; pos = 0
    while pos < size:
        try: d = os.lseek(fd, pos, os.SEEK_DATA)
        except OSError: break
        h = os.lseek(fd, d, os.SEEK_HOLE); out.append((d, h)); pos = h
    os.close(fd); return size, out
sa, ea = extents(sys.argv[1]); sb, eb = extents(sys.argv[2])
if sa != sb: print('size', sa, sb); sys.exit(1)
merged = []
for s, e in sorted(ea + eb):
    if merged and s <= merged[-1][1]: merged[-1][1] = max(merged[-1][1], e)
    else: merged.append([s, e])
fa, fb = open(sys.argv[1], 'rb'), open(sys.argv[2], 'rb'); n = 0
for s, e in merged:
    fa.seek(s); fb.seek(s); left = e - s
    while left:
        k = min(left, 1 << 20); x = fa.read(k); y = fb.read(k)
        if x != y or len(x) != k: print('differ in', s, e); sys.exit(1)
        left -= k; n += k
print('equal', sa, n)
`;

/** The tar stream's first header block and its sparse extension blocks, parsed. */
function sparseHeader(tarGz: string) {
  const head = zlib.gunzipSync(fs.readFileSync(tarGz)).subarray(0, 64 * 1024);
  const num = (b: Buffer, off: number, w: number): bigint => {
    if (b[off] === 0x80) {
      let v = 0n;
      for (let i = 1; i < w; i++) v = (v << 8n) | BigInt(b[off + i]);
      return v;
    }
    return BigInt(parseInt(b.subarray(off, off + w).toString('latin1').replace(/\0.*$/s, '').trim() || '0', 8));
  };
  const map: [bigint, bigint][] = [];
  const entries = (b: Buffer, off: number, n: number) => {
    for (let i = 0; i < n; i++) if (b[off + i * 24 + 12] !== 0) map.push([num(b, off + i * 24, 12), num(b, off + i * 24 + 12, 12)]);
  };
  const h = head.subarray(0, 512);
  entries(h, 386, 4);
  let ext = h[482];
  let blocks = 1;
  while (ext) {
    const x = head.subarray(blocks * 512, (blocks + 1) * 512);
    entries(x, 0, 21);
    ext = x[504];
    blocks++;
  }
  return { h, map, blocks, size: num(h, 124, 12), realsize: num(h, 483, 12), isextended: h[482] };
}

t.test('gce: gzip -t, one member disk.raw of the disk size, oldgnu sparse header', async (t) => {
  t.equal(run('gzip', ['-t', GCE]).code, 0, 'gzip -t');
  const list = must('tar', ['-tvzf', GCE], { env }).stdout.trim().split('\n');
  t.equal(list.length, 1, 'one member');
  t.match(list[0], new RegExp(`^-rw-r--r-- root/root +${SIZE} .* disk\\.raw$`), 'disk.raw, 0644, root/root, the disk size');
  t.same(must('bsdtar', ['-tzf', GCE]).stdout.trim().split('\n'), ['disk.raw'], 'bsdtar lists disk.raw');
  const gz = must('sh', ['-c', `gzip -dc '${GCE}' | file -`]).stdout;
  t.match(gz, /POSIX tar archive \(GNU\)/, 'file: GNU tar');
  const { h, map, blocks, size, realsize, isextended } = sparseHeader(GCE);
  t.equal(h.subarray(257, 265).toString('latin1'), 'ustar  \0', 'oldgnu magic "ustar  \\0"');
  t.equal(String.fromCharCode(h[156]), 'S', 'typeflag S (GNU sparse)');
  t.equal(realsize, BigInt(SIZE), 'realsize: the disk size');
  t.equal(size, map.reduce((s, [, n]) => s + n, 0n), 'size field: the sum of the regions stored');
  t.ok(map.length > 4 && isextended === 1 && blocks === 1 + Math.ceil((map.length - 4) / 21), `${map.length} regions: header + ${blocks - 1} extension block(s)`);
  let prevEnd = -1n;
  t.ok(map.every(([o, n]) => { const ok = o > prevEnd && o + n <= BigInt(SIZE); prevEnd = o + n; return ok; }), 'regions ordered, disjoint, inside the disk');
  t.ok(size < BigInt(SIZE) / 10n, `stores ${size} of ${SIZE} bytes`);
});

t.test('gce: GNU tar -xSzf extracts it sparse, equal to the raw view; bsdtar too', async (t) => {
  const tmp = tempDir(t);
  for (const [tool, args] of [['tar', ['-xSzf']], ['bsdtar', ['-xf']]] as const) {
    const x = path.join(tmp, tool);
    fs.mkdirSync(x);
    must(tool, [...args, GCE, '-C', x]);
    const out = path.join(x, 'disk.raw');
    t.equal(run('cmp', [out, RAW]).code, 0, `${tool}: cmp disk.raw against the raw view`);
    const st = fs.statSync(out);
    t.equal(st.size, SIZE, `${tool}: size`);
    t.ok(st.blocks * 512 < SIZE / 4, `${tool}: sparse (du: ${st.blocks * 512} bytes allocated of ${SIZE})`);
  }
});

t.test('gce: header fields as GNU tar --format=oldgnu -S writes them; size comparable to tar -Sczf', async (t) => {
  const tmp = tempDir(t);
  const src = path.join(tmp, 'src');
  fs.mkdirSync(src);
  must('cp', ['--sparse=always', RAW, path.join(src, 'disk.raw')]);
  const ours = sparseHeader(GCE).h;
  const mtime = Number(BigInt(parseInt(ours.subarray(136, 147).toString('latin1'), 8)));
  fs.utimesSync(path.join(src, 'disk.raw'), mtime, mtime);
  const ref = path.join(tmp, 'ref.tar.gz');
  must('tar', ['--format=oldgnu', '-Sczf', ref, '--owner=root:0', '--group=root:0', '--mode=0644', '-C', src, 'disk.raw']);
  const theirs = sparseHeader(ref).h;
  const fields: [string, number, number][] = [
    ['name', 0, 100], ['mode', 100, 8], ['uid', 108, 8], ['gid', 116, 8], ['mtime', 136, 12], ['typeflag', 156, 1],
    ['linkname', 157, 100], ['magic', 257, 8], ['uname', 265, 32], ['gname', 297, 32], ['devmajor', 329, 8], ['devminor', 337, 8],
    ['atime/ctime/offset/longnames/pad', 345, 41],
  ];
  for (const [name, off, len] of fields) t.same(ours.subarray(off, off + len), theirs.subarray(off, off + len), `${name} as GNU tar writes it`);
  t.match(ours.subarray(148, 156).toString('latin1'), /^[0-7]{6}\0 $/, 'chksum "%06o\\0 "');
  const a = fs.statSync(GCE).size;
  const b = fs.statSync(ref).size;
  t.comment(`gce view ${a} bytes, tar --format=oldgnu -Sczf ${b} bytes (ratio ${(a / b).toFixed(3)})`);
  t.ok(a < b * 1.1, 'within 10% of GNU tar + gzip -6');
  // GNU tar's own archive extracts to the same disk (the oracle agrees with itself)
  const x = path.join(tmp, 'x');
  fs.mkdirSync(x);
  must('tar', ['-xSzf', ref, '-C', x]);
  t.equal(run('cmp', [path.join(x, 'disk.raw'), RAW]).code, 0, 'reference archive round-trips');
});

t.test('gce: a 9 GiB disk needs base-256 fields; GNU tar and bsdtar still get every byte', async (t) => {
  const bigDir = tempDir(t);
  const big = buildUniversal(bigDir, undefined, ['--formats', 'gce,raw', '--disk-size', '9G']);
  const gce = path.join(bigDir, 'gce.tar.gz');
  const raw = path.join(bigDir, 'raw.img');
  mustUniso(['extract', big, `gce/${N}.tar.gz`, '-o', gce]);
  mustUniso(['extract', big, `raw/${N}.img`, '-o', raw]); // written sparse
  const BIG = 9 * 1024 ** 3;
  t.match(must('tar', ['-tvzf', gce], { env }).stdout, new RegExp(`^-rw-r--r-- root/root +${BIG} .* disk\\.raw\\n$`), 'GNU tar lists 9 GiB');
  const { h, map, realsize } = sparseHeader(gce);
  t.equal(h[483], 0x80, 'realsize in base-256');
  t.equal(realsize, BigInt(BIG), 'realsize value');
  const last = map[map.length - 1];
  t.ok(last[0] + last[1] > 8n * 1024n ** 3n, 'a map entry past 8 GiB (base-256 offset)');
  for (const [tool, args] of [['tar', ['-xSzf']], ['bsdtar', ['-xf']]] as const) {
    const x = path.join(bigDir, tool);
    fs.mkdirSync(x);
    must(tool, [...args, gce, '-C', x]);
    const out = path.join(x, 'disk.raw');
    t.match(must('python3', ['-c', SPARSE_CMP, out, raw]).stdout, new RegExp(`^equal ${BIG} \\d+`), `${tool}: extracted disk equals the raw view`);
    const st = fs.statSync(out);
    t.ok(st.blocks * 512 < 64 * 1024 * 1024, `${tool}: sparse (${st.blocks * 512} bytes allocated)`);
  }
});

t.test('wsl: gzip -t; members "./..." for the whole tree; bsdtar as wsl --import runs it restores the tree', async (t) => {
  t.equal(run('gzip', ['-t', WSL]).code, 0, 'gzip -t');
  const names = (tool: string) => must(tool, ['-tzf', WSL], { env }).stdout.split('\n').filter(Boolean).sort();
  const expected = new Set<string>(['./']);
  const walk = (rel: string) => {
    for (const n of fs.readdirSync(path.join(fx.tree, rel))) {
      const r = rel ? `${rel}/${n}` : n;
      const st = fs.lstatSync(path.join(fx.tree, r));
      if (st.isSocket()) continue; // tar cannot hold sockets
      expected.add(`./${r}${st.isDirectory() ? '/' : ''}`);
      if (st.isDirectory()) walk(r);
    }
  };
  walk('');
  t.same(names('tar'), [...expected].sort(), 'GNU tar: one member per source entry, root at the top');
  t.same(names('bsdtar'), names('tar'), 'bsdtar: the same members');
  const x = tempDir(t);
  must('bsdtar', ['-C', x, '-x', '-p', '--xattrs', '--numeric-owner', '-f', WSL]);
  t.same(compareTrees(fx.tree, x, { rootMtime: false }), [], 'extraction equals the source tree');
  const openvz = fs.readFileSync(path.join(mnt, `openvz/${FIXTURE_TEMPLATE}.tar.gz`));
  t.ok(fs.readFileSync(WSL).equals(openvz), 'the same bytes as the OpenVZ template (one shared recipe)');
});
