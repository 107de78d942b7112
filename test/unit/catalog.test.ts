// Catalog: schema version checks, damaged databases, tree round trip.

import t from 'tap';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import Database from 'better-sqlite3';
import { CatalogWriter } from '../../src/catalog/writer';
import { Catalog } from '../../src/catalog/reader';
import { SCHEMA_VERSION } from '../../src/catalog/schema';
import { EntryType, Tree } from '../../src/tree';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'uniso-unit-'));
t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));

function makeCatalog(name: string): string {
  const w = new CatalogWriter(path.join(dir, `${name}.build`));
  const tree = new Tree();
  const f = tree.newInode({ type: EntryType.File, mode: 0o4755, uid: 5, gid: 6, mtimeNs: 1_700_000_000_123_456_789n,
    rdevMajor: 0, rdevMinor: 0, xattrs: [{ name: 'security.capability', value: Buffer.from([1, 0, 0, 2]) }], sparse: false,
    content: { id: 1, size: 3, blocks: Uint32Array.from([1]) } });
  tree.link(1, 'f\xc3\xa9', f.ino); // "fé" as UTF-8 bytes
  w.writeTree('base', tree);
  const out = path.join(dir, `${name}.sqlite`);
  w.finish(out);
  return out;
}

t.test('a catalog round-trips its tree', async (t) => {
  const c = new Catalog(fs.readFileSync(makeCatalog('ok')), 'ok.iso');
  t.teardown(() => c.close());
  t.equal(c.meta('schema_version'), String(SCHEMA_VERSION));
  const row = c.child(1, 1, Buffer.from('fé', 'utf8'))!;
  t.ok(row, 'child found by UTF-8 name');
  t.same(c.children(1, 1).map((e) => e.name.toString('utf8')), ['fé'], 'listed');
  t.equal(c.rootInode(1)!.ino, 1, 'the root entry');
  t.equal(row.mode, 0o4755);
  t.equal(row.uid, 5);
  t.equal(row.mtime_sec, 1_700_000_000);
  t.equal(row.mtime_nsec, 123_456_789);
  t.same(c.xattrs(row), [{ name: 'security.capability', value: Buffer.from([1, 0, 0, 2]) }]);
});

t.test('a newer schema version is refused with a clear message', async (t) => {
  const file = makeCatalog('newer');
  const db = new Database(file);
  db.prepare("UPDATE meta SET value = ? WHERE key = 'schema_version'").run(String(SCHEMA_VERSION + 1));
  db.close();
  t.throws(() => new Catalog(fs.readFileSync(file), 'x.iso'),
    { message: `x.iso: catalog schema version ${SCHEMA_VERSION + 1} is newer than this uniso supports (${SCHEMA_VERSION}); upgrade uniso` });
});

t.test('damaged catalogs are refused, naming the image', async (t) => {
  t.throws(() => new Catalog(Buffer.from('not sqlite at all, just text '.repeat(200)), 'y.iso'), /^y\.iso: catalog is /);
  const file = makeCatalog('nometa');
  const db = new Database(file);
  db.exec('DELETE FROM meta');
  db.close();
  t.throws(() => new Catalog(fs.readFileSync(file), 'z.iso'), { message: 'z.iso: catalog has no schema version' });
});
