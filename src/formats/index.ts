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
import { vagrant } from './vagrant';
import { bootDiskPreparer } from './disk/disk';

export const FORMATS: Format[] = [ovf, vmdk, raw, qcow2, vhd, vagrant, openvz, opennode, proxmox, xen, lxc, docker];

/** Run before the pool is finished, in this order, for each of their families. */
export const PREPARERS: Preparer[] = [bootDiskPreparer];
