// The registry of formats built into every universal ISO.

import { Format } from './context';
import { openvz } from './openvz';
import { opennode } from './opennode';
import { proxmox } from './proxmox';
import { xen } from './xen';
import { lxc } from './lxc';
import { docker } from './docker';

export const FORMATS: Format[] = [openvz, opennode, proxmox, xen, lxc, docker];
