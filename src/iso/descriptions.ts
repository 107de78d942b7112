// The files of a live ISO that describe its root squashfs, rewritten for the
// squashfs uniso puts in its place: checksum lists in the md5sum/sha*sum
// format (md5sum.txt, SHA256SUMS, sha256sum.txt, ...) at the ISO's root or
// beside the squashfs, where only the lines of replaced files change; and
// casper/live filesystem.size, rewritten only when it held the old
// squashfs's size (casper's convention is the unpacked tree's size, which
// uniso does not change).

import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import { IsoImage } from './iso9660';
import { readAllBytes } from '../io/source';

/** A checksum list's name, and its digest algorithm. */
const LIST_NAME = /^(md5|sha1|sha224|sha256|sha384|sha512)sums?(\.txt)?$/i;
/** One line: digest, two spaces or space-star, path. */
const LINE = /^([0-9a-fA-F]+)( [ *])(.+)$/;
const MAX_LIST_BYTES = 16 << 20;

export interface Replaced {
  isoPath: string; // e.g. casper/10root.squashfs (no leading slash)
  file: string; // the local file put in its place
  oldSize: number;
}

export interface Rewritten {
  isoPath: string;
  data: Buffer;
}

function dirOf(p: string): string {
  const i = p.lastIndexOf('/');
  return i < 0 ? '' : p.slice(0, i);
}

/** A list line's path as a path from the ISO's root ("./casper/x", "/casper/x", "x" beside the list). */
function resolveListed(listDir: string, listed: string): string {
  if (listed.startsWith('/')) return listed.replace(/^\/+/, '');
  const rel = listed.replace(/^(\.\/)+/, '');
  return listDir ? `${listDir}/${rel}` : rel;
}

async function fileDigest(file: string, alg: string): Promise<string> {
  const h = crypto.createHash(alg);
  for await (const chunk of fs.createReadStream(file, { highWaterMark: 4 << 20 })) h.update(chunk as Buffer);
  return h.digest('hex');
}

/** The rewritten description files of `iso` for `replaced` (files that change only). */
export async function rewriteDescriptions(iso: IsoImage, replaced: Replaced[]): Promise<Rewritten[]> {
  const byPath = new Map(replaced.map((r) => [r.isoPath, r]));
  const digests = new Map<string, Promise<string>>();
  const digestOf = (r: Replaced, alg: string) => {
    const key = `${alg}:${r.isoPath}`;
    let d = digests.get(key);
    if (!d) digests.set(key, (d = fileDigest(r.file, alg)));
    return d;
  };
  const out: Rewritten[] = [];
  const dirs = [...new Set(['', ...replaced.map((r) => dirOf(r.isoPath))])];
  for (const dir of dirs) {
    const d = await iso.lookup(dir);
    if (!d || !d.isDir) continue;
    for (const e of await iso.readdir(d)) {
      if (e.isDir || e.size > MAX_LIST_BYTES) continue;
      const listPath = dir ? `${dir}/${e.name}` : e.name;
      const m = LIST_NAME.exec(e.name);
      if (m) {
        const alg = m[1].toLowerCase();
        const text = (await readAllBytes(iso.open(e, listPath), listPath)).toString('latin1');
        let changed = false;
        const lines = await Promise.all(text.split('\n').map(async (line) => {
          const l = LINE.exec(line.replace(/\r$/, ''));
          const r = l ? byPath.get(resolveListed(dir, l[3])) : undefined;
          if (!l || !r) return line;
          changed = true;
          const hex = await digestOf(r, alg);
          return `${l[1] === l[1].toUpperCase() && /[A-F]/.test(l[1]) ? hex.toUpperCase() : hex}${l[2]}${l[3]}${line.endsWith('\r') ? '\r' : ''}`;
        }));
        if (changed) out.push({ isoPath: listPath, data: Buffer.from(lines.join('\n'), 'latin1') });
      } else if (e.name === 'filesystem.size') {
        const r = replaced.find((x) => dirOf(x.isoPath) === dir);
        if (!r) continue;
        const text = (await readAllBytes(iso.open(e, listPath), listPath)).toString('latin1');
        if (text.trim() === String(r.oldSize)) {
          out.push({ isoPath: listPath, data: Buffer.from(text.replace(/\d+/, String(fs.statSync(r.file).size)), 'latin1') });
        }
      }
    }
  }
  return out;
}
