// The registry of formats built into every universal ISO, and of the
// preparers that adjust family trees before them.

import { Format, Preparer } from './context';
import { openvz } from './openvz';
import { opennode } from './opennode';
import { proxmox } from './proxmox';
import { xen } from './xen';
import { lxc } from './lxc';
import { docker } from './docker';
import { raw } from './raw';
import { vmdk } from './vmdk';
import { ovf } from './ovf';
import { vhd } from './vhd';
import { qcow2 } from './qcow2';
import { vhdx } from './vhdx';
import { vdi } from './vdi';
import { azure } from './azure';
import { gce } from './gce';
import { wsl } from './wsl';
import { vagrant } from './vagrant';
import { bootDiskPreparer } from './disk/disk';
import { FORMAT_NAMES } from './names';

export const FORMATS: Format[] = [ovf, vmdk, raw, qcow2, vhd, vhdx, vdi, azure, gce, vagrant, openvz, opennode, proxmox, xen, lxc, wsl, docker];

/** Run before the pool is finished, in this order, for each of their families. */
export const PREPARERS: Preparer[] = [bootDiskPreparer];

if (FORMATS.map((f) => f.name).join(',') !== FORMAT_NAMES.join(',')) {
  throw new Error(`formats/names.ts lists ${FORMAT_NAMES.join(',')}, the registry has ${FORMATS.map((f) => f.name).join(',')}`);
}
