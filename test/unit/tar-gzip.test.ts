// tar headers and spliced gzip, checked by independent readers: Python's
// tarfile (pax record lengths, long names, big ids) and gzip itself.

import t from 'tap';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { paxRecord, tarHeader } from '../../src/formats/tar';
import { PieceList, compilePlain } from '../../src/formats/pieces';
import { GzipCompiler } from '../../src/formats/gzip';
import { PoolWriter } from '../../src/pool/writer';
import { BlockStore, blockTableFrom } from '../../src/pool/reader';
import { FileSource } from '../../src/io/source';
import { RecipeReader } from '../../src/recipe/reader';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'uniso-unit-'));
t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));

t.test('pax records carry their own exact length', async (t) => {
  for (let n = 0; n < 1100; n++) {
    const rec = paxRecord('k', 'x'.repeat(n));
    const len = Number(rec.toString('latin1').split(' ')[0]);
    if (len !== rec.length) {
      t.fail(`value length ${n}: record says ${len}, is ${rec.length}`);
      return;
    }
  }
  t.pass('every value length 0..1099');
});

t.test('Python tarfile reads pax headers, long names and big numbers', async (t) => {
  const members: Buffer[] = [];
  const longName = `dir/${'n'.repeat(150)}/${'m'.repeat(120)}`;
  const values = [8, 89, 90, 91, 990, 991, 992].map((n) => Buffer.alloc(n, 0x41));
  const extra: [string, Buffer][] = values.map((v, i) => [`SCHILY.xattr.user.v${i}`, v]);
  const data = Buffer.from('hello\n');
  members.push(tarHeader({ path: longName, type: '0', mode: 0o4755, uid: 3000000, gid: 70000000, size: data.length, mtimeSec: 1700000000n, extra }));
  members.push(data, Buffer.alloc(512 - data.length));
  members.push(tarHeader({ path: Buffer.from('ünï/ファイル', 'utf8').toString('latin1'), type: '2', mode: 0o777, uid: 0, gid: 0, size: 0, mtimeSec: -100n, linkname: 'l'.repeat(140) }));
  members.push(Buffer.alloc(1024));
  const file = path.join(dir, 'h.tar');
  fs.writeFileSync(file, Buffer.concat(members));
  const py = `
import tarfile, json, sys
out = []
for m in tarfile.open(sys.argv[1], encoding='utf-8'):
    out.append({'name': m.name, 'mode': m.mode, 'uid': m.uid, 'gid': m.gid, 'size': m.size, 'mtime': m.mtime,
                'linkname': m.linkname, 'type': m.type.decode(),
                'xattrs': {k: len(v.encode('utf-8', 'surrogateescape')) for k, v in m.pax_headers.items() if k.startswith('SCHILY.xattr.')}})
print(json.dumps(out))`;
  const r = spawnSync('python3', ['-c', py, file], { encoding: 'utf8' });
  t.equal(r.status, 0, r.stderr);
  const got = JSON.parse(r.stdout);
  t.equal(got[0].name, longName);
  t.equal(got[0].mode, 0o4755);
  t.equal(got[0].uid, 3000000);
  t.equal(got[0].gid, 70000000);
  t.equal(got[0].size, 6);
  t.equal(got[0].mtime, 1700000000);
  t.same(Object.values(got[0].xattrs), values.map((v) => v.length), 'xattr values of every length');
  t.equal(got[1].name, 'ünï/ファイル');
  t.equal(got[1].linkname, 'l'.repeat(140));
  t.equal(got[1].mtime, -100);
});

t.test('spliced gzip: gzip -t accepts it and it inflates to the plain stream', async (t) => {
  const poolPath = path.join(dir, 'pool');
  const pool = new PoolWriter(poolPath, 6);
  const w = pool.file();
  const text = Buffer.from(Array.from({ length: 20000 }, (_, i) => `row ${i}\n`).join(''));
  const noise = Buffer.alloc(100000);
  for (let i = 0; i < noise.length; i++) noise[i] = (i * 2654435761) >>> 24;
  await w.write(text);
  await w.write(noise);
  const c = await w.end();
  await pool.finish();
  const pieces = new PieceList();
  pieces.bytes(Buffer.from('header bytes\n'));
  pieces.content(c);
  pieces.zeros(150000);
  pieces.bytes(Buffer.alloc(3000, 0x61));
  pieces.content(c, 1, 2);
  pieces.content(c, 2, 3);
  // bytes the stream just had (the end of that block: noise, incompressible alone)
  pieces.bytes(Buffer.concat([text, noise]).subarray(3 * 65536 - 1000, 3 * 65536));
  const list = pieces.done();
  const plain = compilePlain(list);
  const gz = await new GzipCompiler(pool.blocks).compile(list);
  const src = FileSource.open(poolPath);
  t.teardown(() => src.close());
  const store = new BlockStore(src, blockTableFrom(pool.blocks, src.size));
  // the literal runs compressed with the stream's history as their dictionary
  const withHistory = await new GzipCompiler(pool.blocks, (id) => store.inflated(id)).compile(list);
  const read = async (r: typeof plain) => {
    const b = Buffer.alloc(r.size);
    await new RecipeReader(r, store).pread(b, 0);
    return b;
  };
  const plainBytes = await read(plain);
  const gzBytes = await read(gz.recipe);
  t.equal(gz.size, plainBytes.length, 'ISIZE source');
  fs.writeFileSync(path.join(dir, 'x.gz'), gzBytes);
  t.equal(spawnSync('gzip', ['-t', path.join(dir, 'x.gz')]).status, 0, 'gzip -t');
  const out = spawnSync('gzip', ['-dc', path.join(dir, 'x.gz')], { maxBuffer: 1 << 26 }).stdout as Buffer;
  t.ok(out.equals(plainBytes), 'gzip -dc output equals the plain stream');
  t.ok(plainBytes.subarray(13, 13 + text.length).equals(text), 'plain stream holds the file bytes');
  const hBytes = await read(withHistory.recipe);
  fs.writeFileSync(path.join(dir, 'h.gz'), hBytes);
  t.equal(spawnSync('gzip', ['-t', path.join(dir, 'h.gz')]).status, 0, 'with history: gzip -t');
  t.ok((spawnSync('gzip', ['-dc', path.join(dir, 'h.gz')], { maxBuffer: 1 << 26 }).stdout as Buffer).equals(plainBytes), 'with history: the same plain stream');
  t.ok(hBytes.length + 800 < gzBytes.length, `with history: smaller (${hBytes.length} vs ${gzBytes.length}: the last literal refers back to the block before it)`);
});
