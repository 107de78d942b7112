// Field-by-field comparison of two directory trees, used as the oracle check
// after extracting a view with GNU tar or bsdtar: type, permission bits
// (setuid/setgid/sticky too), numeric owner, mtime (whole seconds), size,
// bytes (sparse-aware: only data regions are read), symlink targets,
// device numbers, xattrs (getfattr) and hard-link groups.

import * as fs from 'node:fs';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { native } from '../../src/native';

export interface CompareOptions {
  /** Relative paths (or prefixes ending in "/") to skip. */
  ignore?: string[];
  /** Compare directory mtimes too (extractors may touch them). Default true. */
  dirMtimes?: boolean;
  /** Compare the root directory's mtime. Default true. */
  rootMtime?: boolean;
  /** Compare xattrs. Default true. */
  xattrs?: boolean;
  /** Entry types missing from `b` that are acceptable (e.g. sockets in tar). */
  allowMissing?: (rel: string, st: fs.BigIntStats) => boolean;
}

function walk(root: string): Map<string, fs.BigIntStats> {
  const out = new Map<string, fs.BigIntStats>();
  const rec = (rel: string) => {
    const st = fs.lstatSync(path.join(root, rel), { bigint: true });
    out.set(rel, st);
    if (st.isDirectory()) {
      for (const n of fs.readdirSync(path.join(root, rel)).sort()) rec(rel ? `${rel}/${n}` : n);
    }
  };
  rec('');
  return out;
}

function xattrsOf(root: string): Map<string, string> {
  const r = spawnSync('getfattr', ['-R', '-h', '-d', '-m', '-', '-e', 'hex', '--absolute-names', root], { encoding: 'latin1', maxBuffer: 1 << 28 });
  const out = new Map<string, string>();
  let cur = '';
  let lines: string[] = [];
  const flush = () => { if (cur) out.set(cur, lines.sort().join(';')); };
  for (const l of (r.stdout ?? '').split('\n')) {
    if (l.startsWith('# file: ')) {
      flush();
      const abs = Buffer.from(l.slice(8).replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8))), 'latin1').toString('utf8');
      cur = path.relative(root, abs);
      lines = [];
    } else if (l.includes('=')) {
      lines.push(l);
    }
  }
  flush();
  return out;
}

function dataRegions(fd: number, size: number): [number, number][] {
  const out: [number, number][] = [];
  for (let pos = 0; pos < size;) {
    const d = native().seekData(fd, pos, false);
    if (d < 0 || d >= size) break;
    const h = Math.min(size, native().seekData(fd, d, true));
    out.push([d, h]);
    pos = h;
  }
  return out;
}

/** Byte-compare two regular files, reading only where either has data. */
export function sameBytes(a: string, b: string, size: number): boolean {
  const fa = fs.openSync(a, 'r');
  const fb = fs.openSync(b, 'r');
  try {
    const ranges = [...dataRegions(fa, size), ...dataRegions(fb, size)].sort((x, y) => x[0] - y[0]);
    const ba = Buffer.alloc(1 << 20);
    const bb = Buffer.alloc(1 << 20);
    let done = 0; // everything below `done` has been compared
    for (const [s, e] of ranges) {
      for (let pos = Math.max(s, done); pos < e;) {
        const n = Math.min(ba.length, e - pos);
        const ra = fs.readSync(fa, ba, 0, n, pos);
        const rb = fs.readSync(fb, bb, 0, n, pos);
        if (ra !== n || rb !== n || !ba.subarray(0, n).equals(bb.subarray(0, n))) return false;
        pos += n;
      }
      done = Math.max(done, e);
    }
    return true;
  } finally {
    fs.closeSync(fa);
    fs.closeSync(fb);
  }
}

export function compareTrees(a: string, b: string, opts: CompareOptions = {}): string[] {
  const diffs: string[] = [];
  const ignored = (rel: string) => (opts.ignore ?? []).some((p) => (p.endsWith('/') ? rel.startsWith(p) : rel === p));
  const wa = walk(a);
  const wb = walk(b);
  const xa = opts.xattrs === false ? undefined : xattrsOf(a);
  const xb = opts.xattrs === false ? undefined : xattrsOf(b);
  for (const [rel, sa] of wa) {
    if (ignored(rel)) continue;
    const sb = wb.get(rel);
    const where = rel || '.';
    if (!sb) {
      if (!opts.allowMissing?.(rel, sa)) diffs.push(`${where}: missing`);
      continue;
    }
    const fmt = (m: bigint) => m & 0o170000n;
    if (fmt(sa.mode) !== fmt(sb.mode)) { diffs.push(`${where}: type ${fmt(sa.mode).toString(8)} vs ${fmt(sb.mode).toString(8)}`); continue; }
    if ((sa.mode & 0o7777n) !== (sb.mode & 0o7777n)) diffs.push(`${where}: mode ${(sa.mode & 0o7777n).toString(8)} vs ${(sb.mode & 0o7777n).toString(8)}`);
    if (sa.uid !== sb.uid || sa.gid !== sb.gid) diffs.push(`${where}: owner ${sa.uid}:${sa.gid} vs ${sb.uid}:${sb.gid}`);
    const secA = sa.mtimeNs / 1_000_000_000n;
    const secB = sb.mtimeNs / 1_000_000_000n;
    const checkMtime = rel === '' ? opts.rootMtime !== false : !sa.isDirectory() || opts.dirMtimes !== false;
    if (secA !== secB && checkMtime) diffs.push(`${where}: mtime ${secA} vs ${secB}`);
    if (sa.isFile()) {
      if (sa.size !== sb.size) diffs.push(`${where}: size ${sa.size} vs ${sb.size}`);
      else if (!sameBytes(path.join(a, rel), path.join(b, rel), Number(sa.size))) diffs.push(`${where}: content differs`);
      if (sa.nlink !== sb.nlink) diffs.push(`${where}: nlink ${sa.nlink} vs ${sb.nlink}`);
    } else if (sa.isSymbolicLink()) {
      const ta = fs.readlinkSync(path.join(a, rel));
      const tb = fs.readlinkSync(path.join(b, rel));
      if (ta !== tb) diffs.push(`${where}: symlink ${ta} vs ${tb}`);
    } else if (sa.isCharacterDevice() || sa.isBlockDevice()) {
      if (sa.rdev !== sb.rdev) diffs.push(`${where}: rdev ${sa.rdev} vs ${sb.rdev}`);
    }
    if (xa && xb && (xa.get(rel) ?? '') !== (xb.get(rel) ?? '')) diffs.push(`${where}: xattrs {${xa.get(rel) ?? ''}} vs {${xb.get(rel) ?? ''}}`);
  }
  for (const rel of wb.keys()) if (!wa.has(rel) && !ignored(rel)) diffs.push(`${rel}: extra`);
  // hard-link groups must match as sets of paths
  const groups = (w: Map<string, fs.BigIntStats>) => {
    const g = new Map<string, string[]>();
    for (const [rel, st] of w) {
      if (st.isDirectory() || st.nlink < 2n || ignored(rel)) continue;
      const k = `${st.dev}:${st.ino}`;
      g.set(k, [...(g.get(k) ?? []), rel]);
    }
    return new Set([...g.values()].map((v) => v.sort().join('|')));
  };
  const ga = groups(wa);
  const gb = groups(wb);
  for (const x of ga) if (!gb.has(x)) diffs.push(`hard-link group ${x} not preserved`);
  for (const x of gb) if (!ga.has(x)) diffs.push(`unexpected hard-link group ${x}`);
  return diffs;
}
