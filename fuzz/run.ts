// `make fuzz`: every target of fuzz/targets.ts for FUZZ_SECONDS (60) each,
// or only FUZZ_TARGET (a name, or several comma-separated). Each target
// runs in a child process of its own (a crash or a hang of one is reported,
// the others still run). Findings go to fuzz/out/ (input and mutations);
// the exit status is 1 when there was one.
//
// TypeScript runs through the ts-node that tap runs the tests with
// (TS_REGISTER below, transpile only; `make fuzz` checks the types first):
//   node -r TS_REGISTER fuzz/run.ts            (the parent)
//   node -r TS_REGISTER fuzz/run.ts --child T  (one target)

import * as fs from 'node:fs';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { fuzz } from './harness';
import { TARGETS } from './targets';
import { ROOT } from './seeds';

const WORK = path.join(ROOT, 'fuzz', 'work');
const OUT = path.join(ROOT, 'fuzz', 'out');
const seconds = Number(process.env.FUZZ_SECONDS ?? 60);
const TS_REGISTER = require.resolve('@isaacs/ts-node-temp-fork-for-pr-2009/register/transpile-only');

async function child(name: string): Promise<void> {
  const t = TARGETS.find((x) => x.name === name);
  if (!t) throw new Error(`no fuzz target ${name}`);
  const work = path.join(WORK, name);
  fs.rmSync(path.join(work, 'runs'), { recursive: true, force: true });
  const { runs, findings } = await fuzz(t, seconds, work, OUT);
  fs.rmSync(path.join(work, 'runs'), { recursive: true, force: true });
  process.stdout.write(`fuzz ${name}: ${runs} inputs in ${seconds} s, ${findings.length} finding(s)\n`);
  process.exit(findings.length ? 1 : 0);
}

function parent(): void {
  if (!Number.isFinite(seconds) || seconds <= 0) throw new Error(`FUZZ_SECONDS=${process.env.FUZZ_SECONDS}: expected a number of seconds`);
  const names = process.env.FUZZ_TARGET ? process.env.FUZZ_TARGET.split(',') : TARGETS.map((t) => t.name);
  for (const n of names) if (!TARGETS.some((t) => t.name === n)) throw new Error(`FUZZ_TARGET: no target ${n} (targets: ${TARGETS.map((t) => t.name).join(', ')})`);
  const failed: string[] = [];
  for (const n of names) {
    // seeds, shrinking and the watchdog's margin on top of the fuzzing time
    const r = spawnSync(process.execPath, ['-r', TS_REGISTER, __filename, '--child', n], {
      stdio: 'inherit', timeout: (seconds + 180) * 1000, killSignal: 'SIGKILL', env: { ...process.env, TS_NODE_PROJECT: path.join(ROOT, 'fuzz', 'tsconfig.json') },
    });
    if (r.status !== 0) {
      failed.push(n);
      if (r.signal) process.stdout.write(`fuzz ${n}: ended by ${r.signal} (a crash, a hang or out of memory)\n`);
    }
  }
  process.stdout.write(failed.length ? `fuzz: findings or failures in ${failed.join(', ')} (see ${path.relative(process.cwd(), OUT)}/)\n` : `fuzz: ${names.length} target(s), no findings\n`);
  process.exit(failed.length ? 1 : 0);
}

if (process.argv[2] === '--child') {
  child(process.argv[3]).catch((e) => {
    process.stderr.write(`fuzz ${process.argv[3]}: ${(e as Error).stack}\n`);
    process.exit(2);
  });
} else {
  parent();
}
