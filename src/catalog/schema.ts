// The catalog's SQLite schema. The catalog is the whole state of a mount
// (ratarmount style): pool block table, deduplicated contents, trees
// (inodes + dirents), recipes (with their literals) and the views that name them.

export const SCHEMA_VERSION = 1;

export const SCHEMA = `
CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE blocks(
  id INTEGER PRIMARY KEY, offset INTEGER NOT NULL, csize INTEGER NOT NULL, usize INTEGER NOT NULL,
  flags INTEGER NOT NULL, sxh INTEGER NOT NULL, crc32 INTEGER NOT NULL, adler32 INTEGER NOT NULL,
  hash BLOB NOT NULL);
CREATE TABLE contents(id INTEGER PRIMARY KEY, size INTEGER NOT NULL, blocks BLOB NOT NULL);
CREATE TABLE trees(id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, entries INTEGER NOT NULL, bytes INTEGER NOT NULL);
CREATE TABLE families(family TEXT PRIMARY KEY, tree INTEGER NOT NULL REFERENCES trees(id)) WITHOUT ROWID;
CREATE TABLE inodes(
  tree INTEGER NOT NULL, ino INTEGER NOT NULL, type INTEGER NOT NULL, mode INTEGER NOT NULL,
  uid INTEGER NOT NULL, gid INTEGER NOT NULL, mtime_sec INTEGER NOT NULL, mtime_nsec INTEGER NOT NULL,
  nlink INTEGER NOT NULL, size INTEGER NOT NULL, rdev_major INTEGER NOT NULL, rdev_minor INTEGER NOT NULL,
  target BLOB, content INTEGER, xattrs BLOB, sparse INTEGER NOT NULL,
  PRIMARY KEY(tree, ino)) WITHOUT ROWID;
CREATE TABLE dirents(tree INTEGER NOT NULL, parent INTEGER NOT NULL, name BLOB NOT NULL, ino INTEGER NOT NULL,
  PRIMARY KEY(tree, parent, name)) WITHOUT ROWID;
CREATE TABLE recipes(id INTEGER PRIMARY KEY, size INTEGER NOT NULL, data BLOB NOT NULL);
CREATE TABLE views(
  path TEXT PRIMARY KEY, ino INTEGER NOT NULL UNIQUE, kind TEXT NOT NULL CHECK(kind IN ('file','tree')),
  recipe INTEGER REFERENCES recipes(id), tree INTEGER REFERENCES trees(id),
  size INTEGER NOT NULL, mtime_sec INTEGER NOT NULL, sha256 TEXT, format TEXT NOT NULL, description TEXT NOT NULL
) WITHOUT ROWID;
`;
