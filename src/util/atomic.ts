// Write-to-temp-then-rename helpers, so a failed command never leaves a
// half-written output under the final name.

import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileError } from './errors';

/** Temp name in the same directory as `final` (same filesystem for rename). */
export function tempNameFor(final: string): string {
  const dir = path.dirname(final);
  return path.join(dir, `.${path.basename(final)}.${process.pid}.tmp`);
}

/** Fail early when the directory that will hold `output` does not exist. */
export function checkOutputDir(output: string): void {
  const dir = path.dirname(path.resolve(output));
  let st: fs.Stats;
  try {
    st = fs.statSync(dir);
  } catch {
    throw fileError(output, `output directory ${dir} does not exist`);
  }
  if (!st.isDirectory()) throw fileError(output, `${dir} is not a directory`);
  let out: fs.Stats | undefined;
  try {
    out = fs.statSync(output);
  } catch {
    return; // does not exist yet: fine
  }
  if (out.isDirectory()) throw fileError(output, 'is a directory (give a file name for the output)');
}

/**
 * True when `output` exists and is not a regular file (a character device
 * such as /dev/null, a FIFO, a socket): written in place, since renaming a
 * temp file onto it would replace the device with a plain file.
 */
export function isSpecialOutput(output: string): boolean {
  try {
    const st = fs.statSync(output);
    return !st.isFile() && !st.isDirectory();
  } catch {
    return false;
  }
}

/** Rename a finished temp file onto its final name, as a user-facing error on failure. */
export function commitOutput(temp: string, final: string): void {
  try {
    fs.renameSync(temp, final);
  } catch (e) {
    removeQuietly(temp);
    throw fileError(final, `cannot write output (${(e as Error).message})`);
  }
}

/** Remove a file if it exists; never throws. */
export function removeQuietly(p: string): void {
  try { fs.rmSync(p, { recursive: true, force: true }); } catch { /* already gone */ }
}
