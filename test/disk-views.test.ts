// The bootable disk views against the tools their users have: e2fsck and
// the kernel on the ext4 partition (its tree equals the source: bytes,
// modes, owners, mtimes, xattrs, hard links, devices), sfdisk and GRUB's
// own boot.img/core.img for the boot sectors, qemu-img check / info /
// compare for every format, xmllint for the OVF, sha256sum for the
// manifest, and tar for the OVA's member order.

import t, { Test } from 'tap';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as crypto from 'node:crypto';
import { buildUniversal, fixture, FIXTURE_NAME, mount, must, run, tempDir, readAt, TEST_DISK_SIZE } from './lib/fixture';
import { compareTrees } from './lib/treecmp';

const fx = fixture();
const dir = tempDir(t);
const uni = buildUniversal(dir);
const mnt = mount(t, uni);
const N = FIXTURE_NAME;
const SIZE = 256 * 1024 * 1024;
t.equal(TEST_DISK_SIZE, '256M');

const RAW = path.join(mnt, `raw/${N}.img`);
const FLAT_DESC = path.join(mnt, `vmdk/${N}.vmdk`);
const STREAM = path.join(mnt, `vm/${N}-disk1.vmdk`);
const OVA = path.join(mnt, `vm/${N}.ova`);
const OVF = path.join(mnt, `vm/${N}.ovf`);
const MF = path.join(mnt, `vm/${N}.mf`);
const QCOW2 = path.join(mnt, `openstack/${N}-openstack.qcow2`);
const VHD = path.join(mnt, `vhd/${N}.vhd`);
const GRUB = '/usr/lib/grub/i386-pc';

const MIB = 1024 * 1024;
const ROOT_OFFSET = 64 * MIB; // hybrid GPT: BIOS boot at 1 MiB, ESP at 2 MiB (62 MiB), root at 64 MiB
const GRUB_EFI = '/usr/lib/grub/x86_64-efi';
const EFI_MODULES = ['part_gpt', 'part_msdos', 'ext2', 'fat', 'normal', 'linux', 'search', 'search_fs_uuid', 'configfile',
  'echo', 'test', 'serial', 'terminal', 'gzio', 'efi_gop', 'all_video', 'boot', 'ls', 'cat'];

/** Attach a byte range of a disk image read-only to a loop device (detached at teardown). */
function loopAt(tt: Test, image: string, offset: number, size?: number): string {
  const dev = must('losetup', ['--find', '--show', '--read-only', '--offset', String(offset),
    ...(size ? ['--sizelimit', String(size)] : []), image]).stdout.trim();
  tt.teardown(() => { run('losetup', ['-d', dev]); });
  return dev;
}

/** Attach the raw view's root partition read-only to a loop device (detached at teardown). */
function loopPartition(tt: Test): string {
  return loopAt(tt, RAW, ROOT_OFFSET);
}

function grubImage(tt: Test, format: string, dir: string, prefix: string, modules: string[]): Buffer {
  const out = path.join(tempDir(tt), 'grub.img');
  must('grub-mkimage', ['-O', format, '-d', dir, '-o', out, '-p', prefix, ...modules]);
  return fs.readFileSync(out);
}

/** boot.img's boot code as grub-bios-setup patches it: BPB zeroed, kernel sector, drive check NOPped. */
function checkBootCode(tt: Test, sector0: Buffer, coreLba: number): void {
  const bootImg = fs.readFileSync(path.join(GRUB, 'boot.img'));
  const diffs: number[] = [];
  for (let i = 0; i < 440; i++) if (sector0[i] !== bootImg[i]) diffs.push(i);
  tt.ok(diffs.every((i) => (i >= 0x03 && i < 0x5a) || (i >= 0x5c && i < 0x64) || i === 0x66 || i === 0x67),
    `boot code differs from boot.img only where grub-bios-setup patches it (${diffs.length} bytes)`);
  tt.equal(sector0.readBigUInt64LE(0x5c), BigInt(coreLba), `boot.img loads core.img from LBA ${coreLba}`);
  tt.same([sector0[0x66], sector0[0x67]], [0x90, 0x90], 'the floppy-only jump is disabled');
  tt.same([sector0[510], sector0[511]], [0x55, 0xaa], 'boot signature');
}

t.test('hybrid GPT: protective MBR with GRUB, BIOS boot, EFI system and root partitions; sgdisk -v clean', async (t) => {
  const v = run('sgdisk', ['-v', RAW]);
  t.equal(v.code, 0, 'sgdisk -v exit 0');
  t.match(v.stdout, /No problems found/, `sgdisk -v: ${v.stdout.trim()}`);
  const dump = must('sfdisk', ['--dump', RAW]).stdout;
  t.match(dump, /label: gpt/);
  const lines = dump.split('\n').filter((l) => l.startsWith(RAW));
  t.equal(lines.length, 3, 'three partitions');
  t.match(lines[0], /start=\s*2048, size=\s*2048, type=21686148-6449-6E6F-744E-656564454649,.*name="BIOS boot"/, 'p1: BIOS boot, 1 MiB at 1 MiB');
  t.match(lines[1], /start=\s*4096, size=\s*126976, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B,.*name="EFI system partition"/, 'p2: ESP, 62 MiB at 2 MiB');
  t.match(lines[2], new RegExp(`start=\\s*131072, size=\\s*${(SIZE - ROOT_OFFSET - MIB) / 512}, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4`), 'p3: root, 64 MiB to 1 MiB before the end');
  const pmbr = readAt(RAW, 0, 512);
  t.equal(pmbr[0x1be + 4], 0xee, 'protective MBR: one 0xEE partition');
  t.equal(pmbr.readUInt32LE(0x1be + 8), 1);
  t.equal(pmbr.readUInt32LE(0x1be + 12), SIZE / 512 - 1, 'over the whole disk');
  checkBootCode(t, pmbr, 2048);
  const core = grubImage(t, 'i386-pc', GRUB, '(,gpt3)/boot/grub', ['biosdisk', 'part_gpt', 'ext2']);
  const placed = readAt(RAW, 2048 * 512, core.length);
  t.equal(placed.readBigUInt64LE(0x1f4), 2049n, "core.img's blocklist points at the sector after it");
  placed.writeBigUInt64LE(2n, 0x1f4);
  t.ok(placed.equals(core), `core.img (${core.length} bytes) in the BIOS boot partition, as grub-mkimage makes it but for the blocklist`);
  t.ok(readAt(RAW, 2048 * 512 + core.length, MIB - core.length).every((b) => b === 0), 'the rest of the BIOS boot partition is zero');
});

t.test('the EFI system partition: FAT32 that fsck.fat accepts, holding GRUB as EFI/BOOT/BOOTX64.EFI', async (t) => {
  const dev = loopAt(t, RAW, 2 * MIB, 62 * MIB);
  const fsck = run('fsck.fat', ['-n', '-v', dev]);
  t.equal(fsck.code, 0, `fsck.fat -n exit 0: ${fsck.stdout.trim().split('\n').slice(-2).join(' / ')}`);
  t.match(fsck.stdout, /2 FATs, 32 bit entries/);
  const id = must('blkid', ['-p', '-o', 'export', dev]).stdout;
  t.match(id, /^TYPE=vfat$/m);
  t.match(id, /^VERSION=FAT32$/m);
  t.match(id, /^LABEL=EFI$/m);
  // (this kernel has no vfat: mtools reads the partition at its offset in the raw view)
  const img = `${RAW}@@${2 * MIB}`;
  t.same(must('mdir', ['-i', img, '-/', '-b', '::']).stdout.split('\n').filter(Boolean), ['::/EFI/', '::/EFI/BOOT/', '::/EFI/BOOT/BOOTX64.EFI']);
  const got = path.join(tempDir(t), 'BOOTX64.EFI');
  must('mcopy', ['-n', '-i', img, '::/EFI/BOOT/BOOTX64.EFI', got]);
  const want = grubImage(t, 'x86_64-efi', GRUB_EFI, '(,gpt3)/boot/grub', EFI_MODULES);
  t.ok(fs.readFileSync(got).equals(want), `BOOTX64.EFI (${want.length} bytes) is grub-mkimage's x86_64-efi image with prefix (,gpt3)/boot/grub`);
});

t.test('e2fsck -fn finds nothing to fix; dumpe2fs shows the expected features', async (t) => {
  const dev = loopPartition(t);
  const r = run('e2fsck', ['-fn', dev]);
  t.equal(r.code, 0, `e2fsck exit 0:\n${r.stdout}${r.stderr}`);
  const h = must('dumpe2fs', ['-h', dev]).stdout;
  for (const f of ['has_journal', 'ext_attr', 'dir_index', 'filetype', 'extent', 'flex_bg', 'sparse_super', 'large_file', 'huge_file', 'dir_nlink', 'extra_isize']) {
    t.match(h, new RegExp(`Filesystem features:.*\\b${f}\\b`), f);
  }
  t.match(h, /Block size:\s+4096/);
  t.match(h, /Inode size:\s+256/);
  t.match(h, /Total journal size:\s+16M/, 'a 16 MiB journal (the mke2fs size for 256 MiB)');
});

t.test('the kernel mounts the partition and its tree equals the source tree', async (t) => {
  const dev = loopPartition(t);
  const m = path.join(tempDir(t), 'fs');
  fs.mkdirSync(m);
  must('mount', ['-o', 'ro', dev, m]);
  t.teardown(() => { run('umount', [m]); });
  // added for booting: lost+found, the GRUB modules and grub.cfg, fstab
  const diffs = compareTrees(fx.tree, m, { ignore: ['lost+found/', 'lost+found', 'boot/grub/', 'boot/grub', 'etc/fstab'] });
  t.same(diffs, [], 'bytes, modes, owners, mtimes, xattrs, hard links, devices, fifos');
  const uuid = must('blkid', ['-s', 'UUID', '-o', 'value', dev]).stdout.trim();
  t.match(uuid, /^[0-9a-f-]{36}$/);
  t.equal(fs.readFileSync(path.join(m, 'etc/fstab'), 'utf8').match(/^UUID=(\S+) \/ ext4 /m)?.[1], uuid, 'fstab mounts / by UUID');
  const cfg = fs.readFileSync(path.join(m, 'boot/grub/grub.cfg'), 'utf8');
  t.match(cfg, new RegExp(`search --no-floppy --fs-uuid --set=root ${uuid}`), 'grub.cfg finds the root by UUID');
  t.ok(fs.existsSync(path.join(m, 'boot/grub/i386-pc/normal.mod')), 'GRUB modules in /boot/grub/i386-pc');
  for (const f of fs.readdirSync(path.join(m, 'boot/grub/i386-pc'))) {
    if (!fs.readFileSync(path.join(m, 'boot/grub/i386-pc', f)).equals(fs.readFileSync(path.join(GRUB, f)))) t.fail(`${f} differs from ${GRUB}`);
  }
  const lf = fs.statSync(path.join(m, 'lost+found'));
  t.equal(lf.mode & 0o7777, 0o700, 'lost+found 0700');
  t.equal(lf.size, 16384, 'lost+found has 4 blocks');
  t.match(must('getcap', [path.join(m, 'usr/bin/ping')]).stdout, /cap_net_raw[=+]ep/, 'security.capability kept');
  const st = fs.statSync(path.join(m, 'srv/data/huge-9g.img'));
  t.equal(st.size, 9 * 1024 ** 3 + 12345, 'sparse file over 8 GiB: its size');
  t.ok(st.blocks * 512 <= 1 << 20, 'and its holes');
});

t.test('debugfs reads inodes, extents and xattrs', async (t) => {
  const dev = loopPartition(t);
  const stat = must('debugfs', ['-R', 'stat /usr/bin/ping', dev]).stdout;
  t.match(stat, /security\.capability/, 'in-inode xattr listed');
  t.match(stat, /EXTENTS:/, 'extent-mapped');
  const big = must('debugfs', ['-R', 'stat /usr/lib/random-1m.bin', dev]).stdout;
  t.match(big, /\(0-255\):\d+-\d+/, '1 MiB file: one contiguous extent of 256 blocks');
  const ls = must('debugfs', ['-R', 'ls -l /dev', dev]).stdout;
  t.match(ls, /nvme-big/);
});

function info(file: string): { format: string; 'virtual-size': number } {
  return JSON.parse(must('qemu-img', ['info', '--output=json', file]).stdout);
}

t.test('qemu-img: formats and virtual sizes', async (t) => {
  t.same([info(RAW).format, info(RAW)['virtual-size']], ['raw', SIZE]);
  t.same([info(FLAT_DESC).format, info(FLAT_DESC)['virtual-size']], ['vmdk', SIZE]);
  t.same([info(STREAM).format, info(STREAM)['virtual-size']], ['vmdk', SIZE]);
  t.same([info(QCOW2).format, info(QCOW2)['virtual-size']], ['qcow2', SIZE]);
  t.same([info(VHD).format, info(VHD)['virtual-size']], ['vpc', SIZE]);
  const stream = JSON.parse(must('qemu-img', ['info', '--output=json', STREAM]).stdout);
  t.equal(stream['format-specific']?.data?.['create-type'], 'streamOptimized');
  const q = JSON.parse(must('qemu-img', ['info', '--output=json', QCOW2]).stdout);
  t.equal(q['format-specific']?.data?.compat, '1.1', 'qcow2 version 3');
});

t.test('qemu-img check passes on the VMDK and qcow2 views', async (t) => {
  for (const f of [STREAM, FLAT_DESC, QCOW2]) {
    const r = run('qemu-img', ['check', f]);
    t.equal(r.code, 0, `${path.basename(f)}: ${r.stdout.trim()} ${r.stderr.trim()}`);
  }
});

t.test('qemu-img compare: every disk view is identical to the raw view', async (t) => {
  const x = tempDir(t);
  must('tar', ['-xf', OVA, '-C', x]);
  const inOva = path.join(x, `${N}-disk1.vmdk`);
  for (const f of [FLAT_DESC, STREAM, inOva, QCOW2, VHD]) {
    const r = run('qemu-img', ['compare', f, RAW]);
    t.equal(r.code, 0, `${path.relative(mnt, f)}: ${r.stdout.trim()}${r.stderr.trim()}`);
    t.match(r.stdout, /Images are identical/);
  }
});

t.test('OVF, manifest and OVA', async (t) => {
  t.equal(run('xmllint', ['--noout', OVF]).code, 0, 'xmllint accepts the OVF');
  const x = (q: string) => must('xmllint', ['--xpath', q, OVF]).stdout.trim();
  const vmdkSize = fs.statSync(STREAM).size;
  t.equal(x('string(//*[local-name()="File"]/@*[local-name()="href"])'), `${N}-disk1.vmdk`);
  t.equal(Number(x('string(//*[local-name()="File"]/@*[local-name()="size"])')), vmdkSize, 'File size = the VMDK size');
  t.equal(Number(x('string(//*[local-name()="Disk"]/@*[local-name()="capacity"])')), SIZE, 'Disk capacity = the virtual size');
  t.match(x('string(//*[local-name()="Disk"]/@*[local-name()="format"])'), /#streamOptimized$/);
  t.equal(x('string(//*[local-name()="VirtualSystem"]/@*[local-name()="id"])'), N, 'VirtualSystem named after the appliance');
  t.equal(x('string(//*[local-name()="Item"][*[local-name()="ResourceType"]="4"]/*[local-name()="VirtualQuantity"])'), '1024', '1024 MB by default');
  t.equal(x('string(//*[local-name()="Item"][*[local-name()="ResourceType"]="6"]/*[local-name()="ResourceSubType"])'), 'lsilogic');
  t.equal(x('string(//*[local-name()="Item"][*[local-name()="ResourceType"]="10"]/*[local-name()="ResourceSubType"])'), 'E1000');
  t.equal(x('string(//*[local-name()="ProductSection"]/*[local-name()="Version"])'), '1.0');
  const sha = (f: string) => crypto.createHash('sha256').update(fs.readFileSync(f)).digest('hex');
  t.equal(fs.readFileSync(MF, 'utf8'), `SHA256(${N}.ovf)= ${sha(OVF)}\nSHA256(${N}-disk1.vmdk)= ${sha(STREAM)}\n`, 'manifest hashes verify');
  const members = must('tar', ['-tf', OVA]).stdout.split('\n').filter(Boolean);
  t.same(members, [`${N}.ovf`, `${N}.mf`, `${N}-disk1.vmdk`], 'the .ovf is the first member');
  const ex = tempDir(t);
  must('tar', ['-xf', OVA, '-C', ex]);
  for (const m of members) t.ok(fs.readFileSync(path.join(ex, m)).equals(fs.readFileSync(path.join(mnt, 'vm', m))), `${m} in the OVA = vm/${m}`);
});

t.test('streamOptimized layout: header, markers, footer and end-of-stream', async (t) => {
  const size = fs.statSync(STREAM).size;
  const h = readAt(STREAM, 0, 512);
  t.equal(h.toString('latin1', 0, 4), 'KDMV');
  t.equal(h.readUInt32LE(4), 3, 'version 3');
  t.equal(h.readBigUInt64LE(0x38), 0xffffffffffffffffn, 'grain directory at the end');
  t.equal(h.readUInt16LE(0x4d), 1, 'deflate');
  const tail = readAt(STREAM, size - 1536, 1536);
  t.equal(tail.readUInt32LE(12), 3, 'footer marker');
  t.equal(tail.toString('latin1', 512, 516), 'KDMV', 'footer');
  t.ok(tail.subarray(1024).every((b) => b === 0), 'end-of-stream marker');
  t.match(readAt(STREAM, 512, 200).toString('latin1'), /^# Disk DescriptorFile\nversion=1\n/);
});
