// The catalog's SQLite schema. The catalog is the whole state of a mount
// (ratarmount style): pool block table, deduplicated contents, the browsable
// tree, recipes (with their literals) and the views that name them.
// Version 2 packs what is read whole or a directory at a time (src/catalog/
// pack.ts: varints, deflated): the block table and contents in chunks, each
// directory's entries in one row. `block_digests` holds each block's
// SHA-256 (first 128 bits, src/pool/digests.ts), BLOCKS_PER_CHUNK a row:
// read only under --trust. Trees no view shows (the families'
// variants) keep only their summary row.

export const SCHEMA_VERSION = 2;

/** Blocks per row of `blocks`, contents per row of `contents`. */
export const BLOCKS_PER_CHUNK = 16384;
export const CONTENTS_PER_CHUNK = 256;

export const SCHEMA = `
CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE blocks(chunk INTEGER PRIMARY KEY, count INTEGER NOT NULL, size INTEGER NOT NULL, data BLOB NOT NULL);
CREATE TABLE block_digests(chunk INTEGER PRIMARY KEY, data BLOB NOT NULL);
CREATE TABLE contents(chunk INTEGER PRIMARY KEY, count INTEGER NOT NULL, size INTEGER NOT NULL, data BLOB NOT NULL);
CREATE TABLE trees(id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, entries INTEGER NOT NULL, bytes INTEGER NOT NULL,
  root_size INTEGER, root BLOB);
CREATE TABLE families(family TEXT PRIMARY KEY, tree INTEGER NOT NULL REFERENCES trees(id)) WITHOUT ROWID;
CREATE TABLE dirs(tree INTEGER NOT NULL, ino INTEGER NOT NULL, size INTEGER NOT NULL, data BLOB NOT NULL,
  PRIMARY KEY(tree, ino)) WITHOUT ROWID;
CREATE TABLE recipes(id INTEGER PRIMARY KEY, size INTEGER NOT NULL, data BLOB NOT NULL);
CREATE TABLE views(
  path TEXT PRIMARY KEY, ino INTEGER NOT NULL UNIQUE, kind TEXT NOT NULL CHECK(kind IN ('file','tree')),
  recipe INTEGER REFERENCES recipes(id), tree INTEGER REFERENCES trees(id),
  size INTEGER NOT NULL, mtime_sec INTEGER NOT NULL, sha256 TEXT, format TEXT NOT NULL, description TEXT NOT NULL
) WITHOUT ROWID;
`;
