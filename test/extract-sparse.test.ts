// `uniso extract` to a regular file writes the 20 GiB-class disk views
// sparse: the file has the view's size and bytes (compared with the same
// view streamed to stdout) but only its data's blocks are allocated.

import t from 'tap';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { spawn } from 'node:child_process';
import { buildUniversal, listViews, mustUniso, tempDir, UNISO } from './lib/fixture';

const UNIT = 64 * 1024;

/** SHA-256 of what `uniso ARGS` writes to stdout, and how many of its aligned 64 KiB units hold a non-zero byte. */
function streamed(args: string[]): Promise<{ sha256: string; dataUnits: number }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [UNISO, ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
    const h = crypto.createHash('sha256');
    let pos = 0;
    let unitHasData = false;
    let dataUnits = 0;
    child.stdout.on('data', (d: Buffer) => {
      h.update(d);
      for (let o = 0; o < d.length;) {
        const n = Math.min(d.length - o, UNIT - (pos % UNIT));
        if (!unitHasData && d.subarray(o, o + n).some((b) => b !== 0)) unitHasData = true;
        o += n;
        pos += n;
        if (pos % UNIT === 0) {
          if (unitHasData) dataUnits++;
          unitHasData = false;
        }
      }
    });
    child.on('error', reject);
    child.on('close', (code) => {
      if (unitHasData) dataUnits++;
      if (code === 0) resolve({ sha256: h.digest('hex'), dataUnits });
      else reject(new Error(`uniso exited ${code}`));
    });
  });
}

function sha256OfFile(file: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const h = crypto.createHash('sha256');
    fs.createReadStream(file).on('data', (d) => h.update(d)).on('error', reject).on('end', () => resolve(h.digest('hex')));
  });
}

t.test('extract writes the raw disk view sparse, with the same bytes', async (t) => {
  const dir = tempDir(t);
  const iso = buildUniversal(dir);
  const raw = listViews(iso).find((v) => v.path.startsWith('raw/') && v.path.endsWith('.img'))!;
  t.ok(raw, 'the image has a raw disk view');
  const out = path.join(dir, 'disk.img');
  mustUniso(['extract', iso, raw.path, '-o', out]);
  const st = fs.statSync(out);
  t.equal(st.size, raw.size, 'the file has the view size');
  const view = await streamed(['extract', iso, raw.path, '-o', '-']);
  // allocated: the 64 KiB units that hold data, plus room for the file system's own extent blocks
  const bound = view.dataUnits * UNIT + (1 << 20);
  t.ok(st.blocks * 512 <= bound, `only the data is allocated (${st.blocks * 512} bytes; ${view.dataUnits} units of 64 KiB hold data, of ${raw.size / UNIT})`);
  t.ok(view.dataUnits * UNIT < raw.size / 4, 'the view is mostly zeros (so the bound above means something)');
  t.equal(await sha256OfFile(out), view.sha256, 'same bytes as the view streamed to stdout');
  const recorded = (JSON.parse(mustUniso(['ls', '--json', iso]).stdout) as { path: string; sha256: string }[]).find((v) => v.path === raw.path)!.sha256;
  t.equal(await sha256OfFile(out), recorded, 'and the SHA-256 recorded at build time');
});
