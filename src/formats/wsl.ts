// Windows Subsystem for Linux: wsl/<name>.tar.gz, the container root file
// system for `wsl --import <Distro> <InstallLocation> <FileName>` (or
// `wsl --install --from-file` after renaming it to .wsl). WSL extracts it
// with `bsdtar -C <root> -x -p --xattrs --numeric-owner -f -` and its own
// `wsl --export` writes `bsdtar -c ... .`, members "./...": the layout of
// the shared container tar.gz (rootfs-tar.ts), so these are the same bytes
// as the OpenVZ/Proxmox templates. Container family: WSL brings its own
// kernel and init, and Microsoft's guide says the archive should hold no
// kernel, initramfs or boot loader.

import { Format } from './context';
import { rootfsTarGz } from './rootfs-tar';

export const wsl: Format = {
  name: 'wsl',
  family: 'container',
  async build(ctx) {
    const { recipe } = await rootfsTarGz(ctx, 'container');
    return [{
      path: `wsl/${ctx.names.name}.tar.gz`, recipe, format: 'wsl',
      description: 'WSL root file system (wsl --import NAME DIR FILE)',
    }];
  },
};
