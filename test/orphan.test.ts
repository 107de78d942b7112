// A uniso daemon lives exactly as long as its mount: unmounted by
// `fusermount3 -u`, `umount`, `umount -l`, or its kernel connection aborted
// (through the fusectl file system), the daemon exits by itself, leaves no
// state behind (`uniso status`), and an aborted mount is lifted. Another
// mount on the same path afterwards is not touched by the old daemon.

import t from 'tap';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { processAlive, buildUniversal, isMounted, mountOn, must, run, tempDir, uniso } from './lib/fixture';

const FUSECTL = '/sys/fs/fuse/connections';
const dir = tempDir(t);
const uni = buildUniversal(dir, undefined, ['--formats', 'raw']);

interface Row { mountpoint: string; pid: number }
function statusRows(): Row[] {
  return JSON.parse(must(process.execPath, [path.join(__dirname, '..', 'bin', 'uniso'), 'status', '--json']).stdout) as Row[];
}

function daemonOf(mnt: string): number {
  const row = statusRows().find((r) => r.mountpoint === mnt);
  if (!row) throw new Error(`uniso status does not list ${mnt}`);
  return row.pid;
}

/** Waits (at most `limitMs`) until the daemon has exited and `uniso status` no longer lists the mount; returns the time it took. */
async function untilGone(pid: number, mnt: string, limitMs = 10_000): Promise<number | undefined> {
  const start = Date.now();
  while (Date.now() - start < limitMs) {
    if (!processAlive(pid) && !statusRows().some((r) => r.mountpoint === mnt)) return Date.now() - start;
    await new Promise((r) => setTimeout(r, 50));
  }
  return undefined;
}

/** The FUSE connection number of the mount at `mnt` (its device minor). */
function connectionOf(mnt: string): string {
  const line = fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n').find((l) => l.split(' ')[4] === mnt);
  if (!line) throw new Error(`${mnt} is not mounted`);
  return line.split(' ')[2].split(':')[1];
}

const ways: [string, (mnt: string) => void][] = [
  ['fusermount3 -u', (mnt) => must('fusermount3', ['-u', mnt])],
  ['umount', (mnt) => must('umount', [mnt])],
  ['umount -l', (mnt) => must('umount', ['-l', mnt])],
  ['an aborted kernel connection', (mnt) => fs.writeFileSync(path.join(FUSECTL, connectionOf(mnt), 'abort'), '1\n')],
];

t.before(() => {
  if (!fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n').some((l) => l.split(' ')[4] === FUSECTL)) {
    must('mount', ['-t', 'fusectl', 'fusectl', FUSECTL]);
    t.teardown(() => { run('umount', [FUSECTL]); });
  }
});

for (const [name, unmount] of ways) {
  t.test(`the daemon exits when its mount is removed by ${name}`, async (t) => {
    const mnt = path.join(tempDir(t, 'uniso-mnt-'), 'mnt');
    fs.mkdirSync(mnt);
    mountOn(t, uni, mnt);
    const pid = daemonOf(mnt);
    t.ok(processAlive(pid), `daemon ${pid} runs`);
    t.ok(fs.readdirSync(mnt).includes('raw'), 'the mount answers');
    unmount(mnt);
    const ms = await untilGone(pid, mnt);
    t.ok(ms !== undefined, `the daemon exited and uniso status dropped the mount (${ms} ms)`);
    t.notOk(isMounted(mnt), 'nothing is mounted there any more');
    t.same(fs.readdirSync(mnt), [], 'the mount point is an empty directory again');
  });
}

t.test('a new mount on the same path is left alone by the old daemon', async (t) => {
  const mnt = path.join(tempDir(t, 'uniso-mnt-'), 'mnt');
  fs.mkdirSync(mnt);
  mountOn(t, uni, mnt);
  const first = daemonOf(mnt);
  must('umount', ['-l', mnt]);
  // mount again at once, possibly before the first daemon noticed
  mountOn(t, uni, mnt);
  const second = daemonOf(mnt);
  t.not(second, first, 'a second daemon');
  t.ok((await untilGone(first, '\0none')) !== undefined, 'the first daemon exited');
  await new Promise((r) => setTimeout(r, 1000));
  t.ok(processAlive(second), 'the second daemon still runs');
  t.ok(isMounted(mnt) && fs.readdirSync(mnt).includes('raw'), 'and its mount still answers');
  t.equal(uniso(['umount', mnt]).code, 0);
  t.ok((await untilGone(second, mnt)) !== undefined, 'then it exits too');
});
