// OpenNode "OVF for OpenVZ": the container template tar.gz plus an OVF
// descriptor whose VirtualSystemType is "openvz", whose OperatingSystem
// description is the vzctl ostemplate name, and whose single disk is the
// tar.gz (format "tar.gz").

import { Format, FormatContext } from './context';
import { rootfsTarGz } from './rootfs-tar';
import { NS_OVF, NS_RASD, NS_VSSD, NS_XSI, OS_DEBIAN_64, RT_CPU, RT_MEMORY } from './ovf-schema';
import { xmlEscape } from './xml';
import { RecipeBuilder } from '../recipe/recipe';

function item(bound: string, id: number, type: number, qty: number, units: string, label: string): string {
  return [
    `      <Item ovf:bound="${bound}">`,
    `        <rasd:AllocationUnits>${units}</rasd:AllocationUnits>`,
    `        <rasd:ElementName>${xmlEscape(label)}</rasd:ElementName>`,
    `        <rasd:InstanceID>${id}</rasd:InstanceID>`,
    `        <rasd:ResourceType>${type}</rasd:ResourceType>`,
    `        <rasd:VirtualQuantity>${qty}</rasd:VirtualQuantity>`,
    '      </Item>',
  ].join('\n');
}

export function openNodeOvf(ctx: FormatContext, gzName: string, gzSize: number, tarSize: number): string {
  const n = ctx.names;
  const title = n.app ? `TurnKey ${n.app} ${n.version ?? ''}`.trim() : n.name;
  return [
    '<?xml version="1.0" encoding="UTF-8"?>',
    `<Envelope xmlns="${NS_OVF}" xmlns:ovf="${NS_OVF}" xmlns:rasd="${NS_RASD}" xmlns:vssd="${NS_VSSD}" xmlns:xsi="${NS_XSI}">`,
    '  <References>',
    `    <File ovf:id="file1" ovf:href="${xmlEscape(gzName)}" ovf:size="${gzSize}"/>`,
    '  </References>',
    '  <DiskSection>',
    '    <Info>Container root file system</Info>',
    `    <Disk ovf:diskId="disk1" ovf:fileRef="file1" ovf:capacity="${tarSize}" ovf:format="tar.gz"/>`,
    '  </DiskSection>',
    `  <VirtualSystem ovf:id="${xmlEscape(n.template)}">`,
    '    <Info>OpenVZ container template</Info>',
    `    <Name>${xmlEscape(title)}</Name>`,
    `    <OperatingSystemSection ovf:id="${OS_DEBIAN_64}">`,
    '      <Info>Guest operating system</Info>',
    `      <Description>${xmlEscape(n.template)}</Description>`,
    '    </OperatingSystemSection>',
    '    <VirtualHardwareSection>',
    '      <Info>Container resources</Info>',
    '      <System>',
    '        <vssd:ElementName>Virtual Hardware Family</vssd:ElementName>',
    '        <vssd:InstanceID>0</vssd:InstanceID>',
    `        <vssd:VirtualSystemIdentifier>${xmlEscape(n.template)}</vssd:VirtualSystemIdentifier>`,
    '        <vssd:VirtualSystemType>openvz</vssd:VirtualSystemType>',
    '      </System>',
    item('min', 1, RT_CPU, 1, 'hertz * 10^6', '1 virtual CPU'),
    item('normal', 2, RT_CPU, 1, 'hertz * 10^6', '1 virtual CPU'),
    item('max', 3, RT_CPU, 4, 'hertz * 10^6', '4 virtual CPUs'),
    item('min', 4, RT_MEMORY, 256, 'byte * 2^20', '256 MB of memory'),
    item('normal', 5, RT_MEMORY, 512, 'byte * 2^20', '512 MB of memory'),
    item('max', 6, RT_MEMORY, 4096, 'byte * 2^20', '4096 MB of memory'),
    '    </VirtualHardwareSection>',
    '  </VirtualSystem>',
    '</Envelope>',
    '',
  ].join('\n');
}

export const opennode: Format = {
  name: 'opennode',
  family: 'container',
  async build(ctx) {
    const { recipe, tarSize } = await rootfsTarGz(ctx, 'container');
    const gzName = `${ctx.names.template}.tar.gz`;
    const ovf = Buffer.from(openNodeOvf(ctx, gzName, recipe.size, tarSize), 'utf8');
    const rb = new RecipeBuilder();
    rb.literal(ovf);
    return [
      { path: `opennode/${gzName}`, recipe, format: 'opennode', description: 'OpenNode container template' },
      { path: `opennode/${ctx.names.template}.ovf`, recipe: rb.build(), format: 'opennode', description: 'OpenNode OVF descriptor for the template' },
    ];
  },
};
