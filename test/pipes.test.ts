// Output to a closed pipe (`uniso ls IMAGE | head`) ends a command quietly,
// as SIGPIPE ends other Unix tools: nothing on stderr, status 141 (128 +
// SIGPIPE, what a shell reports for a tool the signal ended). The reader's
// end is closed before the command writes anything, so every write fails.

import t from 'tap';
import { spawn } from 'node:child_process';
import { buildUniversal, FIXTURE_NAME, tempDir, UNISO } from './lib/fixture';

const uni = buildUniversal(tempDir(t), undefined, ['--formats', 'raw,ovf']);

function intoClosedPipe(args: string[]): Promise<{ code: number | null; signal: string | null; stderr: string }> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [UNISO, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    p.stdout.destroy();
    let stderr = '';
    p.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
    p.on('close', (code, signal) => resolve({ code, signal, stderr }));
  });
}

const commands: string[][] = [
  ['ls', uni], ['ls', '-l', uni], ['ls', '--json', uni],
  ['info', uni], ['info', '--json', uni],
  ['extract', uni, `raw/${FIXTURE_NAME}.img`, '-o', '-'],
  ['extract', uni, `vm/${FIXTURE_NAME}.ovf`, '-o', '-'],
  ['status'], ['status', '--json'],
  ['--help'], ['build', '--help'],
];

for (const args of commands) {
  const name = args.map((a) => (a === uni ? 'IMAGE' : a)).join(' ');
  t.test(`uniso ${name} | (closed)`, async (t) => {
    const r = await intoClosedPipe(args);
    t.equal(r.stderr, '', 'nothing on stderr');
    if (args.includes('--help')) t.ok(r.code === 0 || r.code === 141, `status ${r.code}: help exits as soon as it is written`);
    else t.equal(r.code, 141, 'status 141, as for SIGPIPE');
  });
}
