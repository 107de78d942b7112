// The universal ISO still boots like the original: QEMU (TCG) starts it
// from the CD (El Torito) and as a disk (isohybrid MBR), and ISOLINUX, read
// from the image, reaches its configuration (it reports the missing kernel
// of the fixture, "Loading /casper/vmlinuz... failed", on the serial console).

import t from 'tap';
import { spawn } from 'node:child_process';
import { buildUniversal, fixture, tempDir } from './lib/fixture';

const MARKER = 'Loading /casper/vmlinuz';
const TIMEOUT_MS = 60_000;

/** Boot with QEMU until the serial console shows MARKER or "No bootable device"; returns the output. */
function bootsToIsolinux(args: string[]): Promise<string> {
  return new Promise((resolve) => {
    const q = spawn('qemu-system-x86_64', ['-nographic', '-no-reboot', '-m', '256', '-net', 'none', ...args],
      { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    const done = () => {
      clearTimeout(timer);
      q.kill('SIGKILL');
      resolve(out);
    };
    const timer = setTimeout(done, TIMEOUT_MS);
    q.stdout.on('data', (d: Buffer) => {
      out += d.toString('latin1');
      if (out.includes(MARKER) || out.includes('No bootable device')) done();
    });
    q.stderr.on('data', (d: Buffer) => { out += d.toString('latin1'); });
    q.on('exit', () => { clearTimeout(timer); resolve(out); });
  });
}

const dir = tempDir(t);
const uni = buildUniversal(dir);

t.test('the input ISO boots to ISOLINUX (control)', async (t) => {
  t.match(await bootsToIsolinux(['-cdrom', fixture().iso, '-boot', 'd']), MARKER);
});

t.test('the universal ISO boots from CD (El Torito)', async (t) => {
  t.match(await bootsToIsolinux(['-cdrom', uni, '-boot', 'd']), MARKER);
});

t.test('the universal ISO boots as a disk (isohybrid MBR)', async (t) => {
  t.match(await bootsToIsolinux(['-drive', `file=${uni},format=raw,if=ide,snapshot=on`, '-boot', 'c']), MARKER);
});

t.test('oracle check: a universal ISO built from a directory has no boot record and does not boot', async (t) => {
  const dataIso = buildUniversal(tempDir(t), fixture().tree);
  const out = await bootsToIsolinux(['-cdrom', dataIso, '-boot', 'd']);
  t.notMatch(out, MARKER);
  t.match(out, /No bootable device|not a bootable disk/i);
});
