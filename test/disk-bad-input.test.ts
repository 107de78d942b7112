// Bad input for the disk views: a tree larger than --disk-size, one file
// larger than the disk, a name longer than ext4's 255 bytes, a directory
// loop in a variant tree, bad --disk-size / --memory values, and an
// appliance without a kernel (a documented warning, not an error). Each
// error is one line naming the file and the problem, with nothing written.

import t from 'tap';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fixture, FIXTURE_NAME, must, mustUniso, pseudoRandom, run, tempDir, uniso, TEST_DISK_SIZE } from './lib/fixture';

function oneLineError(tt: typeof t, r: { code: number; stderr: string }, re: RegExp, what: string): void {
  tt.not(r.code, 0, `${what}: non-zero exit`);
  tt.not(r.code, 70, `${what}: not an internal error`);
  const lines = r.stderr.split('\n').filter(Boolean);
  tt.equal(lines.length, 1, `${what}: one line (${r.stderr.trim()})`);
  tt.match(lines[0] ?? '', /^uniso: /, `${what}: starts with "uniso: "`);
  tt.match(lines[0] ?? '', re, `${what}: says what is wrong`);
}

function nothingWritten(tt: typeof t, dir: string, what: string): void {
  tt.same(fs.readdirSync(dir), [], `${what}: nothing left in the output directory`);
}

function smallTree(root: string): void {
  fs.mkdirSync(path.join(root, 'etc'), { recursive: true });
  fs.writeFileSync(path.join(root, 'etc/os-release'), 'ID=debian\n');
}

t.test('a tree larger than --disk-size', async (t) => {
  const src = path.join(tempDir(t), 'tree');
  smallTree(src);
  fs.mkdirSync(path.join(src, 'data'));
  for (let i = 0; i < 12; i++) fs.writeFileSync(path.join(src, 'data', `f${i}`), pseudoRandom(8 << 20, i + 1));
  const out = tempDir(t);
  const r = uniso(['build', src, '-o', path.join(out, 'u.iso'), '-q', '--name', FIXTURE_NAME, '--disk-size', '96M']);
  oneLineError(t, r, /vm disk image: the tree does not fit in a \d+ MiB file system.*--disk-size/, 'too big a tree');
  nothingWritten(t, out, 'too big a tree');
});

t.test('a file larger than the disk', async (t) => {
  const src = path.join(tempDir(t), 'tree');
  smallTree(src);
  fs.writeFileSync(path.join(src, 'big.bin'), pseudoRandom(80 << 20, 7));
  const out = tempDir(t);
  const r = uniso(['build', src, '-o', path.join(out, 'u.iso'), '-q', '--name', FIXTURE_NAME, '--disk-size', '96M']);
  oneLineError(t, r, /\/big\.bin \(83886080 bytes\) is larger than the \d+ MiB file system; give a larger --disk-size/, 'one file too big');
  nothingWritten(t, out, 'one file too big');
});

t.test('a disk too small for the partition layout', async (t) => {
  const src = path.join(tempDir(t), 'tree');
  smallTree(src);
  const out = tempDir(t);
  const r = uniso(['build', src, '-o', path.join(out, 'u.iso'), '-q', '--name', FIXTURE_NAME, '--disk-size', '64M']);
  oneLineError(t, r, /--disk-size 67108864 bytes: too small for the hybrid disk layout \(the root partition starts at 64 MiB\)/, 'disk too small');
  nothingWritten(t, out, 'disk too small');
});

t.test('a name longer than 255 bytes (256: the squashfs holds it, ext4 does not)', async (t) => {
  const d = tempDir(t);
  const tarFile = path.join(d, 'long.tar');
  const py = `
import tarfile, io, sys
with tarfile.open(sys.argv[1], 'w', format=tarfile.PAX_FORMAT) as tf:
    ti = tarfile.TarInfo('etc'); ti.type = tarfile.DIRTYPE; ti.mode = 0o755; tf.addfile(ti)
    data = b'x\\n'
    ti = tarfile.TarInfo('etc/' + 'n' * 256); ti.size = len(data); tf.addfile(ti, io.BytesIO(data))
`;
  must('python3', ['-c', py, tarFile]);
  const out = tempDir(t);
  const r = uniso(['build', tarFile, '-o', path.join(out, 'u.iso'), '-q', '--name', FIXTURE_NAME, '--disk-size', TEST_DISK_SIZE]);
  oneLineError(t, r, new RegExp(`/etc/n{256}: file name longer than 255 bytes`), 'long name');
  nothingWritten(t, out, 'long name');
});

t.test('a directory loop in a variant tree', async (t) => {
  const d = tempDir(t);
  const v = path.join(d, 'variant');
  smallTree(v);
  fs.mkdirSync(path.join(v, 'a/b/loop'), { recursive: true });
  must('mount', ['--bind', path.join(v, 'a'), path.join(v, 'a/b/loop')]);
  t.teardown(() => { run('umount', ['-l', path.join(v, 'a/b/loop')]); });
  const out = tempDir(t);
  const r = uniso(['build', fixture().iso, '-o', path.join(out, 'u.iso'), '-q', '--variant', `vm=${v}`, '--disk-size', TEST_DISK_SIZE]);
  oneLineError(t, r, /a\/b\/loop.*: directory loop/, 'directory loop');
  nothingWritten(t, out, 'directory loop');
});

t.test('bad --disk-size and --memory values', async (t) => {
  const out = tempDir(t);
  for (const [args, re] of [
    [['--disk-size', 'big'], /--disk-size big: expected a size/],
    [['--disk-size', '10M'], /--disk-size 10M: the disk must be at least 64M/],
    [['--memory', '12'], /--memory 12: expected MB/],
  ] as [string[], RegExp][]) {
    const r = uniso(['build', fixture().iso, '-o', path.join(out, 'u.iso'), '-q', ...args]);
    oneLineError(t, r, re, args.join(' '));
  }
  nothingWritten(t, out, 'bad options');
});

t.test('an appliance without a kernel: disk views with a warning in uniso info and README.txt', async (t) => {
  const src = path.join(tempDir(t), 'tree');
  smallTree(src); // no /boot at all
  const out = tempDir(t);
  const iso = path.join(out, 'u.iso');
  mustUniso(['build', src, '-o', iso, '-q', '--name', FIXTURE_NAME, '--disk-size', TEST_DISK_SIZE]);
  const info = JSON.parse(mustUniso(['info', '--json', iso]).stdout) as { warnings: string[]; views: { path: string }[] };
  t.ok(info.warnings.some((w) => /vm disk: no kernel found in \/boot/.test(w)), 'uniso info warns');
  t.ok(info.views.some((v) => v.path === `raw/${FIXTURE_NAME}.img`), 'the disk views are still built');
  const readme = mustUniso(['extract', iso, 'README.txt', '-o', '-']).stdout;
  t.match(readme, /Warnings:\n.*no kernel found in \/boot.*will not boot/, 'README.txt warns');
  t.match(mustUniso(['info', iso]).stdout, /warning: .*no kernel found/, 'uniso info (text) warns');
});
