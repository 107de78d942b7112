// The live squashfs's own structures (its superblock and tables, not the
// pool blocks it holds), located from its superblock, and their SHA-256s:
// recorded in the catalog at build time (meta squashfs_tables) so that
// `uniso verify` can name the table a damaged squashfs is damaged in (the
// pool blocks are checked one by one already).

import * as crypto from 'node:crypto';
import { parseSuperblock } from '../formats/squashfs/constants';

export const SUPERBLOCK_BYTES = 96;

export interface SquashfsTable {
  name: string;
  start: number;
  end: number;
  sha256: string;
}

/**
 * Where the tables lie, from the superblock's offsets (uniso's writer puts
 * them back to back after the data: inode table, directory table, then the
 * lookup tables: export, id, xattr), the padding after bytes_used last.
 * Undefined when the superblock's offsets are not in that order.
 */
export function tableRegions(superblock: Buffer, size: number): { name: string; start: number; end: number }[] | undefined {
  if (superblock.length < SUPERBLOCK_BYTES) return undefined;
  const sb = parseSuperblock(superblock);
  const inodes = Number(sb.inode_table_start);
  const dirs = Number(sb.directory_table_start);
  const lookup = Number(sb.fragment_table_start);
  const used = Number(sb.bytes_used);
  if (!(SUPERBLOCK_BYTES <= inodes && inodes <= dirs && dirs <= lookup && lookup <= used && used <= size)) return undefined;
  return [
    { name: 'superblock', start: 0, end: SUPERBLOCK_BYTES },
    { name: 'inode table', start: inodes, end: dirs },
    { name: 'directory table', start: dirs, end: lookup },
    { name: 'lookup tables (export, id, xattr)', start: lookup, end: used },
    { name: 'padding', start: used, end: size },
  ];
}

/** The SHA-256 of each region, given its bytes. */
export function hashTables(regions: { name: string; start: number; end: number }[], bytes: (start: number, end: number) => Buffer): SquashfsTable[] {
  return regions.map((r) => ({ ...r, sha256: crypto.createHash('sha256').update(bytes(r.start, r.end)).digest('hex') }));
}
