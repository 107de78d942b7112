// Proxmox VE LXC template: the container root as a tar.gz with TurnKey's
// aplinfo file name, for /var/lib/vz/template/cache/ (pct create).

import { Format } from './context';
import { rootfsTarGz } from './rootfs-tar';

export const proxmox: Format = {
  name: 'proxmox',
  family: 'container',
  async build(ctx) {
    const { recipe } = await rootfsTarGz(ctx, 'container');
    return [{
      path: `proxmox/${ctx.names.template}.tar.gz`, recipe, format: 'proxmox',
      description: 'Proxmox VE container template (copy to /var/lib/vz/template/cache/)',
    }];
  },
};
