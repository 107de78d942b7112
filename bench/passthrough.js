#!/usr/bin/env node
'use strict';
// Baseline for the FUSE read benchmark: a minimal read-only fuse-native file
// system that exposes ONE backing file (the universal ISO) as /<basename>.
// read() does fs.read on the backing file straight into the buffer libfuse
// hands us; nothing is cached in user space. Same fuse-native package and
// libfuse as the uniso daemon, timeout disabled like uniso's.
//   node bench/passthrough.js BACKING_FILE MOUNTPOINT
// Prints "ready" on stdout once mounted; unmounts on SIGTERM/SIGINT/SIGHUP.

const fs = require('fs');
const path = require('path');
const Fuse = require(path.join(__dirname, '..', 'node_modules', 'fuse-native'));

const [backing, mnt] = process.argv.slice(2);
if (!backing || !mnt) {
  process.stderr.write('usage: passthrough.js BACKING_FILE MOUNTPOINT\n');
  process.exit(2);
}
const name = '/' + path.basename(backing);
const fd = fs.openSync(backing, 'r');
const st = fs.fstatSync(fd);

function fileStat() {
  return { mode: 0o100444, uid: 0, gid: 0, size: st.size, nlink: 1, mtime: st.mtime, atime: st.mtime, ctime: st.mtime };
}
function dirStat() {
  return { mode: 0o040555, uid: 0, gid: 0, size: 4096, nlink: 2, mtime: st.mtime, atime: st.mtime, ctime: st.mtime };
}

const ops = {
  getattr(p, cb) {
    if (p === '/') return cb(0, dirStat());
    if (p === name) return cb(0, fileStat());
    return cb(Fuse.ENOENT);
  },
  readdir(p, cb) {
    if (p !== '/') return cb(Fuse.ENOENT);
    return cb(0, [name.slice(1)], [fileStat()]);
  },
  open(p, flags, cb) {
    if (p !== name) return cb(Fuse.ENOENT);
    if ((flags & 3) !== 0) return cb(Fuse.EROFS);
    return cb(0, 1);
  },
  read(p, handle, buf, len, pos, cb) {
    if (pos >= st.size) return cb(0);
    fs.read(fd, buf, 0, Math.min(len, st.size - pos), pos, (err, n) => cb(err ? Fuse.EIO : n));
  },
  release(p, handle, cb) {
    cb(0);
  },
};

const fuse = new Fuse(mnt, ops, { fsname: 'bench-passthrough', timeout: false });
fuse.mount((err) => {
  if (err) {
    process.stderr.write(`passthrough: mount failed: ${err.message}\n`);
    process.exit(1);
  }
  process.stdout.write('ready\n');
});

let stopping = false;
function stop() {
  if (stopping) return;
  stopping = true;
  fuse.unmount((err) => {
    if (err) process.stderr.write(`passthrough: unmount: ${err.message}\n`);
    fs.closeSync(fd);
    process.exit(0);
  });
}
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
process.on('SIGHUP', stop);
setInterval(() => {}, 1 << 30);
