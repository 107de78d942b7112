// --firmware: the BIOS-only disk (an MBR, GRUB's core.img at LBA 1) and the
// UEFI-only disk (a GPT with the ESP and the root partition, no BIOS boot
// code), checked with sfdisk, sgdisk -v, fsck.fat and e2fsck; the OVF says
// which firmware; and a UEFI build without any GRUB for UEFI fails with one
// line and writes nothing. (The default, hybrid, is in disk-views.test.ts.)

import t, { Test } from 'tap';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { buildUniversal, fixture, FIXTURE_NAME, mount, must, run, tempDir, readAt, uniso, TEST_DISK_SIZE } from './lib/fixture';

const N = FIXTURE_NAME;
const MIB = 1024 * 1024;
const SIZE = 256 * MIB;
const GRUB = '/usr/lib/grub/i386-pc';
t.equal(TEST_DISK_SIZE, '256M');

function loopAt(tt: Test, image: string, offset: number, size?: number): string {
  const dev = must('losetup', ['--find', '--show', '--read-only', '--offset', String(offset),
    ...(size ? ['--sizelimit', String(size)] : []), image]).stdout.trim();
  tt.teardown(() => { run('losetup', ['-d', dev]); });
  return dev;
}

t.test('--firmware bios: one active Linux partition at 1 MiB, GRUB boot.img in the MBR and core.img at LBA 1', async (t) => {
  const uni = buildUniversal(tempDir(t), undefined, ['--formats', 'raw,ovf', '--firmware', 'bios']);
  const mnt = mount(t, uni);
  const raw = path.join(mnt, `raw/${N}.img`);
  const dump = must('sfdisk', ['--dump', raw]).stdout;
  t.match(dump, /label: dos/);
  t.match(dump, /start=\s*2048, size=\s*522240, type=83, bootable/, 'partition 1: LBA 2048 to the end, type 83, active');
  const mbr = readAt(raw, 0, 512);
  const bootImg = fs.readFileSync(path.join(GRUB, 'boot.img'));
  const diffs: number[] = [];
  for (let i = 0; i < 440; i++) if (mbr[i] !== bootImg[i]) diffs.push(i);
  t.ok(diffs.every((i) => (i >= 0x03 && i < 0x5a) || i === 0x66 || i === 0x67), `boot code differs from boot.img only where grub-bios-setup patches it (${diffs.length} bytes)`);
  t.same([mbr[0x66], mbr[0x67]], [0x90, 0x90], 'the floppy-only jump is disabled');
  t.same([mbr[510], mbr[511]], [0x55, 0xaa], 'boot signature');
  const core = path.join(tempDir(t), 'core.img');
  must('grub-mkimage', ['-O', 'i386-pc', '-d', GRUB, '-o', core, '-p', '(,msdos1)/boot/grub', 'biosdisk', 'part_msdos', 'ext2']);
  const want = fs.readFileSync(core);
  t.ok(readAt(raw, 512, want.length).equals(want), `core.img (${want.length} bytes) at LBA 1`);
  const e2 = run('e2fsck', ['-fn', loopAt(t, raw, MIB)]);
  t.equal(e2.code, 0, `e2fsck -fn: ${e2.stdout.trim().split('\n').pop()}`);
  t.notMatch(fs.readFileSync(path.join(mnt, `vm/${N}.ovf`), 'utf8'), /firmware/, 'the OVF asks for no particular firmware');
});

t.test('--firmware uefi: a GPT with the ESP and the root partition, no BIOS boot code', async (t) => {
  const uni = buildUniversal(tempDir(t), undefined, ['--formats', 'raw,qcow2', '--firmware', 'uefi']);
  const mnt = mount(t, uni);
  const raw = path.join(mnt, `raw/${N}.img`);
  const v = run('sgdisk', ['-v', raw]);
  t.match(v.stdout, /No problems found/, `sgdisk -v: ${v.stdout.trim()}`);
  const lines = must('sfdisk', ['--dump', raw]).stdout.split('\n').filter((l) => l.startsWith(raw));
  t.equal(lines.length, 2, 'two partitions');
  t.match(lines[0], /start=\s*2048, size=\s*129024, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B/, 'p1: ESP, 63 MiB at 1 MiB');
  t.match(lines[1], new RegExp(`start=\\s*131072, size=\\s*${(SIZE - 65 * MIB) / 512}, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4`), 'p2: root at 64 MiB');
  const pmbr = readAt(raw, 0, 512);
  t.ok(pmbr.subarray(0, 440).every((b) => b === 0), 'no boot code in the protective MBR');
  t.equal(pmbr[0x1be + 4], 0xee);
  const fsck = run('fsck.fat', ['-n', loopAt(t, raw, MIB, 63 * MIB)]);
  t.equal(fsck.code, 0, `fsck.fat -n: ${fsck.stdout.trim().split('\n').pop()}`);
  const dev = loopAt(t, raw, 64 * MIB);
  t.equal(run('e2fsck', ['-fn', dev]).code, 0, 'e2fsck -fn');
  const m = path.join(tempDir(t), 'root');
  fs.mkdirSync(m);
  must('mount', ['-o', 'ro', dev, m]);
  t.teardown(() => { run('umount', [m]); });
  t.notOk(fs.existsSync(path.join(m, 'boot/grub/i386-pc')), 'no BIOS GRUB modules on a UEFI-only disk');
  t.match(fs.readFileSync(path.join(m, 'boot/grub/grub.cfg'), 'utf8'), /insmod part_gpt/);
  const q = run('qemu-img', ['compare', path.join(mnt, `openstack/${N}-openstack.qcow2`), raw]);
  t.equal(q.code, 0, `qemu-img compare qcow2 raw: ${q.stdout.trim()}`);
});

t.test('--firmware uefi without any GRUB for UEFI: one line, exit 1, no output', async (t) => {
  const dir = tempDir(t);
  const emptyLib = path.join(dir, 'no-grub');
  fs.mkdirSync(emptyLib);
  const out = path.join(dir, 'out.iso');
  const r = uniso(['build', fixture().iso, '-o', out, '-q', '--disk-size', TEST_DISK_SIZE, '--formats', 'raw', '--firmware', 'uefi'],
    { env: { ...process.env, UNISO_GRUB_LIB: emptyLib } });
  t.equal(r.code, 1, 'exit 1');
  t.equal(r.stderr.trim().split('\n').length, 1, `one line: ${r.stderr.trim()}`);
  t.match(r.stderr, /--firmware uefi: no GRUB for UEFI \(neither \/usr\/lib\/grub\/x86_64-efi in the appliance nor grub-efi-amd64-bin on the build host\)/);
  t.same(fs.readdirSync(dir).sort(), ['no-grub'], 'nothing written');
  const bad = uniso(['build', fixture().iso, '-o', out, '--firmware', 'efi']);
  t.not(bad.code, 0, '--firmware efi is refused');
  t.match(bad.stderr, /--firmware.*efi.*(bios|choices)/);
});
