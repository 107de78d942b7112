// raw/<name>.img: the bootable disk as it is (partition table, GRUB, ESP,
// ext4 partition), for qemu, dd to a device, or any hypervisor that takes
// raw images.

import { Format } from './context';
import { familyDisk } from './disk/disk';
import { layoutWords } from './disk/layout';

export const raw: Format = {
  name: 'raw',
  family: 'vm',
  async build(ctx) {
    const d = familyDisk(ctx, 'vm');
    return [{ path: `raw/${ctx.names.name}.img`, recipe: d.raw, format: 'raw', description: `raw bootable disk image (${layoutWords(d.layout)})` }];
  },
};
