// OpenVZ (vzctl) OS template: the container root at top level of a tar.gz
// named after the ostemplate, for /vz/template/cache/.

import { Format } from './context';
import { rootfsTarGz } from './rootfs-tar';

export const openvz: Format = {
  name: 'openvz',
  family: 'container',
  async build(ctx) {
    const { recipe } = await rootfsTarGz(ctx, 'container');
    return [{
      path: `openvz/${ctx.names.template}.tar.gz`, recipe, format: 'openvz',
      description: 'OpenVZ OS template (copy to /vz/template/cache/)',
    }];
  },
};
