// Command-line wiring only (commander): parse options, call the command,
// print user errors as one line and exit non-zero.

import { Command, Option } from 'commander';
import { UserError } from './util/errors';

/** The status of a command ended by a closed pipe, as the shell reports one killed by SIGPIPE. */
const EXIT_BROKEN_PIPE = 128 + 13;
import { FORMAT_NAMES } from './formats/names';
import { Firmware, FIRMWARES } from './formats/context';

/** libdeflate's levels (10 to 12 search near-optimal matches). */
const LEVEL_MAX = 12;

const TRUST_FLAGS = '--trust <pubkey>';
const TRUST_HELP = 'refuse the image unless its manifest is signed by this Ed25519 public key (PREFIX.pub)';

function collect(v: string, prev: string[]): string[] {
  return [...prev, v];
}

/** "20G", "512M", "1T" or bytes; rounded up to a whole MiB. */
export function parseSize(v: string, option: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([KMGT]?)(i?B)?$/i.exec(v.trim());
  if (!m) throw new UserError(`${option} ${v}: expected a size such as 20G, 8192M or 1T`);
  const mult: Record<string, number> = { '': 1, K: 2 ** 10, M: 2 ** 20, G: 2 ** 30, T: 2 ** 40 };
  const bytes = Math.ceil((Number(m[1]) * mult[m[2].toUpperCase()]) / 2 ** 20) * 2 ** 20;
  if (!Number.isSafeInteger(bytes) || bytes < 64 * 2 ** 20) throw new UserError(`${option} ${v}: the disk must be at least 64M`);
  if (bytes > 2 ** 41) throw new UserError(`${option} ${v}: at most 2T`);
  return bytes;
}

function parseLevel(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1 || n > LEVEL_MAX) throw new UserError(`--level ${v}: expected 1..${LEVEL_MAX}`);
  return n;
}

/** --cache-size: "2G", "512M" or bytes; at least 16M. */
export function parseCacheSize(v: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([KMGT]?)(i?B)?$/i.exec(v.trim());
  const mult: Record<string, number> = { '': 1, K: 2 ** 10, M: 2 ** 20, G: 2 ** 30, T: 2 ** 40 };
  const bytes = m ? Math.floor(Number(m[1]) * mult[m[2].toUpperCase()]) : NaN;
  if (!Number.isSafeInteger(bytes) || bytes < 16 * 2 ** 20) throw new UserError(`--cache-size ${v}: expected a size of at least 16M, such as 512M or 2G`);
  return bytes;
}

/** Options of every command that opens an image, for images at a URL. */
interface RemoteFlags {
  ca?: string;
  cacheDir?: string;
  cacheSize?: number;
  trust?: string;
}

/** The options of every command that opens an image: --trust, and how an image at a URL is read. */
function withRemoteOptions(cmd: Command): Command {
  return cmd
    .option(TRUST_FLAGS, TRUST_HELP)
    .option('--ca <file>', 'for an https:// image: PEM file of CA certificates to trust besides the system\'s')
    .option('--cache-dir <dir>', 'for an http(s):// image: keep fetched bytes in this directory (default: in memory only)')
    .option('--cache-size <size>', 'for an http(s):// image: cap of the cache (default 2G on disk, 256M in memory)', parseCacheSize);
}

function remoteOptions(o: RemoteFlags): import('./io/remote-source').RemoteSourceOptions {
  return { ca: o.ca, cacheDir: o.cacheDir, cacheBytes: o.cacheSize };
}

function openOptions(o: RemoteFlags): import('./image/open').OpenOptions {
  return { remote: remoteOptions(o), trust: o.trust };
}

function parseCacheMb(v: string): number {
  const n = Number(v);
  if (!Number.isFinite(n) || n < 1) throw new UserError(`--cache-mb ${v}: expected a positive number`);
  return n;
}

export function main(argv: string[]): void {
  const program = new Command();
  program.name('uniso').description('One universal ISO per appliance: every format synthesized on the fly').version('0.1.0');
  program.showHelpAfterError(false);
  program.exitOverride();

  program.command('build')
    .description('build a universal ISO from an appliance ISO, squashfs image, root directory or tar archive')
    .argument('<input>', 'turnkey-APP-VERSION-CODENAME-ARCH.iso, a squashfs image, a directory, or a tar/tar.gz')
    .requiredOption('-o, --output <file>', 'universal ISO to write')
    .option('--name <name>', 'appliance name (default: from the input file name)')
    .option('--variant <family=path>', 'whole patched tree for a family (vm, container, xen, openstack, docker)', collect, [])
    .option('--overlay <family=dir>', 'files laid over the base tree for a family', collect, [])
    .option('--level <n>', 'deflate level of the pool and squashfs (libdeflate 1-12; 10-12 are slower and smaller)', parseLevel, 10)
    .option('--disk-size <size>', 'virtual size of the disk images (sparse)', '20G')
    .option('--memory <MB>', 'memory of the virtual machine in the OVF', '1024')
    .option('--ovf-sha1', 'SHA1 manifest for old ESXi (default: SHA256)')
    .option('--formats <list>', `build only these formats (comma-separated: ${FORMAT_NAMES.join(',')})`)
    .addOption(new Option('--firmware <kind>', 'firmware the disk images boot with: bios (MBR), uefi (GPT, EFI system partition) or hybrid (GPT; boots both ways)')
      .choices(FIRMWARES).default('hybrid'))
    .option('--keep-squashfs', "keep the input ISO's squashfs byte for byte (the pool goes beside it: about twice the size)")
    .option('--sign <keyfile>', 'sign the manifest with this Ed25519 private key (PREFIX.key from uniso key generate)')
    .option('-q, --quiet', 'no progress output')
    .action(async (input: string, o: { output: string; name?: string; variant: string[]; overlay: string[]; level: number;
      diskSize: string; memory: string; ovfSha1?: boolean; formats?: string; firmware: Firmware; keepSquashfs?: boolean; sign?: string; quiet?: boolean }) => {
      const { build, parseFamilyOption, parseFormats } = await import('./build');
      const memoryMb = Number(o.memory);
      if (!Number.isInteger(memoryMb) || memoryMb < 64 || memoryMb > 4 * 1024 * 1024) throw new UserError(`--memory ${o.memory}: expected MB between 64 and 4194304`);
      const r = await build({
        input, output: o.output, name: o.name, level: o.level, quiet: !!o.quiet,
        variants: parseFamilyOption(o.variant, '--variant'), overlays: parseFamilyOption(o.overlay, '--overlay'),
        diskSize: parseSize(o.diskSize, '--disk-size'), memoryMb, ovfSha1: !!o.ovfSha1, firmware: o.firmware, formats: parseFormats(o.formats),
        keepSquashfs: !!o.keepSquashfs, sign: o.sign,
      });
      if (!o.quiet) process.stderr.write(`uniso: wrote ${r.output} (${r.views.length} views)\n`);
    });

  withRemoteOptions(program.command('mount')
    .description('mount a universal ISO (a file, an http(s):// URL, or its extracted directory) read-only with FUSE')
    .argument('<image>', 'universal ISO, its URL, or extracted directory')
    .argument('<mountpoint>', 'existing empty directory')
    .option('-f, --foreground', 'stay in the foreground (default: detach once mounted)')
    .option('--allow-other', 'let other users (and NFS servers) access the mount')
    .option('--cache-mb <n>', 'size of the block cache in MiB', parseCacheMb, 48)
    .option('--nfs <addr:port>', 'also export the mount over NFS v3/v4 (NFS-Ganesha), e.g. 0.0.0.0:2049'))
    .action(async (image: string, mnt: string, o: { foreground?: boolean; allowOther?: boolean; cacheMb: number; nfs?: string } & RemoteFlags) => {
      const { mountCommand } = await import('./fuse/control');
      await mountCommand(image, mnt, { foreground: !!o.foreground, allowOther: !!o.allowOther, cacheMb: o.cacheMb, nfs: o.nfs, remote: remoteOptions(o), trust: o.trust });
    });

  program.command('status')
    .description('list the uniso mounts on this machine and their NFS exports')
    .option('--json', 'JSON output')
    .action(async (o: { json?: boolean }) => {
      const { statusCommand } = await import('./fuse/control');
      statusCommand(!!o.json);
    });

  program.command('umount')
    .alias('unmount')
    .description('unmount a uniso mount (also clears a stale mount left by a killed daemon)')
    .argument('<mountpoint>')
    .action(async (mnt: string) => {
      const { umountCommand } = await import('./fuse/control');
      await umountCommand(mnt);
    });

  withRemoteOptions(program.command('serve')
    .description('serve the files of a universal ISO over HTTP (Range, HEAD, indexes); no FUSE needed')
    .argument('<image>', 'universal ISO, its URL, or extracted directory')
    .requiredOption('--http <addr:port>', 'where to listen, e.g. 0.0.0.0:8080')
    .option('--cache-mb <n>', 'size of the block cache in MiB', parseCacheMb, 48)
    .option('-q, --quiet', 'no log lines'))
    .action(async (image: string, o: { http: string; cacheMb: number; quiet?: boolean } & RemoteFlags) => {
      const { serve } = await import('./commands/serve');
      await serve(image, o.http, { cacheMb: o.cacheMb, quiet: o.quiet, remote: remoteOptions(o), trust: o.trust });
    });

  withRemoteOptions(program.command('ls')
    .description('list the files of a universal ISO')
    .argument('<image>')
    .option('-l, --long', 'with sizes')
    .option('--json', 'JSON output'))
    .action(async (image: string, o: { long?: boolean; json?: boolean } & RemoteFlags) => {
      const { ls } = await import('./commands/inspect');
      await ls(image, o, openOptions(o));
    });

  withRemoteOptions(program.command('info')
    .description('describe a universal ISO: appliance, signature, pool, trees, views')
    .argument('<image>')
    .option('--json', 'JSON output'))
    .action(async (image: string, o: { json?: boolean } & RemoteFlags) => {
      const { info } = await import('./commands/inspect');
      await info(image, o, openOptions(o));
    });

  withRemoteOptions(program.command('extract')
    .description('copy one file out of a universal ISO without mounting it')
    .argument('<image>')
    .argument('<path>', 'e.g. proxmox/debian-12-turnkey-core_18.0-1_amd64.tar.gz')
    .requiredOption('-o, --output <file>', 'where to write ("-" for stdout)')
    .option('-q, --quiet', 'no progress output (shown for an http(s):// image)'))
    .action(async (image: string, p: string, o: { output: string; quiet?: boolean } & RemoteFlags) => {
      const { extract } = await import('./commands/extract');
      await extract(image, p, o.output, openOptions(o), !!o.quiet);
    });

  withRemoteOptions(program.command('verify')
    .description('check every pool block and every view checksum')
    .argument('<image>')
    .option('-q, --quiet', 'no progress output'))
    .action(async (image: string, o: { quiet?: boolean } & RemoteFlags) => {
      const { verify } = await import('./commands/verify');
      await verify(image, o, openOptions(o));
    });

  const key = program.command('key').description('Ed25519 keys for signing universal ISOs (build --sign, --trust)');
  key.command('generate')
    .description('write a new key pair: PREFIX.key (private, mode 0600: keep it off the mirror) and PREFIX.pub (for --trust)')
    .argument('<prefix>', 'e.g. turnkey-release')
    .action(async (prefix: string) => {
      const { keyGenerate } = await import('./commands/key');
      const r = keyGenerate(prefix);
      process.stderr.write(`uniso: wrote ${r.key} and ${r.pub} (key ${r.fingerprint})\n`);
    });

  // Output to a closed pipe (`uniso ls IMAGE | head`) ends the command
  // quietly, as SIGPIPE ends other Unix tools (status 128 + 13).
  for (const stream of [process.stdout, process.stderr]) {
    stream.on('error', (e: NodeJS.ErrnoException) => {
      if (e.code === 'EPIPE') process.exit(EXIT_BROKEN_PIPE);
      throw e;
    });
  }
  program.parseAsync(argv).catch((e: unknown) => {
    const err = e as { code?: string; exitCode?: number; message?: string };
    if (err.code === 'EPIPE') process.exit(EXIT_BROKEN_PIPE); // a synchronous write to a closed pipe
    if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version' || err.code === 'commander.help') {
      process.exit(0);
    }
    if (typeof err.code === 'string' && err.code.startsWith('commander.')) {
      process.exit(err.exitCode ?? 2);
    }
    if (e instanceof UserError || (e as Error)?.name === 'UserError') {
      process.stderr.write(`uniso: ${(e as Error).message}\n`);
      process.exit((e as UserError).exitCode ?? 1);
    }
    process.stderr.write(`uniso: internal error: ${(e as Error)?.stack ?? String(e)}\n`);
    process.exit(70);
  });
}
