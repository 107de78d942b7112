// Appliance naming, following TurnKey's published file names:
//   ISO / VM images:  turnkey-APP-VERSION-CODENAME-ARCH(.iso|.ova|...)
//   container tpl:    debian-N-turnkey-APP_VERSION-1_ARCH.tar.gz
// Derived from the input file name or --name, and the tree's own
// /etc/debian_version when the codename is unknown.

export interface ApplianceNames {
  name: string; // turnkey-core-18.0-bookworm-amd64 (or the --name given)
  app?: string; // core
  version?: string; // 18.0
  codename?: string; // bookworm
  arch: string; // Debian arch: amd64
  debianMajor?: string; // 12
  template: string; // debian-12-turnkey-core_18.0-1_amd64
}

const CODENAMES: Record<string, string> = {
  jessie: '8', stretch: '9', buster: '10', bullseye: '11', bookworm: '12', trixie: '13', forky: '14',
};

const TURNKEY_RE = /^turnkey-(.+)-(\d+(?:\.\d+)*(?:rc\d+|b\d+)?)-([a-z]+)-(amd64|i386|arm64|armhf)$/;

export function stripImageSuffix(base: string): string {
  return base.replace(/\.(iso|img|squashfs|sqfs|tar|tar\.gz|tgz|tar\.xz|txz|tar\.bz2|tar\.zst)$/i, '');
}

export function applianceNames(base: string, treeDebianVersion?: string): ApplianceNames {
  const name = stripImageSuffix(base);
  const m = TURNKEY_RE.exec(name);
  if (!m) {
    const safe = name.replace(/[^A-Za-z0-9._+-]/g, '_') || 'appliance';
    const major = treeDebianVersion?.match(/^(\d+)/)?.[1];
    return { name: safe, arch: 'amd64', debianMajor: major, template: safe };
  }
  const [, app, version, codename, arch] = m;
  const major = CODENAMES[codename] ?? treeDebianVersion?.match(/^(\d+)/)?.[1];
  const template = major ? `debian-${major}-turnkey-${app}_${version}-1_${arch}` : `turnkey-${app}_${version}-1_${arch}`;
  return { name, app, version, codename, arch, debianMajor: major, template };
}

/** Architecture names used by other ecosystems. */
export function lxcArch(debArch: string): string {
  return ({ amd64: 'x86_64', arm64: 'aarch64', i386: 'i686', armhf: 'armv7l' } as Record<string, string>)[debArch] ?? debArch;
}

