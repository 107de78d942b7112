// Xen (paravirtual / XenServer) root file system tarball of the xen variant.

import { Format } from './context';
import { rootfsTarGz } from './rootfs-tar';

export const xen: Format = {
  name: 'xen',
  family: 'xen',
  async build(ctx) {
    const { recipe } = await rootfsTarGz(ctx, 'xen');
    return [{
      path: `xen/${ctx.names.name}-xen.tar.gz`, recipe, format: 'xen',
      description: 'Xen root file system tarball',
    }];
  },
};
