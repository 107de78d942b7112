// The fuzzing harness (`make fuzz`, fuzz/run.ts): mutation-based fuzzing of
// byte readers with fast-check. A target gives seed inputs (made at fuzz
// time by real tools: mksquashfs, tar, xorriso, uniso build) and a function
// that takes an input's bytes. fast-check generates lists of mutations (bit
// flips, interesting little-endian and ASCII numbers, zeroed ranges,
// truncations, copied and inserted bytes), biased towards each seed's
// metadata regions; the property is that the target ends cleanly:
//   - it returns, or throws an error the target calls clean (a UserError:
//     one line the CLI prints), never an internal error (a TypeError, a
//     RangeError from a Buffer read, ... even wrapped in a UserError's text);
//   - within FUZZ_RUN_MS (2 s) of wall time per input (async), and within
//     the watchdog's limit when it blocks the event loop (the worker below
//     saves the input and kills the process);
//   - allocating no single buffer over ALLOC_CAP (Buffer.alloc* are wrapped);
//   - writing nothing outside its scratch directory (TMPDIR points into it).
// A failure is shrunk by fast-check to few mutations, saved under
// fuzz/out/ (input bytes and mutation list), and fuzzing goes on with that
// error's signature counted as known, until the time is up.

import * as fs from 'node:fs';
import * as path from 'node:path';
import * as crypto from 'node:crypto';
import { Worker } from 'node:worker_threads';
import fc from 'fast-check';

/** Largest single buffer a target may allocate for one input. */
export const ALLOC_CAP = 64 * 2 ** 20;
/** Wall time one input may take (async work). */
export const RUN_MS = Number(process.env.FUZZ_RUN_MS ?? 2000);
/** Time the event loop may stay blocked by one input before the watchdog kills the process. */
const HANG_MS = Math.max(10_000, RUN_MS * 5);

export interface Seed {
  name: string;
  bytes: Buffer;
  /** [offset, length] regions where mutations land more often (headers, tables, directories) */
  hot?: [number, number][];
}

export interface Target {
  name: string;
  /** what the target covers (printed) */
  about: string;
  /** make the seeds in `dir` (a scratch directory of the target) */
  seeds(dir: string): Promise<Seed[]>;
  /** run one input; `scratch` is an empty directory the run may write in */
  run(input: Buffer, scratch: string, seed: Seed): Promise<void>;
  /** is this error a clean rejection? default: a UserError */
  clean?(e: unknown): boolean;
  /** extra per-target time for one input (ms), e.g. spawning decompressors */
  runMs?: number;
  /** tear down what seeds() set up */
  close?(): Promise<void>;
}

// ---- mutations ------------------------------------------------------------

export type Mutation =
  | { k: 'flip'; at: number; region: number; bit: number }
  | { k: 'byte'; at: number; region: number; v: number }
  | { k: 'int'; at: number; region: number; width: 1 | 2 | 4 | 8; v: bigint; be: boolean }
  | { k: 'ascii'; at: number; region: number; text: string }
  | { k: 'zero'; at: number; region: number; len: number }
  | { k: 'copy'; at: number; region: number; from: number; len: number }
  | { k: 'insert'; at: number; region: number; bytes: number[] }
  | { k: 'cut'; at: number; region: number; len: number }
  | { k: 'trunc'; at: number; region: number };

const INTERESTING: bigint[] = [0n, 1n, 2n, 3n, 4n, 7n, 8n, 16n, 32n, 0x7fn, 0x80n, 0xffn, 0x100n, 0x200n, 0x800n, 0x1000n,
  0x7fffn, 0x8000n, 0xffffn, 0x10000n, 0x7fffffffn, 0x80000000n, 0xfffffffen, 0xffffffffn, 0x100000000n,
  0x7fffffffffffffffn, 0xffffffffffffffffn];
const ASCII_NUMBERS = ['0', '1', '7', '77777777777', '777777777777', '99999999999', '18446744073709551615',
  '9007199254740993', '-1', '1e9', ' ', '1.5', '4294967296', '100000000000', '0x10', ''];

const intArb = fc.oneof(fc.constantFrom(...INTERESTING), fc.bigInt({ min: 0n, max: 0xffffffffn }));

export const mutationArb: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ k: fc.constant('flip' as const), at: fc.nat(), region: fc.nat(), bit: fc.integer({ min: 0, max: 7 }) }),
  fc.record({ k: fc.constant('byte' as const), at: fc.nat(), region: fc.nat(), v: fc.integer({ min: 0, max: 255 }) }),
  fc.record({ k: fc.constant('int' as const), at: fc.nat(), region: fc.nat(), width: fc.constantFrom(1 as const, 2 as const, 4 as const, 8 as const), v: intArb, be: fc.boolean() }),
  fc.record({ k: fc.constant('ascii' as const), at: fc.nat(), region: fc.nat(), text: fc.oneof(fc.constantFrom(...ASCII_NUMBERS), fc.stringMatching(/^[0-7]{1,12}$/)) }),
  fc.record({ k: fc.constant('zero' as const), at: fc.nat(), region: fc.nat(), len: fc.integer({ min: 1, max: 4096 }) }),
  fc.record({ k: fc.constant('copy' as const), at: fc.nat(), region: fc.nat(), from: fc.nat(), len: fc.integer({ min: 1, max: 2048 }) }),
  fc.record({ k: fc.constant('insert' as const), at: fc.nat(), region: fc.nat(), bytes: fc.array(fc.integer({ min: 0, max: 255 }), { minLength: 1, maxLength: 64 }) }),
  fc.record({ k: fc.constant('cut' as const), at: fc.nat(), region: fc.nat(), len: fc.integer({ min: 1, max: 4096 }) }),
  fc.record({ k: fc.constant('trunc' as const), at: fc.nat(), region: fc.nat() }),
);

/** Where a mutation lands: in one of the seed's hot regions (3 in 4) or anywhere. */
function place(m: Mutation, len: number, hot: [number, number][]): number {
  if (len === 0) return 0;
  const r = m.region % (hot.length * 4 + hot.length + 1 || 1);
  if (hot.length && r < hot.length * 4) {
    const [start, n] = hot[r % hot.length];
    return Math.min(len - 1, start + (n > 0 ? m.at % n : 0));
  }
  return m.at % len;
}

/** The seed's bytes with the mutations applied in order. */
export function applyMutations(seed: Seed, muts: Mutation[]): Buffer {
  let b = Buffer.from(seed.bytes);
  const hot = seed.hot ?? [];
  for (const m of muts) {
    if (b.length === 0) break;
    const at = place(m, b.length, hot);
    switch (m.k) {
      case 'flip': b[at] ^= 1 << m.bit; break;
      case 'byte': b[at] = m.v; break;
      case 'int': {
        const t = Buffer.alloc(8);
        t.writeBigUInt64LE(m.v & 0xffffffffffffffffn);
        const bytes = t.subarray(0, m.width);
        if (m.be) bytes.reverse();
        bytes.copy(b, at, 0, Math.min(m.width, b.length - at));
        break;
      }
      case 'ascii': Buffer.from(m.text, 'latin1').copy(b, at); break;
      case 'zero': b.fill(0, at, Math.min(b.length, at + m.len)); break;
      case 'copy': b.copy(b, at, m.from % b.length, Math.min(b.length, (m.from % b.length) + m.len)); break;
      case 'insert': b = Buffer.concat([b.subarray(0, at), Buffer.from(m.bytes), b.subarray(at)]); break;
      case 'cut': b = Buffer.concat([b.subarray(0, at), b.subarray(Math.min(b.length, at + m.len))]); break;
      case 'trunc': b = b.subarray(0, at); break;
    }
  }
  return b;
}

// ---- what counts as a clean rejection --------------------------------------

/** Texts of JavaScript / Node internal errors: a bug even when wrapped in a UserError's message. */
const INTERNAL = [
  /The value of "[^"]+" is out of range/, /Attempt to access memory outside buffer bounds/, /Cannot read properties of/,
  /is not a function/, /is not iterable/, /Invalid array length/, /Invalid typed array length/, /Array buffer allocation failed/,
  /Maximum call stack size exceeded/, /Cannot convert .* to a BigInt/, /The "[^"]+" argument must be/, /ERR_[A-Z_]+/,
  /allocation of \d+ bytes over the fuzz cap/, /Cannot create a string longer than/, /Invalid string length/,
];

export class AllocCapError extends Error {
  constructor(n: number) {
    super(`allocation of ${n} bytes over the fuzz cap (${ALLOC_CAP})`);
    this.name = 'AllocCapError';
  }
}

export function isUserError(e: unknown): boolean {
  return (e as Error)?.name === 'UserError';
}

/** Why `e` is not a clean rejection, or undefined when it is. */
export function uncleanReason(e: unknown, target: Target): string | undefined {
  const err = e as Error;
  const msg = String(err?.message ?? e);
  const ok = target.clean ? target.clean(e) : isUserError(e);
  if (!ok) {
    // where it was thrown: the first frame in uniso's own code
    const at = String(err?.stack ?? '').split('\n').find((l) => /\/src\//.test(l))?.trim().replace(/^at /, '');
    return `${err?.name ?? typeof e}: ${msg}${at ? ` (at ${at.replace(/.*\/src\//, 'src/').replace(/\)$/, '')})` : ''}`;
  }
  if (INTERNAL.some((re) => re.test(msg))) return `internal error inside a clean one: ${msg}`;
  if (msg.includes('\n')) return `more than one line: ${JSON.stringify(msg)}`;
  return undefined;
}

/** The signature of a failure: its text without numbers and paths (one finding, many inputs). */
export function signature(reason: string): string {
  return reason.replace(/\/[^\s:"']+/g, 'PATH').replace(/0x[0-9a-f]+/gi, 'N').replace(/\d+/g, 'N').slice(0, 200);
}

// ---- allocation cap --------------------------------------------------------

let capArmed = false;
export function installAllocCap(): void {
  const wrap = <F extends (size: number, ...rest: never[]) => Buffer>(f: F): F =>
    (function (this: unknown, size: number, ...rest: never[]) {
      if (capArmed && typeof size === 'number' && size > ALLOC_CAP) throw new AllocCapError(size);
      return f.call(Buffer, size, ...rest);
    }) as F;
  Buffer.alloc = wrap(Buffer.alloc);
  Buffer.allocUnsafe = wrap(Buffer.allocUnsafe);
  Buffer.allocUnsafeSlow = wrap(Buffer.allocUnsafeSlow);
}

// ---- watchdog (an input that blocks the event loop) ----------------------------

const WATCH_MAX = 64 * 2 ** 20;

class Watchdog {
  private readonly state = new Int32Array(new SharedArrayBuffer(16)); // [running, length, startLow, startHigh]
  private readonly input = new Uint8Array(new SharedArrayBuffer(WATCH_MAX));
  private readonly worker: Worker;

  constructor(file: string) {
    this.worker = new Worker(`
      const { workerData } = require('node:worker_threads');
      const fs = require('node:fs');
      const st = new Int32Array(workerData.state);
      const input = new Uint8Array(workerData.input);
      setInterval(() => {
        if (Atomics.load(st, 0) !== 1) return;
        const start = st[2] + st[3] * 2 ** 31;
        if (Date.now() / 1000 - start > workerData.hangSec) {
          fs.writeFileSync(workerData.file, input.subarray(0, st[1]));
          fs.writeSync(2, 'fuzz: HANG: the event loop was blocked over ' + workerData.hangSec + ' s by one input; saved to ' + workerData.file + '\\n');
          process.kill(process.pid, 'SIGKILL');
        }
      }, 250).unref();
    `, { eval: true, workerData: { state: this.state.buffer, input: this.input.buffer, file, hangSec: HANG_MS / 1000 } });
    this.worker.unref();
  }

  begin(b: Buffer): void {
    const n = Math.min(b.length, WATCH_MAX);
    this.input.set(b.subarray(0, n));
    const now = Math.floor(Date.now() / 1000);
    this.state[1] = n;
    this.state[2] = now % 2 ** 31;
    this.state[3] = Math.floor(now / 2 ** 31);
    Atomics.store(this.state, 0, 1);
  }

  end(): void {
    Atomics.store(this.state, 0, 0);
  }

  stop(): Promise<number> {
    return this.worker.terminate();
  }
}

// ---- one input --------------------------------------------------------------

function timeout(ms: number): { promise: Promise<never>; cancel(): void } {
  let t: NodeJS.Timeout | undefined;
  const promise = new Promise<never>((_, reject) => {
    t = setTimeout(() => reject(new Error(`TIMEOUT: one input took over ${ms} ms`)), ms);
  });
  promise.catch(() => { /* raced */ });
  return { promise, cancel: () => clearTimeout(t) };
}

/** Run one input; the reason it failed the property, or undefined. */
export async function runOne(target: Target, input: Buffer, seed: Seed, scratchRoot: string): Promise<string | undefined> {
  const scratch = fs.mkdtempSync(path.join(scratchRoot, 'run-'));
  const tmp = path.join(scratch, 'tmp');
  fs.mkdirSync(tmp);
  const oldTmp = process.env.TMPDIR;
  process.env.TMPDIR = tmp;
  const ms = RUN_MS + (target.runMs ?? 0);
  const t = timeout(ms);
  let reason: string | undefined;
  capArmed = true;
  try {
    await Promise.race([target.run(input, scratch, seed), t.promise]);
  } catch (e) {
    reason = String((e as Error)?.message ?? '').startsWith('TIMEOUT:') ? (e as Error).message : uncleanReason(e, target);
  } finally {
    capArmed = false;
    t.cancel();
    if (oldTmp === undefined) delete process.env.TMPDIR;
    else process.env.TMPDIR = oldTmp;
  }
  if (!reason) {
    const left = fs.readdirSync(tmp);
    if (left.length) reason = `left files in its temporary directory: ${left.join(', ')}`;
    const outside = fs.readdirSync(scratch).filter((n) => n !== 'tmp' && !n.startsWith('out'));
    if (outside.length) reason = `wrote outside its output: ${outside.join(', ')}`;
  }
  if (!reason && process.memoryUsage().rss > 3 * 2 ** 30) reason = `RSS grew over 3 GiB (${process.memoryUsage().rss} bytes)`;
  // a timed-out run may still be going: leave its directory for the end
  if (!reason?.startsWith('TIMEOUT:')) fs.rmSync(scratch, { recursive: true, force: true });
  return reason;
}

// ---- the fuzzing loop --------------------------------------------------------

export interface Finding {
  signature: string;
  reason: string;
  seed: string;
  mutations: Mutation[];
  file: string;
}

export async function fuzz(target: Target, seconds: number, workDir: string, outDir: string): Promise<{ runs: number; findings: Finding[] }> {
  installAllocCap();
  fs.mkdirSync(outDir, { recursive: true });
  const seedDir = path.join(workDir, 'seeds');
  fs.mkdirSync(seedDir, { recursive: true });
  const scratchRoot = path.join(workDir, 'runs');
  fs.mkdirSync(scratchRoot, { recursive: true });
  const seeds = await target.seeds(seedDir);
  if (!seeds.length) throw new Error(`${target.name}: no seeds`);
  // every seed must pass unmutated (else the harness, not the reader, is wrong)
  for (const s of seeds) {
    const r = await runOne(target, s.bytes, s, scratchRoot);
    if (r) throw new Error(`${target.name}: seed ${s.name} fails unmutated: ${r}`);
  }
  process.stdout.write(`fuzz ${target.name}: ${target.about}; ${seeds.length} seeds (${seeds.map((s) => `${s.name} ${s.bytes.length} B`).join(', ')})\n`);
  const dog = new Watchdog(path.join(outDir, `${target.name}-hang.bin`));
  const known = new Set<string>();
  const findings: Finding[] = [];
  const deadline = Date.now() + seconds * 1000;
  let runs = 0;
  const arb = fc.tuple(fc.nat({ max: seeds.length - 1 }), fc.array(mutationArb, { minLength: 1, maxLength: 8 }));
  try {
    while (Date.now() < deadline) {
      const fcSeed = crypto.randomInt(2 ** 31);
      let lastReason = '';
      const result = await fc.check(fc.asyncProperty(arb, async ([si, muts]) => {
        runs++;
        const input = applyMutations(seeds[si], muts);
        dog.begin(input);
        const reason = await runOne(target, input, seeds[si], scratchRoot);
        dog.end();
        if (reason && !known.has(signature(reason))) {
          lastReason = reason;
          return false;
        }
        return true;
      }), { numRuns: Number.MAX_SAFE_INTEGER, interruptAfterTimeLimit: Math.max(1, deadline - Date.now()), seed: fcSeed, markInterruptAsFailure: false });
      if (!result.failed || !result.counterexample) break; // time is up
      const [si, muts] = result.counterexample[0];
      // the shrunk counterexample's own reason (shrinking ran it last, or rerun it)
      const input = applyMutations(seeds[si], muts);
      const reason = (await runOne(target, input, seeds[si], scratchRoot)) ?? lastReason;
      const sig = signature(reason);
      known.add(sig);
      const base = `${target.name}-${crypto.createHash('sha256').update(sig).digest('hex').slice(0, 10)}`;
      const file = path.join(outDir, `${base}.bin`);
      fs.writeFileSync(file, input);
      fs.writeFileSync(path.join(outDir, `${base}.json`), JSON.stringify({ target: target.name, seed: seeds[si].name, reason,
        fcSeed, mutations: muts }, (_, v) => (typeof v === 'bigint' ? `0x${v.toString(16)}` : v), 2) + '\n');
      findings.push({ signature: sig, reason, seed: seeds[si].name, mutations: muts, file });
      process.stdout.write(`fuzz ${target.name}: FINDING ${reason}\n  seed ${seeds[si].name}, ${muts.length} mutation(s), input saved to ${file}\n`);
    }
  } finally {
    await dog.stop();
    await target.close?.();
  }
  return { runs, findings };
}
