#!/usr/bin/env node
// Writes a directory as a deterministic "newc" cpio archive (the initramfs
// format the Linux kernel unpacks) to a file, for make-boot-appliance.sh.
// Entries are sorted by path (bytewise), owned by 0:0, stamped with one fixed
// mtime and numbered 1..n as inodes, so the same input tree always gives the
// same bytes. Device nodes (which would need mknod on the build host) are
// added with --node PATH:c|b:MAJOR:MINOR:MODE.
//   node mkcpio.mjs [--mtime EPOCH] [--node dev/console:c:5:1:0600]... DIR OUT.cpio
import fs from 'node:fs';
import path from 'node:path';

function usage(msg) {
  if (msg) process.stderr.write(`mkcpio: ${msg}\n`);
  process.stderr.write('usage: mkcpio.mjs [--mtime EPOCH] [--node PATH:c|b:MAJOR:MINOR:MODE]... DIR OUT.cpio\n');
  process.exit(2);
}

let mtime = Number(process.env.SOURCE_DATE_EPOCH ?? 0);
const nodes = [];
let dir;
let outFile;
const args = process.argv.slice(2);
for (let i = 0; i < args.length; i++) {
  const a = args[i];
  if (a === '--mtime') mtime = Number(args[++i]);
  else if (a === '--node') {
    const m = /^([^:]+):([cb]):(\d+):(\d+):([0-7]+)$/.exec(args[++i] ?? '');
    if (!m) usage(`bad --node ${args[i]}`);
    const type = m[2] === 'c' ? 0o020000 : 0o060000;
    nodes.push({ rel: m[1].replace(/^\/+/, ''), mode: type | parseInt(m[5], 8), rmaj: +m[3], rmin: +m[4] });
  } else if (dir === undefined) dir = a;
  else if (outFile === undefined) outFile = a;
  else usage(`unexpected argument ${a}`);
}
if (outFile === undefined) usage();
if (!Number.isInteger(mtime) || mtime < 0) usage('bad --mtime');

// Collect entries: relative path -> { mode, data?, rmaj, rmin }.
const entries = new Map();
function walk(rel) {
  const abs = rel ? path.join(dir, rel) : dir;
  for (const name of fs.readdirSync(abs)) {
    const r = rel ? `${rel}/${name}` : name;
    const st = fs.lstatSync(path.join(dir, r));
    const perm = st.mode & 0o7777;
    if (st.isDirectory()) {
      entries.set(r, { mode: 0o040000 | perm });
      walk(r);
    } else if (st.isFile()) {
      entries.set(r, { mode: 0o100000 | perm, data: fs.readFileSync(path.join(dir, r)) });
    } else if (st.isSymbolicLink()) {
      entries.set(r, { mode: 0o120777, data: Buffer.from(fs.readlinkSync(path.join(dir, r))) });
    } else {
      throw new Error(`mkcpio: unsupported file type: ${r} (use --node for device nodes)`);
    }
  }
}
walk('');
for (const n of nodes) entries.set(n.rel, { mode: n.mode, rmaj: n.rmaj, rmin: n.rmin });

const names = [...entries.keys()].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
const out = [];
let offset = 0;
function push(buf) { out.push(buf); offset += buf.length; }
function pad4() { const p = (4 - (offset % 4)) % 4; if (p) push(Buffer.alloc(p)); }
const hex = (n) => (n >>> 0).toString(16).padStart(8, '0');

function header(ino, name, e) {
  const size = e.data ? e.data.length : 0;
  const nlink = (e.mode & 0o170000) === 0o040000 ? 2 : 1;
  const nameBuf = Buffer.from(`${name}\0`);
  const fields = [ino, e.mode, 0, 0, nlink, mtime, size, 0, 0, e.rmaj ?? 0, e.rmin ?? 0, nameBuf.length, 0];
  push(Buffer.from(`070701${fields.map(hex).join('')}`, 'latin1'));
  push(nameBuf);
  pad4();
  if (size) { push(e.data); pad4(); }
}

names.forEach((name, i) => header(i + 1, name, entries.get(name)));
header(0, 'TRAILER!!!', { mode: 0 });
// Pad the archive to a 512-byte multiple, as cpio(1) does.
const tail = (512 - (offset % 512)) % 512;
if (tail) push(Buffer.alloc(tail));
fs.writeFileSync(outFile, Buffer.concat(out));
