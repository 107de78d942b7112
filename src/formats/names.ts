// The names of the formats (as --formats takes them), in the registry's
// order, without loading the formats themselves: the CLI lists them in its
// help on every start. index.ts checks that FORMATS has exactly these.

export const FORMAT_NAMES = ['ovf', 'vmdk', 'raw', 'qcow2', 'vhd', 'vhdx', 'vdi', 'azure', 'gce', 'vagrant',
  'openvz', 'opennode', 'proxmox', 'xen', 'lxc', 'wsl', 'docker'] as const;
