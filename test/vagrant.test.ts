// The Vagrant boxes against Vagrant itself (`vagrant box add` / `box list`
// in a throwaway VAGRANT_HOME; Vagrant 2.3.4, no provider plugin), gzip -t,
// qemu-img check / compare for the libvirt box's qcow2 (against the raw and
// the OpenStack qcow2 views), tar and cmp for the VirtualBox box's members,
// xmllint for its OVF; and the OVF's firmware setting for --firmware uefi
// (VMware's vmw:Config, VirtualBox's vbox:Machine) but not for bios/hybrid.

import t from 'tap';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { buildUniversal, FIXTURE_NAME, mount, must, mustUniso, run, tempDir, Teardown } from './lib/fixture';

const N = FIXTURE_NAME;
const SIZE = 256 * 1024 * 1024;
const dir = tempDir(t);
const uni = buildUniversal(dir, undefined, ['--formats', 'vagrant,qcow2,raw,ovf,vmdk']);
const mnt = mount(t, uni);
const LIBVIRT = path.join(mnt, `vagrant/${N}-libvirt.box`);
const VBOX = path.join(mnt, `vagrant/${N}-virtualbox.box`);
const RAW = path.join(mnt, `raw/${N}.img`);
const QCOW2 = path.join(mnt, `openstack/${N}-openstack.qcow2`);
const OVF = path.join(mnt, `vm/${N}.ovf`);
const STREAM = path.join(mnt, `vm/${N}-disk1.vmdk`);
const NO_USER = /no vagrant user \(\/home\/vagrant\/\.ssh\/authorized_keys\) yet: add one with --overlay vm=DIR/;
/** The descriptions of the two boxes, from `uniso ls --json`. */
function boxDescriptions(iso: string): string[] {
  const views = JSON.parse(mustUniso(['ls', '--json', iso]).stdout) as { path: string; description: string }[];
  return views.filter((v) => /^vagrant\/.*\.box$/.test(v.path)).map((v) => v.description);
}

function members(file: string, z = false): string[] {
  return must('tar', [z ? '-tzf' : '-tf', file]).stdout.split('\n').filter(Boolean);
}

function untar(tt: Teardown, file: string, z = false): string {
  const x = tempDir(tt);
  must('tar', [z ? '-xzf' : '-xf', file, '-C', x]);
  return x;
}

const xpath = (file: string, q: string) => must('xmllint', ['--xpath', q, file]).stdout.trim();
const ln = (n: string) => `*[local-name()="${n}"]`;

t.test('libvirt box: gzip, members, metadata.json, Vagrantfile', async (t) => {
  t.equal(run('gzip', ['-t', LIBVIRT]).code, 0, 'gzip -t');
  t.same(members(LIBVIRT, true), ['metadata.json', 'Vagrantfile', 'box.img']);
  const x = untar(t, LIBVIRT, true);
  t.same(JSON.parse(fs.readFileSync(path.join(x, 'metadata.json'), 'utf8')), { provider: 'libvirt', format: 'qcow2', virtual_size: 1 },
    'provider, format, virtual_size in GiB rounded up (256 MiB -> 1)');
  const vf = fs.readFileSync(path.join(x, 'Vagrantfile'), 'utf8');
  t.match(vf, /config\.vm\.provider :libvirt do \|libvirt\|\n\s+libvirt\.driver = "kvm"/);
  t.notMatch(vf, /loader/, 'no UEFI loader for a hybrid disk');
  t.equal(run('ruby', ['-c', path.join(x, 'Vagrantfile')]).code, 0, 'ruby -c: the Vagrantfile parses');
});

t.test('libvirt box: box.img is a clean qcow2 with plain clusters, identical to the raw and qcow2 views', async (t) => {
  const x = untar(t, LIBVIRT, true);
  const img = path.join(x, 'box.img');
  const info = JSON.parse(must('qemu-img', ['info', '--output=json', img]).stdout);
  t.same([info.format, info['virtual-size'], info['format-specific']?.data?.compat], ['qcow2', SIZE, '1.1']);
  const check = run('qemu-img', ['check', img]);
  t.equal(check.code, 0, `qemu-img check: ${check.stdout.trim()} ${check.stderr.trim()}`);
  t.match(check.stdout, /No errors were found/);
  t.match(check.stdout, /0\.00% compressed clusters/, 'no compressed clusters');
  for (const other of [RAW, QCOW2]) {
    const r = run('qemu-img', ['compare', img, other]);
    t.equal(r.code, 0, `qemu-img compare box.img ${path.relative(mnt, other)}: ${r.stdout.trim()}${r.stderr.trim()}`);
    t.match(r.stdout, /Images are identical/);
  }
  const boxBytes = fs.statSync(LIBVIRT).size;
  t.ok(boxBytes < fs.statSync(img).size, `the gzip (${boxBytes} bytes) is smaller than box.img (${fs.statSync(img).size})`);
});

t.test('virtualbox box: box.ovf first, the OVF and VMDK of the vm view, metadata.json, Vagrantfile', async (t) => {
  const list = members(VBOX);
  t.same(list, ['box.ovf', `${N}-disk1.vmdk`, 'metadata.json', 'Vagrantfile']);
  const x = untar(t, VBOX);
  const ovf = path.join(x, 'box.ovf');
  const lint = run('xmllint', ['--noout', ovf]);
  t.equal(lint.code, 0, `xmllint accepts box.ovf ${lint.stderr}`);
  t.equal(xpath(ovf, `string(//${ln('File')}/@*[local-name()="href"])`), `${N}-disk1.vmdk`, 'the OVF references the VMDK member');
  t.ok(fs.readFileSync(ovf).equals(fs.readFileSync(OVF)), 'box.ovf = vm/NAME.ovf');
  t.ok(fs.readFileSync(path.join(x, `${N}-disk1.vmdk`)).equals(fs.readFileSync(STREAM)), 'the VMDK member = vm/NAME-disk1.vmdk, byte for byte');
  t.same(JSON.parse(fs.readFileSync(path.join(x, 'metadata.json'), 'utf8')), { provider: 'virtualbox' });
  const vf = fs.readFileSync(path.join(x, 'Vagrantfile'), 'utf8');
  t.notMatch(vf, /--firmware/, 'no EFI setting for a hybrid disk');
  t.equal(run('ruby', ['-c', path.join(x, 'Vagrantfile')]).code, 0, 'ruby -c: the Vagrantfile parses');
});

t.test('vagrant box add takes both boxes (no provider plugin installed)', async (t) => {
  const home = tempDir(t);
  const env = { ...process.env, VAGRANT_HOME: home, VAGRANT_CHECKPOINT_DISABLE: '1' };
  t.match(must('vagrant', ['plugin', 'list'], { env }).stdout, /No plugins installed/, 'neither vagrant-libvirt nor VirtualBox is needed to add a box');
  must('vagrant', ['box', 'add', '--name', 't-libvirt', LIBVIRT], { env });
  must('vagrant', ['box', 'add', '--name', 't-virtualbox', VBOX], { env });
  const list = must('vagrant', ['box', 'list'], { env }).stdout;
  t.match(list, /^t-libvirt\s+\(libvirt, 0\)$/m);
  t.match(list, /^t-virtualbox\s+\(virtualbox, 0\)$/m);
  const lv = path.join(home, 'boxes/t-libvirt/0/libvirt');
  t.same(fs.readdirSync(lv).sort(), ['Vagrantfile', 'box.img', 'metadata.json']);
  t.equal(run('qemu-img', ['compare', path.join(lv, 'box.img'), RAW]).code, 0, 'the added box.img = the raw view');
});

t.test('no vagrant user in the tree: the boxes say so, the build does not warn', async (t) => {
  const d = boxDescriptions(uni);
  t.equal(d.length, 2);
  t.ok(d.every((x) => NO_USER.test(x)), `descriptions: ${d.join(' | ')}`);
  t.notMatch(mustUniso(['info', uni]).stdout, /^warning:.*vagrant/im, 'no warning about it');
});

t.test('--firmware uefi: the OVF says EFI to VMware and VirtualBox; the Vagrantfiles too', async (t) => {
  const d = tempDir(t);
  const overlay = path.join(d, 'overlay');
  fs.mkdirSync(path.join(overlay, 'home/vagrant/.ssh'), { recursive: true });
  fs.writeFileSync(path.join(overlay, 'home/vagrant/.ssh/authorized_keys'), 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFakeTestKeyOnlyForThisTest test\n');
  const iso = buildUniversal(d, undefined, ['--formats', 'vagrant,ovf', '--firmware', 'uefi', '--overlay', `vm=${overlay}`]);
  t.ok(boxDescriptions(iso).every((x) => /logs in as vagrant/.test(x) && !NO_USER.test(x)), 'an overlay with authorized_keys: the boxes log in as vagrant');
  const ovf = path.join(d, 'u.ovf');
  mustUniso(['extract', iso, `vm/${N}.ovf`, '-o', ovf]);
  const lint = run('xmllint', ['--noout', ovf]);
  t.equal(lint.code, 0, `xmllint accepts it ${lint.stderr}`);
  const hw = `//${ln('VirtualHardwareSection')}`;
  t.equal(xpath(ovf, `string(${hw}/${ln('Config')}[@*[local-name()="key"]="firmware"]/@*[local-name()="value"])`), 'efi', 'vmw:Config firmware=efi');
  t.equal(xpath(ovf, `namespace-uri(${hw}/${ln('Config')})`), 'http://www.vmware.com/schema/ovf');
  const m = `//${ln('VirtualSystem')}/${ln('Machine')}`;
  t.equal(xpath(ovf, `namespace-uri(${m})`), 'http://www.virtualbox.org/ovf/machine', 'vbox:Machine');
  t.equal(xpath(ovf, `string(${m}/@*[local-name()="required"])`), 'false', 'ovf:required="false"');
  t.equal(xpath(ovf, `string(${m}/${ln('Hardware')}/${ln('Firmware')}/@type)`), 'EFI');
  const diskUuid = xpath(ovf, `string(//${ln('Disk')}/@*[local-name()="uuid"])`);
  t.match(diskUuid, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/, 'Disk vbox:uuid');
  t.equal(xpath(ovf, `string(${m}//${ln('AttachedDevice')}/${ln('Image')}/@uuid)`), `{${diskUuid}}`, 'vbox:Machine attaches that disk');
  t.equal(xpath(ovf, `string(${m}/${ln('Hardware')}/${ln('Memory')}/@RAMSize)`), '1024');
  const vb = path.join(d, 'vb.box');
  mustUniso(['extract', iso, `vagrant/${N}-virtualbox.box`, '-o', vb]);
  const x = untar(t, vb);
  t.ok(fs.readFileSync(path.join(x, 'box.ovf')).equals(fs.readFileSync(ovf)), 'box.ovf = vm/NAME.ovf');
  t.match(fs.readFileSync(path.join(x, 'Vagrantfile'), 'utf8'), /vb\.customize \["modifyvm", :id, "--firmware", "efi"\]/);
  const lv = path.join(d, 'lv.box');
  mustUniso(['extract', iso, `vagrant/${N}-libvirt.box`, '-o', lv]);
  const vf = must('tar', ['-xzOf', lv, 'Vagrantfile']).stdout;
  t.match(vf, /libvirt\.loader = "\/usr\/share\/ovmf\/OVMF\.fd"/, 'libvirt: OVMF as the loader');
  t.equal(run('ruby', ['-c'], { input: vf }).code, 0, 'ruby -c: the libvirt Vagrantfile parses');
});

t.test('--firmware bios and hybrid: no firmware setting, the same OVF but for the disk size', async (t) => {
  const d = tempDir(t);
  const iso = buildUniversal(d, undefined, ['--formats', 'ovf', '--firmware', 'bios']);
  const ovf = path.join(d, 'b.ovf');
  mustUniso(['extract', iso, `vm/${N}.ovf`, '-o', ovf]);
  t.equal(run('xmllint', ['--noout', ovf]).code, 0, 'xmllint accepts it');
  for (const f of [ovf, OVF]) {
    const text = fs.readFileSync(f, 'utf8');
    t.notMatch(text, /firmware|xmlns:vbox|vbox:Machine|vbox:uuid/, `${path.basename(f)}: no firmware setting, no vbox:Machine`);
  }
  // the disks differ (MBR vs GPT with an ESP), so the VMDK's size does too
  const unsized = (f: string) => fs.readFileSync(f, 'utf8').replace(/(<File [^>]*ovf:size=")\d+"/, '$1"');
  t.equal(unsized(ovf), unsized(OVF), 'bios and hybrid OVFs are the same but for the VMDK\'s size');
});
