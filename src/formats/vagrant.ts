// Vagrant boxes of the vm disk, one per provider:
// - vagrant/<name>-libvirt.box: tar.gz of metadata.json ({provider, format,
//   virtual_size in GiB}, the "version 1" box format of vagrant-libvirt),
//   a Vagrantfile with the provider's defaults, and box.img: the disk as a
//   qcow2 with plain clusters, so the gzip around it splices pool blocks
//   (compressing the clusters too would only double the work);
// - vagrant/<name>-virtualbox.box: an uncompressed tar (its disk is the
//   already compressed streamOptimized VMDK) of box.ovf (the OVF of the vm
//   view; Vagrant imports exactly "box.ovf"), the VMDK under the name the OVF
//   references (byte for byte vm/<name>-disk1.vmdk), metadata.json and a
//   Vagrantfile.
// Vagrant logs in as "vagrant" with its public insecure key; a TurnKey tree
// has no such user, so unless the vm tree has
// /home/vagrant/.ssh/authorized_keys (an --overlay vm=DIR) the boxes'
// descriptions say that they import but `vagrant up` cannot log in, and
// where the README tells how to add the user (not a build warning: it is
// the normal state of an appliance, and the other views are fine).

import { Format, FormatContext, gzipView } from './context';
import { familyDisk } from './disk/disk';
import { EntryType } from '../tree';
import { ovfXml } from './ovf';
import { ovfDiskFile, streamOptimized } from './vmdk';
import { uncompressedQcow2 } from './qcow2';
import { PieceList, compilePlain } from './pieces';
import { endOfArchive, tarMemberBytes, tarMemberHeader, tarPad } from './tar';

const GIB = 2 ** 30;
const AUTHORIZED_KEYS = 'home/vagrant/.ssh/authorized_keys';
/** Where the OVMF firmware (code and variables in one image) is on Debian and Ubuntu hosts (package ovmf). */
const OVMF_DEBIAN = '/usr/share/ovmf/OVMF.fd';

function json(o: object): Buffer {
  return Buffer.from(`${JSON.stringify(o, null, 2)}\n`, 'utf8');
}

/** The box's Vagrantfile: defaults a project's own Vagrantfile overrides. */
function vagrantfile(provider: string, settings: string[]): Buffer {
  return Buffer.from([
    `# Defaults of this box for Vagrant's ${provider} provider; a project's Vagrantfile overrides them.`,
    'Vagrant.configure("2") do |config|',
    '  # the appliance has neither VirtualBox guest additions nor a sync tool set up for /vagrant',
    '  config.vm.synced_folder ".", "/vagrant", disabled: true',
    ...settings,
    'end',
    '',
  ].join('\n'), 'utf8');
}

function hasVagrantKey(ctx: FormatContext): boolean {
  const i = ctx.tree('vm').lookup(AUTHORIZED_KEYS);
  return i !== undefined && i.type === EntryType.File && (i.content?.size ?? 0) > 0;
}

export const vagrant: Format = {
  name: 'vagrant',
  family: 'vm',
  async build(ctx) {
    const d = familyDisk(ctx, 'vm');
    const n = ctx.names.name;
    const t = ctx.mtimeSec;
    const efi = ctx.options.firmware === 'uefi';
    const login = hasVagrantKey(ctx) ? 'logs in as vagrant' : `no vagrant user (/${AUTHORIZED_KEYS}) yet: add one with --overlay vm=DIR, see README "Vagrant boxes"`;

    // libvirt: metadata.json, Vagrantfile, box.img (qcow2), gzip-spliced
    const lv = new PieceList();
    tarMemberBytes(lv, 'metadata.json', json({ provider: 'libvirt', format: 'qcow2', virtual_size: Math.ceil(d.size / GIB) }), t);
    tarMemberBytes(lv, 'Vagrantfile', vagrantfile('libvirt', [
      '  config.vm.provider :libvirt do |libvirt|',
      '    libvirt.driver = "kvm"',
      `    libvirt.memory = ${ctx.options.memoryMb}`,
      ...(efi ? [
        `    # UEFI-only disk: OVMF as the loader (this is its path on Debian/Ubuntu; Fedora: /usr/share/edk2/ovmf/OVMF_CODE.fd)`,
        `    libvirt.loader = "${OVMF_DEBIAN}"`,
      ] : []),
      '  end',
    ]), t);
    const img = uncompressedQcow2(d);
    tarMemberHeader(lv, 'box.img', img.size, t);
    img.write(lv);
    tarPad(lv, img.size);
    endOfArchive(lv);

    // virtualbox: box.ovf, the streamOptimized VMDK, metadata.json, Vagrantfile (plain tar)
    const diskFile = ovfDiskFile(n);
    const vmdk = streamOptimized(ctx, d, diskFile);
    const vb = new PieceList();
    tarMemberBytes(vb, 'box.ovf', Buffer.from(ovfXml(ctx, diskFile, vmdk.size, d.size, d.prep.uuid), 'utf8'), t);
    tarMemberHeader(vb, diskFile, vmdk.size, t);
    vb.recipe(vmdk, 0);
    tarPad(vb, vmdk.size);
    tarMemberBytes(vb, 'metadata.json', json({ provider: 'virtualbox' }), t);
    tarMemberBytes(vb, 'Vagrantfile', vagrantfile('virtualbox', efi ? [
      '  config.vm.provider :virtualbox do |vb|',
      '    vb.customize ["modifyvm", :id, "--firmware", "efi"]',
      '  end',
    ] : []), t);
    endOfArchive(vb);

    return [
      { path: `vagrant/${n}-libvirt.box`, recipe: await gzipView(ctx, lv.done()), format: 'vagrant-libvirt',
        description: `Vagrant box for vagrant-libvirt (vagrant box add --name NAME FILE; ${login})` },
      { path: `vagrant/${n}-virtualbox.box`, recipe: compilePlain(vb.done()), format: 'vagrant-virtualbox',
        description: `Vagrant box for VirtualBox (vagrant box add --name NAME FILE; ${login})` },
    ];
  },
};
