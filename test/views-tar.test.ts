// The tar-based views (openvz, opennode, proxmox, xen, lxc rootfs, docker
// layer) against the source tree, with GNU tar and bsdtar as oracles:
// listings and extraction compared field by field (owners, all mode bits,
// mtimes, symlinks, hard links, devices, fifos, xattrs incl.
// security.capability, long and non-ASCII names, >8 GiB and sparse files).

import t from 'tap';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { buildUniversal, fixture, FIXTURE_NAME, FIXTURE_TEMPLATE, must, mustUniso, run, tempDir } from './lib/fixture';
import { compareTrees } from './lib/treecmp';

const fx = fixture();
const dir = tempDir(t);
const uni = buildUniversal(dir);

function extractView(view: string): string {
  const out = path.join(dir, path.basename(view));
  mustUniso(['extract', uni, view, '-o', out]);
  return out;
}

const GNU_X = ['--numeric-owner', '--xattrs', "--xattrs-include=*", '-xpf'];
const BSD_X = ['--numeric-owner', '--xattrs', '-xpf'];

let extractions = 0;
function extractWith(tool: 'tar' | 'bsdtar', archive: string, sub: string): string {
  const dest = path.join(dir, `${tool}-${++extractions}`);
  fs.mkdirSync(dest);
  must(tool, [...(tool === 'tar' ? GNU_X : BSD_X), archive, '-C', dest]);
  return sub ? path.join(dest, sub) : dest;
}

const templates = [
  `openvz/${FIXTURE_TEMPLATE}.tar.gz`,
  `opennode/${FIXTURE_TEMPLATE}.tar.gz`,
  `proxmox/${FIXTURE_TEMPLATE}.tar.gz`,
  `xen/${FIXTURE_NAME}-xen.tar.gz`,
];

t.test('tar.gz views pass gzip -t and equal the source tree under GNU tar and bsdtar', async (t) => {
  for (const view of [...templates, `lxc/${FIXTURE_NAME}-incus.tar.gz`]) {
    const file = extractView(view);
    t.equal(run('gzip', ['-t', file]).code, 0, `${view}: gzip -t`);
    const sub = view.startsWith('lxc/') ? 'rootfs' : '';
    for (const tool of ['tar', 'bsdtar'] as const) {
      const x = extractWith(tool, file, sub);
      // bsdtar leaves the directory it extracts into alone, so the root's mtime is not restored
      t.same(compareTrees(fx.tree, x, { rootMtime: tool === 'tar' || sub !== '' }), [], `${view}: ${tool} extraction equals the source tree`);
    }
  }
});

t.test('GNU tar and bsdtar list the same members with the source metadata', async (t) => {
  const file = extractView(templates[2]);
  const env = { ...process.env, TZ: 'UTC', LC_ALL: 'C.UTF-8' };
  const gnu = must('tar', ['--numeric-owner', '-tvzf', file], { env }).stdout;
  const names = (tool: string) => must(tool, ['-tzf', file], { env }).stdout.split('\n').filter(Boolean).sort();
  t.same(names('tar'), names('bsdtar'), 'same member names');
  const expected = new Set<string>();
  const walk = (rel: string) => {
    for (const n of fs.readdirSync(path.join(fx.tree, rel))) {
      const r = rel ? `${rel}/${n}` : n;
      const st = fs.lstatSync(path.join(fx.tree, r));
      expected.add(`./${r}${st.isDirectory() ? '/' : ''}`);
      if (st.isDirectory()) walk(r);
    }
  };
  walk('');
  expected.add('./');
  t.same(names('tar'), [...expected].sort(), 'one member per source entry');
  t.match(gnu.split('\n')[0], /^drwxr-xr-x 0\/0 .* \.\/$/, 'root directory entry first');
  t.match(gnu, /-rwsr-xr-x 0\/0 +\d+ .* \.\/usr\/bin\/suid-tool/, 'setuid bit');
  t.match(gnu, /drwxrwxrwt 0\/0 .* \.\/tmp\//, 'sticky bit');
  t.match(gnu, /-rw-r--r-- 3000000\/4000000 .* \.\/srv\/data\/big-ids/, 'uid/gid over 7 octal digits');
  t.match(gnu, /crw--w---- 0\/0 +4,64 .* \.\/dev\/ttyS0/, 'character device');
  t.match(gnu, /brw-rw---- 0\/0 +259,300 .* \.\/dev\/nvme-big/, 'block device with a large minor');
  t.match(gnu, /prw-r--r-- 0\/0 .* \.\/var\/log\/fifo/, 'fifo');
  t.match(gnu, /hrw-r--r-- 0\/0 +0 .* link to \.\/sbin\/linked-again/, 'hard links as link entries');
  t.match(gnu, / 9663688761 .*\.\/srv\/data\/huge-9g\.img/, 'file over 8 GiB with its real size');
  t.match(gnu, /日本語ファイル\.txt/, 'non-ASCII name');
  t.match(gnu, /f{120}\.txt/, 'name over 100 bytes');
  t.match(gnu, /1999-12-31 23:59 \.\/etc\/motd/, 'old mtime');
});

t.test('security.capability survives as a pax SCHILY.xattr record', async (t) => {
  const file = extractView(templates[0]);
  const x = extractWith('tar', file, '');
  const cap = must('getcap', [path.join(x, 'usr/bin/ping')]).stdout;
  t.match(cap, /cap_net_raw[=+]ep/, 'getcap sees cap_net_raw+ep');
  const raw = must('sh', ['-c', `gzip -dc '${file}' | grep -a -c 'SCHILY.xattr.security.capability'`]).stdout.trim();
  t.equal(raw, '1', 'one SCHILY.xattr.security.capability record');
});

t.test('the three container templates are the same bytes', async (t) => {
  const a = fs.readFileSync(extractView(templates[0]));
  t.ok(a.equals(fs.readFileSync(extractView(templates[1]))), 'openvz == opennode');
  t.ok(a.equals(fs.readFileSync(extractView(templates[2]))), 'openvz == proxmox');
});

t.test('sparse files stay sparse after extraction', async (t) => {
  const file = extractView(templates[2]);
  const x = extractWith('tar', file, '');
  const st = fs.statSync(path.join(x, 'srv/data/huge-9g.img'));
  t.equal(st.size, 9 * 1024 * 1024 * 1024 + 12345, 'real size');
  t.ok(st.blocks * 512 < 1 << 20, `allocated ${st.blocks * 512} bytes, not 9 GiB`);
  const fd = fs.openSync(path.join(x, 'srv/data/huge-9g.img'), 'r');
  const b = Buffer.alloc(17);
  fs.readSync(fd, b, 0, 17, 8 * 1024 * 1024 * 1024 + 777);
  fs.closeSync(fd);
  t.equal(b.toString(), 'tail beyond 8 GiB', 'data past 8 GiB');
});
