// The OVF 1.0 appliance for VMware and VirtualBox: vm/<name>.ovf (virtual
// system named after the appliance: CPU, memory, LSI Logic SCSI controller,
// the streamOptimized disk, an E1000 NIC, product information),
// vm/<name>.mf (SHA256, or SHA1 with --ovf-sha1), vm/<name>-disk1.vmdk,
// and vm/<name>.ova: an uncompressed tar with the .ovf first.
//
// Firmware: BIOS unless --firmware uefi (a hybrid disk boots both ways, and
// BIOS is what every OVF consumer assumes). For uefi the descriptor says
// EFI in the two dialects that are read on import: VMware's
// <vmw:Config vmw:key="firmware" vmw:value="efi"/> in the
// VirtualHardwareSection, and a <vbox:Machine> (VirtualBox's own machine
// settings) with <Firmware type="EFI"/>. VirtualBox ignores vmw:Config and
// reads firmware only from vbox:Machine, which then replaces the generic
// OVF hardware, so it repeats CPU, memory, the NIC and the disk attachment
// (the Disk's vbox:uuid = the attached Image's uuid).

import * as crypto from 'node:crypto';
import { Format, FormatContext } from './context';
import { familyDisk } from './disk/disk';
import { formatUuid } from './disk/bootprep';
import { ovfDiskFile, streamOptimized, VMDK_ADAPTER } from './vmdk';
import { NS_OVF, NS_RASD, NS_VSSD, NS_XSI, OS_DEBIAN_64, RT_CPU, RT_DISK, RT_ETHERNET, RT_MEMORY, RT_SCSI } from './ovf-schema';
import { xmlEscape } from './xml';
import { PieceList, compilePlain } from './pieces';
import { endOfArchive, tarMemberBytes, tarMemberHeader, tarPad } from './tar';
import { RecipeBuilder } from '../recipe/recipe';

// ---- VMware's OVF extensions and this descriptor's fixed values ------------------
const NS_VMW = 'http://www.vmware.com/schema/ovf';
const FORMAT_STREAM = 'http://www.vmware.com/interfaces/specifications/vmdk.html#streamOptimized';
const VMW_OS_TYPE = 'debian10_64Guest';
const VIRTUAL_SYSTEM_TYPE = 'vmx-10';
const CPUS = 1;
const NETWORK = 'VM Network';

// ---- VirtualBox's machine settings (its .vbox format) inside the OVF, for uefi ------
const NS_VBOX = 'http://www.virtualbox.org/ovf/machine';
const VBOX_SETTINGS_VERSION = '1.16-linux'; // settings format of VirtualBox 5.1 to 6.0: Firmware and StorageControllers under Hardware
const VBOX_OS_TYPE = 'Debian_64';
const VBOX_NIC_TYPE = '82545EM'; // VirtualBox's name for VMware's E1000
const VBOX_SCSI = { name: 'SCSI', type: 'LsiLogic', ports: 16 }; // the OVF's lsilogic controller

/** Content-derived UUIDs (RFC 4122 version 4 layout) for VirtualBox's machine and disk ids. */
function derivedUuid(seed: Buffer, what: string): string {
  const h = crypto.createHash('sha256').update(`uniso-vbox-${what}`).update(seed).digest().subarray(0, 16);
  h[6] = (h[6] & 0x0f) | 0x40;
  h[8] = (h[8] & 0x3f) | 0x80;
  return formatUuid(h);
}

/** The <vbox:Machine> VirtualBox imports instead of the generic hardware: the same machine, with EFI. */
function vboxMachine(name: string, mem: number, machineUuid: string, diskUuid: string): string[] {
  return [
    `    <vbox:Machine ovf:required="false" version="${VBOX_SETTINGS_VERSION}" uuid="{${machineUuid}}" name="${xmlEscape(name)}" OSType="${VBOX_OS_TYPE}">`,
    '      <ovf:Info>VirtualBox machine configuration (EFI firmware)</ovf:Info>',
    '      <Hardware>',
    `        <CPU count="${CPUS}"/>`,
    `        <Memory RAMSize="${mem}"/>`,
    '        <Firmware type="EFI"/>',
    '        <Network>',
    `          <Adapter slot="0" enabled="true" type="${VBOX_NIC_TYPE}">`,
    '            <NAT/>',
    '          </Adapter>',
    '        </Network>',
    '        <StorageControllers>',
    `          <StorageController name="${VBOX_SCSI.name}" type="${VBOX_SCSI.type}" PortCount="${VBOX_SCSI.ports}" Bootable="true">`,
    '            <AttachedDevice type="HardDisk" port="0" device="0">',
    `              <Image uuid="{${diskUuid}}"/>`,
    '            </AttachedDevice>',
    '          </StorageController>',
    '        </StorageControllers>',
    '      </Hardware>',
    '    </vbox:Machine>',
  ];
}

function item(fields: [string, string | number][]): string {
  // rasd elements must appear in alphabetical order (the CIM schema's sequence)
  const sorted = [...fields].sort((a, b) => (a[0] < b[0] ? -1 : 1));
  return ['      <Item>', ...sorted.map(([k, v]) => `        <rasd:${k}>${xmlEscape(String(v))}</rasd:${k}>`), '      </Item>'].join('\n');
}

/** The OVF descriptor; `uuidSeed` (the disk's file system UUID) derives VirtualBox's ids for uefi. */
export function ovfXml(ctx: FormatContext, diskFile: string, diskBytes: number, capacity: number, uuidSeed: Buffer): string {
  const n = ctx.names;
  const product = n.app ? `TurnKey ${n.app}` : n.name;
  const mem = ctx.options.memoryMb;
  const efi = ctx.options.firmware === 'uefi';
  const diskUuid = derivedUuid(uuidSeed, 'disk');
  return [
    '<?xml version="1.0" encoding="UTF-8"?>',
    `<Envelope xmlns="${NS_OVF}" xmlns:ovf="${NS_OVF}" xmlns:rasd="${NS_RASD}" xmlns:vssd="${NS_VSSD}" xmlns:vmw="${NS_VMW}" xmlns:xsi="${NS_XSI}"${efi ? ` xmlns:vbox="${NS_VBOX}"` : ''}>`,
    '  <References>',
    `    <File ovf:id="file1" ovf:href="${xmlEscape(diskFile)}" ovf:size="${diskBytes}"/>`,
    '  </References>',
    '  <DiskSection>',
    '    <Info>Virtual disks</Info>',
    `    <Disk ovf:diskId="vmdisk1" ovf:fileRef="file1" ovf:capacity="${capacity}" ovf:format="${FORMAT_STREAM}"${efi ? ` vbox:uuid="${diskUuid}"` : ''}/>`,
    '  </DiskSection>',
    '  <NetworkSection>',
    '    <Info>Logical networks</Info>',
    `    <Network ovf:name="${NETWORK}">`,
    '      <Description>The network the appliance is attached to</Description>',
    '    </Network>',
    '  </NetworkSection>',
    `  <VirtualSystem ovf:id="${xmlEscape(n.name)}">`,
    '    <Info>A virtual machine</Info>',
    `    <Name>${xmlEscape(n.name)}</Name>`,
    `    <OperatingSystemSection ovf:id="${OS_DEBIAN_64}" vmw:osType="${VMW_OS_TYPE}">`,
    '      <Info>The guest operating system</Info>',
    `      <Description>Debian GNU/Linux${n.debianMajor ? ` ${n.debianMajor}` : ''} (64-bit)</Description>`,
    '    </OperatingSystemSection>',
    '    <ProductSection>',
    '      <Info>Information about the appliance</Info>',
    `      <Product>${xmlEscape(product)}</Product>`,
    '      <Vendor>TurnKey GNU/Linux</Vendor>',
    ...(n.version ? [`      <Version>${xmlEscape(n.version)}</Version>`, `      <FullVersion>${xmlEscape(n.name)}</FullVersion>`] : []),
    `      <ProductUrl>https://www.turnkeylinux.org/${xmlEscape(n.app ?? '')}</ProductUrl>`,
    '      <VendorUrl>https://www.turnkeylinux.org</VendorUrl>',
    '    </ProductSection>',
    '    <VirtualHardwareSection>',
    '      <Info>Virtual hardware requirements</Info>',
    '      <System>',
    '        <vssd:ElementName>Virtual Hardware Family</vssd:ElementName>',
    '        <vssd:InstanceID>0</vssd:InstanceID>',
    `        <vssd:VirtualSystemIdentifier>${xmlEscape(n.name)}</vssd:VirtualSystemIdentifier>`,
    `        <vssd:VirtualSystemType>${VIRTUAL_SYSTEM_TYPE}</vssd:VirtualSystemType>`,
    '      </System>',
    item([['AllocationUnits', 'hertz * 10^6'], ['Description', 'Number of virtual CPUs'], ['ElementName', `${CPUS} virtual CPU`],
      ['InstanceID', 1], ['ResourceType', RT_CPU], ['VirtualQuantity', CPUS]]),
    item([['AllocationUnits', 'byte * 2^20'], ['Description', 'Memory size'], ['ElementName', `${mem} MB of memory`],
      ['InstanceID', 2], ['ResourceType', RT_MEMORY], ['VirtualQuantity', mem]]),
    item([['Address', 0], ['Description', 'SCSI controller'], ['ElementName', 'SCSI controller 0'], ['InstanceID', 3],
      ['ResourceSubType', VMDK_ADAPTER], ['ResourceType', RT_SCSI]]),
    item([['AddressOnParent', 0], ['ElementName', 'Hard disk 1'], ['HostResource', 'ovf:/disk/vmdisk1'], ['InstanceID', 4],
      ['Parent', 3], ['ResourceType', RT_DISK]]),
    item([['AddressOnParent', 7], ['AutomaticAllocation', 'true'], ['Connection', NETWORK], ['Description', 'E1000 ethernet adapter'],
      ['ElementName', 'Network adapter 1'], ['InstanceID', 5], ['ResourceSubType', 'E1000'], ['ResourceType', RT_ETHERNET]]),
    ...(efi ? ['      <vmw:Config ovf:required="false" vmw:key="firmware" vmw:value="efi"/>'] : []),
    '    </VirtualHardwareSection>',
    ...(efi ? vboxMachine(n.name, mem, derivedUuid(uuidSeed, 'machine'), diskUuid) : []),
    '  </VirtualSystem>',
    '</Envelope>',
    '',
  ].join('\n');
}

export const ovf: Format = {
  name: 'ovf',
  family: 'vm',
  async build(ctx) {
    const d = familyDisk(ctx, 'vm');
    const n = ctx.names.name;
    const diskFile = ovfDiskFile(n);
    const vmdkRecipe = streamOptimized(ctx, d, diskFile);
    const ovfBytes = Buffer.from(ovfXml(ctx, diskFile, vmdkRecipe.size, d.size, d.prep.uuid), 'utf8');
    const alg = ctx.options.ovfSha1 ? 'SHA1' : 'SHA256';
    const hash = (b: Buffer) => crypto.createHash(alg.toLowerCase()).update(b).digest('hex');
    const vmdkHash = alg === 'SHA256' ? await ctx.sha256(vmdkRecipe) : await ctx.hash(vmdkRecipe, 'sha1');
    const mf = Buffer.from(`${alg}(${n}.ovf)= ${hash(ovfBytes)}\n${alg}(${diskFile})= ${vmdkHash}\n`, 'utf8');
    const lit = (b: Buffer) => {
      const rb = new RecipeBuilder();
      rb.literal(b);
      return rb.build();
    };
    // the OVA: .ovf first, then the manifest, then the disk (ustar, fixed owner and time)
    const t = ctx.mtimeSec;
    const out = new PieceList();
    tarMemberBytes(out, `${n}.ovf`, ovfBytes, t);
    tarMemberBytes(out, `${n}.mf`, mf, t);
    tarMemberHeader(out, diskFile, vmdkRecipe.size, t);
    out.recipe(vmdkRecipe, 0);
    tarPad(out, vmdkRecipe.size);
    endOfArchive(out);
    return [
      { path: `vm/${n}.ova`, recipe: compilePlain(out.done()), format: 'ova', description: 'OVA appliance for VMware and VirtualBox (OVF 1.0, streamOptimized disk)' },
      { path: `vm/${n}.ovf`, recipe: lit(ovfBytes), format: 'ovf', description: 'OVF descriptor (with the .mf and -disk1.vmdk beside it)' },
      { path: `vm/${n}.mf`, recipe: lit(mf), format: 'ovf', description: `OVF manifest (${alg})` },
      { path: `vm/${diskFile}`, recipe: vmdkRecipe, format: 'vmdk-stream', description: 'streamOptimized VMDK disk of the OVF' },
    ];
  },
};
