// `uniso build`: ingest the appliance (and any per-family variants or
// overlays) into one pool, lay the pool out as the ISO carries it (the
// base tree's live squashfs, whose data blocks are the pool blocks, and a
// side pool for the blocks only other trees have), compile every format's
// views into recipes, checksum them, write the catalog, and assemble the
// universal ISO (with --sign, its manifest signed: src/image/signature.ts).
// All intermediate files live in a temp directory beside the output, which
// is renamed into place only when everything succeeded.

import { hashTables, SquashfsTable, SUPERBLOCK_BYTES, tableRegions } from './image/squashfs-tables';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as crypto from 'node:crypto';
import * as os from 'node:os';
import { ingest, Ingested } from './ingest';
import { PoolWriter } from './pool/writer';
import { BlockStore, blockTableFrom } from './pool/reader';
import { BlockInfo, FLAG_RAW, framedSize, POOL_BLOCK, storedCheck, zlibHeader } from './pool/format';
import { crc32 } from './checksum/crc32';
import { adler32 } from './checksum/adler32';
import { CatalogWriter } from './catalog/writer';
import { Recipe, RecipeBuilder } from './recipe/recipe';
import { applyOverlay, EntryType, Tree } from './tree';
import { FORMATS, PREPARERS } from './formats';
import { FAMILIES, Family, Firmware, FormatContext, FormatOptions, ViewOut } from './formats/context';
import { GzipCompiler } from './formats/gzip';
import { applianceNames, ApplianceNames } from './formats/naming';
import { readmeText } from './formats/readme';
import { layoutSquashfs, SquashfsImage, squashfsRecipe, writeImage } from './formats/squashfs/writer';
import { ingestDirectory } from './ingest/dir';
import { writeUniversalIso } from './iso/writer';
import { IsoImage } from './iso/iso9660';
import { Replaced, rewriteDescriptions } from './iso/descriptions';
import { FileSource } from './io/source';
import { digestBlocks } from './pool/digests';
import {
  CATALOG_NAME, MANIFEST_FORMAT, MANIFEST_NAME, MANIFEST_VERSION, Manifest, POOL_NAME, PoolPart, ROOTFS_SQUASHFS_NAME, SIGNATURE_NAME, UNISO_DIR,
} from './image/layout';
import { loadSigningKey, signManifest } from './image/signature';
import { HashPool } from './util/hash-recipe';
import { Progress } from './util/progress';
import { checkOutputDir, commitOutput, isSpecialOutput, removeQuietly, tempNameFor } from './util/atomic';
import { fileError, UserError } from './util/errors';

export interface BuildOptions {
  input: string;
  output: string;
  name?: string;
  variants: Map<Family, string>;
  overlays: Map<Family, string>;
  level: number;
  quiet: boolean;
  diskSize: number;
  memoryMb: number;
  ovfSha1: boolean;
  /** disk layout and boot loaders of the disk views */
  firmware: Firmware;
  /** formats to build (names as in FORMATS); all when undefined */
  formats?: string[];
  /** keep the input ISO's squashfs byte for byte, the whole pool beside it (ISO inputs only) */
  keepSquashfs?: boolean;
  /** a private key file (PEM, Ed25519): the manifest is signed with it (/uniso/uniso.json.sig) */
  sign?: string;
}

export interface BuildResult {
  output: string;
  views: { path: string; size: number; sha256: string }[];
  poolBytes: number;
  squashfsBytes: number;
  sidePoolBytes: number;
  inputBytes: number;
  warnings: string[];
}

/** Parse "FAMILY=PATH" option values. */
export function parseFamilyOption(values: string[], option: string): Map<Family, string> {
  const out = new Map<Family, string>();
  for (const v of values) {
    const eq = v.indexOf('=');
    const fam = v.slice(0, eq) as Family;
    if (eq <= 0 || !FAMILIES.includes(fam) || eq === v.length - 1) {
      throw new UserError(`${option} ${v}: expected FAMILY=PATH with FAMILY one of ${FAMILIES.join(', ')}`);
    }
    if (out.has(fam)) throw new UserError(`${option}: family ${fam} given twice`);
    out.set(fam, v.slice(eq + 1));
  }
  return out;
}

/** Check a --formats list against the known formats. */
export function parseFormats(v: string | undefined): string[] | undefined {
  if (v === undefined) return undefined;
  const names = v.split(',').map((x) => x.trim()).filter(Boolean);
  const known = FORMATS.map((f) => f.name);
  for (const n of names) if (!known.includes(n)) throw new UserError(`--formats: unknown format "${n}" (known: ${known.join(', ')})`);
  if (!names.length) throw new UserError('--formats: give at least one format');
  return names;
}

/** What every phase of a build shares. */
interface Build {
  opts: BuildOptions;
  progress: Progress;
  warnings: string[];
  warn(message: string): void;
  tmp: string; // the build's temp directory
  stageDir: string; // becomes /uniso on the ISO
  pool: PoolWriter;
  memo<T>(key: string, make: () => T): T;
  /** Let a memoized value go (made again if asked for later). */
  forget(key: string): void;
}

/** The trees a build ingested: the base tree, and the families' variant trees. */
interface Trees {
  /** what the input was (its tree, as ingested, is not kept: `base` is its renumbered copy) */
  input: Omit<Ingested, 'tree'>;
  base: Tree;
  families: Map<Family, Tree>;
  overlays: Map<Family, Tree>;
  of(family: Family): Tree;
  /** A key equal for families whose current trees are the same object (memo keys of what is made from a tree). */
  key(family: Family): string;
}

/** The pool as the ISO carries it. */
interface PoolLayout {
  /** block table in pool order (id = index + 1) */
  blocks: BlockInfo[];
  /** the pool's files, in pool order: local file, and where it goes */
  parts: { file: string; part: PoolPart }[];
  /** the base tree's squashfs as a recipe over `blocks` (its layout is not kept) */
  squashfs: { recipe: Recipe; inodes: number; copies: number; zlibHeader: Buffer };
  /** SHA-256 of the squashfs file on the ISO (undefined with --keep-squashfs: the input's is kept) */
  squashfsSha256?: string;
  /** input ISO files replaced, and the local files put in their place */
  replaced: Replaced[];
}

export async function build(opts: BuildOptions): Promise<BuildResult> {
  const output = path.resolve(opts.output);
  checkInputs(opts, output);
  const signingKey = opts.sign !== undefined ? loadSigningKey(opts.sign) : undefined; // a bad key fails before the long build
  const progress = new Progress(!opts.quiet);
  const tmp = fs.mkdtempSync(path.join(path.dirname(output), `.uniso-build-`));
  const isoTmp = tempNameFor(output);
  const warnings: string[] = [];
  const memo = new Map<string, unknown>();
  let pool: PoolWriter | undefined;
  let hashPool: HashPool | undefined;
  let catalog: CatalogWriter | undefined;
  let partSources: FileSource[] = [];
  try {
    const stageDir = path.join(tmp, UNISO_DIR);
    fs.mkdirSync(stageDir);
    pool = new PoolWriter(path.join(tmp, 'pool.tmp'), opts.level);
    const b: Build = {
      opts, progress, warnings, tmp, stageDir, pool,
      warn: (m) => { if (!warnings.includes(m)) warnings.push(m); },
      memo: <T>(key: string, make: () => T): T => {
        if (!memo.has(key)) memo.set(key, make());
        return memo.get(key) as T;
      },
      forget: (key) => { memo.delete(key); },
    };
    const trees = await ingestTrees(b);
    if (opts.keepSquashfs && trees.input.kind !== 'iso') {
      throw fileError(opts.input, '--keep-squashfs: the input is not an ISO, so it has no squashfs to keep');
    }
    const names = await namesOf(b, trees);
    const formatOptions: FormatOptions = { diskSize: opts.diskSize, memoryMb: opts.memoryMb, ovfSha1: opts.ovfSha1, firmware: opts.firmware };
    const selected = FORMATS.filter((f) => !opts.formats || opts.formats.includes(f.name));
    await runPreparers(b, trees, names, formatOptions, selected.map((f) => f.family));
    progress.phase('compressing');
    await pool.finish();

    const layout = await layoutPool(b, trees);
    catalog = new CatalogWriter(path.join(tmp, 'catalog.build.sqlite'));
    const baseId = writeTrees(catalog, layout, pool, trees);

    partSources = layout.parts.map((p) => FileSource.open(p.file));
    const poolSource = FileSource.concat('pool', partSources);
    const table = blockTableFrom(layout.blocks, poolSource.size);
    catalog.writeBlockDigests(await digestBlocks(poolSource, table));
    let hashedBytes = 0;
    let hashedNow = false;
    hashPool = new HashPool(layout.parts.map((p) => p.file), table, Math.max(1, Math.min(4, os.availableParallelism())), (n) => {
      hashedBytes += n;
      if (hashedNow) progress.add(n);
    });
    const mtimeSec = newestMtimeSec(trees);
    const store = new BlockStore(poolSource, table, { name: 'pool', cacheBytes: 32 << 20 });
    const views = await compileViews(b, trees, layout, names, formatOptions, selected, mtimeSec, hashPool, (id) => store.inflated(id));

    // checksums
    progress.phase('checksumming views', [...views.sha.keys()].reduce((s, r) => s + r.size, 0));
    progress.add(hashedBytes);
    hashedNow = true;
    const results: BuildResult['views'] = [];
    for (const v of views.list) results.push({ path: v.path, size: v.recipe.size, sha256: await views.sha.get(v.recipe)! });
    const squashView = views.sha.get(views.baseSquashfs);
    if (layout.squashfsSha256 && squashView && (await squashView) !== layout.squashfsSha256) {
      throw new Error('the squashfs written and its view differ (internal error)');
    }
    writeViews(catalog, views.list, results, names, warnings, Number(mtimeSec), baseId);
    writeMeta(catalog, b, trees, names, layout);

    // catalog file, manifest, ISO
    progress.phase('writing catalog');
    const catalogPath = path.join(stageDir, CATALOG_NAME);
    catalog.finish(catalogPath);
    catalog = undefined;
    const catBytes = fs.readFileSync(catalogPath);
    const poolSize = layout.parts.reduce((s, p) => s + p.part.size, 0);
    const manifest: Manifest = {
      format: MANIFEST_FORMAT, version: MANIFEST_VERSION, name: names.name,
      catalog: { file: CATALOG_NAME, size: catBytes.length, sha256: crypto.createHash('sha256').update(catBytes).digest('hex') },
      pool: { size: poolSize, parts: layout.parts.map((p) => p.part) },
    };
    const manifestBytes = Buffer.from(JSON.stringify(manifest, null, 2) + '\n', 'utf8');
    fs.writeFileSync(path.join(stageDir, MANIFEST_NAME), manifestBytes);
    if (signingKey) fs.writeFileSync(path.join(stageDir, SIGNATURE_NAME), signManifest(manifestBytes, signingKey));
    await assembleIso(b, trees, layout, names, Number(mtimeSec), isoTmp);
    commitOutput(isoTmp, output);
    progress.end();
    return {
      output, views: results, poolBytes: poolSize, squashfsBytes: layout.squashfsSha256 ? partBytes(layout, 'squashfs') : 0,
      sidePoolBytes: partBytes(layout, 'side'), inputBytes: trees.input.kind === 'directory' ? 0 : fs.statSync(opts.input).size, warnings,
    };
  } catch (e) {
    pool?.abort();
    removeQuietly(isoTmp);
    throw e;
  } finally {
    progress.end();
    await hashPool?.close();
    catalog?.close();
    for (const src of partSources) src.close();
    removeQuietly(tmp);
  }
}

/** Fail early on inputs that do not exist and outputs that cannot be written. */
function checkInputs(opts: BuildOptions, output: string): void {
  checkOutputDir(output);
  if (isSpecialOutput(output)) throw fileError(output, 'is not a regular file (the universal ISO is written to a file)');
  if (!fs.existsSync(opts.input)) throw fileError(opts.input, 'no such file or directory');
  for (const [fam, p] of [...opts.variants, ...opts.overlays]) {
    if (!fs.existsSync(p)) throw fileError(p, `no such file or directory (given for family ${fam})`);
  }
  for (const [fam, p] of opts.overlays) {
    if (!fs.statSync(p).isDirectory()) throw fileError(p, `--overlay ${fam}= needs a directory`);
  }
}

/** 1. Ingest the base tree, then each family's variant and overlay, all into one pool. */
async function ingestTrees(b: Build): Promise<Trees> {
  const { opts, pool, progress } = b;
  const input = await ingest(opts.input, pool, progress);
  b.warnings.push(...input.warnings);
  const families = new Map<Family, Tree>();
  const overlays = new Map<Family, Tree>();
  for (const fam of FAMILIES) {
    let t: Tree | undefined;
    const variant = opts.variants.get(fam);
    if (variant) {
      const v = await ingest(variant, pool, progress);
      b.warnings.push(...v.warnings);
      t = v.tree;
    }
    const overlay = opts.overlays.get(fam);
    if (overlay) {
      progress.phase(`reading overlay ${overlay}`);
      const o = await ingestDirectory(overlay, pool, progress);
      overlays.set(fam, o);
      t = applyOverlay(t ?? input.tree, o);
    }
    if (t) families.set(fam, t.renumbered());
  }
  const base = input.tree.inWalkOrder() ? input.tree : input.tree.renumbered(); // a copy only when numbers change
  const { tree: _ingested, ...inputInfo } = input;
  const of = (fam: Family) => families.get(fam) ?? base;
  const ids = new WeakMap<Tree, number>();
  let next = 1;
  const key = (fam: Family) => {
    const t = of(fam);
    if (!ids.has(t)) ids.set(t, next++);
    return String(ids.get(t));
  };
  return { input: inputInfo, base, families, overlays, of, key };
}

/** The appliance's names, from --name or the input's file name, and its /etc/debian_version. */
async function namesOf(b: Build, trees: Trees): Promise<ApplianceNames> {
  const debFile = trees.base.lookup('etc/debian_version');
  const debVersion = debFile?.type === EntryType.File && debFile.content && debFile.content.size < 4096
    ? (await b.pool.readContent(debFile.content)).toString('utf8').trim() : undefined;
  return applianceNames(b.opts.name ?? path.basename(b.opts.input), debVersion);
}

/** 2. Preparers adjust family trees (e.g. a boot loader for the disk images) while the pool is open. */
async function runPreparers(b: Build, trees: Trees, names: ApplianceNames, options: FormatOptions, families: Family[]): Promise<void> {
  for (const prep of PREPARERS) {
    const fams = prep.families.filter((fam) => families.includes(fam));
    if (!fams.length) continue;
    b.progress.phase(`preparing: ${prep.name}`);
    for (const fam of fams) {
      await prep.prepare({
        names, options, tree: trees.of, treeKey: trees.key,
        setTree: (f, t) => trees.families.set(f, t),
        provided: (f, p) => trees.overlays.get(f)?.lookup(p) !== undefined,
        pool: b.pool, memo: b.memo, warn: b.warn,
      }, fam);
    }
  }
}

/** Seconds of the newest mtime of every tree: the fixed timestamp of generated files. */
function newestMtimeSec(trees: Trees): bigint {
  let newest = trees.base.newestMtimeNs();
  for (const t of trees.families.values()) if (t.newestMtimeNs() > newest) newest = t.newestMtimeNs();
  return newest / 1_000_000_000n;
}

/** squashfs mkfs_time: the base tree's newest mtime, as an unsigned 32-bit count of seconds. */
function mkfsTimeOf(tree: Tree): number {
  const s = tree.newestMtimeNs() / 1_000_000_000n;
  return Number(s < 0n ? 0n : s > 0xffffffffn ? 0xffffffffn : s);
}

/**
 * 3. Lay the pool out as the ISO carries it. Single copy: the base tree's
 * squashfs is written with the pool blocks as its data blocks (the first
 * copy of each block is where the pool keeps it), the blocks no squashfs
 * block holds go to the side pool after it, and the blocks are renumbered
 * in pool order (contents follow, in place). With --keep-squashfs the
 * pool file is kept whole beside the input's own squashfs.
 */
async function layoutPool(b: Build, trees: Trees): Promise<PoolLayout> {
  const { pool, opts, stageDir } = b;
  const squashOpts = { name: opts.input, zlibHeader: zlibHeader(opts.level), mkfsTime: mkfsTimeOf(trees.base) };
  const isIso = trees.input.kind === 'iso';
  const sidePath = path.join(stageDir, POOL_NAME);
  b.progress.phase('laying out the squashfs');
  const image = layoutSquashfs(trees.base, pool.blocks, squashOpts);
  for (const w of image.warnings) b.warn(w);
  const kept = (img: SquashfsImage, blocks: BlockInfo[]): PoolLayout['squashfs'] =>
    ({ recipe: squashfsRecipe(img, blocks), inodes: img.inodes, copies: img.copies, zlibHeader: img.zlibHeader });
  if (opts.keepSquashfs) {
    fs.renameSync(pool.path, sidePath);
    const size = fs.statSync(sidePath).size;
    return {
      blocks: pool.blocks, squashfs: kept(image, pool.blocks), replaced: [],
      parts: [{ file: sidePath, part: { path: `${UNISO_DIR}/${POOL_NAME}`, size, at: 0, role: 'side' } }],
    };
  }
  // new ids in pool order: the squashfs's pieces in image order (its own bytes, the superblock and
  // tables, become raw blocks too, so its view reads them from the ISO), then the side pool's blocks
  const old = pool.blocks;
  const newId = new Uint32Array(old.length + 1);
  const order: (number | { at: number; data: Buffer })[] = [];
  const pieces: SquashfsImage['pieces'] = [];
  let at = 0;
  for (const p of image.pieces) {
    if (p.kind === 'bytes') {
      for (let o = 0; o < p.data.length; o += POOL_BLOCK) {
        order.push({ at: at + o, data: p.data.subarray(o, Math.min(p.data.length, o + POOL_BLOCK)) });
        pieces.push({ kind: 'block', id: order.length });
      }
      at += p.data.length;
    } else if (p.kind === 'block') {
      if (newId[p.id] === 0) {
        order.push(p.id);
        newId[p.id] = order.length;
      }
      pieces.push({ kind: 'block', id: newId[p.id] });
      at += framedSize(old[p.id - 1]);
    } else {
      pieces.push(p);
      at += p.n;
    }
  }
  const inSquashfs = order.length;
  for (let id = 1; id <= old.length; id++) {
    if (newId[id] === 0) {
      order.push(id);
      newId[id] = order.length;
    }
  }
  b.progress.phase('writing the squashfs', image.size);
  const squashPath = isIso ? path.join(b.tmp, 'squashfs', path.basename(trees.input.rootSquashfs!)) : path.join(stageDir, ROOTFS_SQUASHFS_NAME);
  fs.mkdirSync(path.dirname(squashPath), { recursive: true });
  const poolFd = fs.openSync(pool.path, 'r');
  const stored = (id: number): Buffer => {
    const info = old[id - 1];
    const buf = Buffer.allocUnsafe(info.csize);
    if (fs.readSync(poolFd, buf, 0, info.csize, info.offset) !== info.csize) throw new Error(`pool block ${id}: short read`);
    return buf;
  };
  const blocks: BlockInfo[] = [];
  let squashfsSha256: string;
  const sideFd = fs.openSync(sidePath, 'w');
  let sideBytes = 0;
  try {
    const sqFd = fs.openSync(squashPath, 'w');
    try {
      squashfsSha256 = writeImage(image, sqFd, old, stored);
    } finally {
      fs.closeSync(sqFd);
    }
    b.progress.add(image.size);
    for (let k = 0; k < order.length; k++) {
      const o = order[k];
      if (typeof o !== 'number') {
        blocks.push({ offset: o.at, csize: o.data.length, usize: o.data.length, flags: FLAG_RAW, sxh: storedCheck(o.data), crc32: crc32(o.data), adler32: adler32(o.data) });
        continue;
      }
      const info = old[o - 1]; // the pool's record, moved to its place in the new order
      if (k < inSquashfs) {
        info.offset = image.placed[o];
      } else {
        const data = stored(o);
        for (let w = 0; w < data.length;) w += fs.writeSync(sideFd, data, w, data.length - w, sideBytes + w);
        info.offset = image.size + sideBytes;
        sideBytes += data.length;
      }
      blocks.push(info);
    }
  } finally {
    fs.closeSync(sideFd);
    fs.closeSync(poolFd);
  }
  fs.rmSync(pool.path);
  for (const c of pool.contents) for (let k = 0; k < c.blocks.length; k++) c.blocks[k] = newId[c.blocks[k]];
  old.length = 0; // the records now live in `blocks` only
  const squashIsoPath = isIso ? trees.input.rootSquashfs! : `${UNISO_DIR}/${ROOTFS_SQUASHFS_NAME}`;
  return {
    blocks, squashfs: kept({ ...image, pieces }, blocks), squashfsSha256,
    replaced: isIso ? [{ isoPath: squashIsoPath, file: squashPath, oldSize: trees.input.rootSquashfsSize ?? 0 }] : [],
    parts: [
      { file: squashPath, part: { path: squashIsoPath, size: image.size, at: 0, role: 'squashfs' } },
      { file: sidePath, part: { path: `${UNISO_DIR}/${POOL_NAME}`, size: sideBytes, at: image.size, role: 'side' } },
    ],
  };
}

/** Bytes of the pool's files in a role. */
function partBytes(layout: PoolLayout, role: PoolPart['role']): number {
  return layout.parts.filter((p) => p.part.role === role).reduce((s, p) => s + p.part.size, 0);
}

/** 4. The catalog's blocks, contents and trees; returns the base tree's id. */
function writeTrees(catalog: CatalogWriter, layout: PoolLayout, pool: PoolWriter, trees: Trees): number {
  catalog.writeBlocks(layout.blocks);
  catalog.writeContents(pool.contents);
  const ids = new Map<Tree, number>();
  const baseId = catalog.writeTree('base', trees.base);
  ids.set(trees.base, baseId);
  for (const fam of FAMILIES) {
    const t = trees.of(fam);
    if (!ids.has(t)) ids.set(t, catalog.writeTree(fam, t, false)); // no view shows a family's tree
    catalog.setFamily(fam, ids.get(t)!);
  }
  return baseId;
}

/** 5. Every selected format's views; each one's checksum starts (on worker threads) as soon as its recipe exists. */
async function compileViews(b: Build, trees: Trees, layout: PoolLayout, names: ApplianceNames, options: FormatOptions,
  selected: typeof FORMATS, mtimeSec: bigint, hashPool: HashPool, inflated: (id: number) => Promise<Buffer>,
): Promise<{ list: ViewOut[]; sha: Map<Recipe, Promise<string>>; baseSquashfs: Recipe }> {
  // formats asking for a digest (the OVF manifest, the docker layer) and the views share each one
  const sha = new Map<Recipe, Promise<string>>();
  // a format waits for the digests it asks for: those go before the views' queued ones
  const sha256Of = (r: Recipe, urgent = false): Promise<string> => {
    let p = sha.get(r);
    if (!p) {
      sha.set(r, (p = hashPool.digest(r, 'sha256', urgent)));
      p.catch(() => { /* reported where it is awaited */ });
    }
    return p;
  };
  const baseSquashfs = layout.squashfs.recipe;
  const squashfsOf = (fam: Family): Recipe => {
    const t = trees.of(fam);
    if (t === trees.base) return baseSquashfs;
    return b.memo(`squashfs:${trees.key(fam)}`, () => {
      const image = layoutSquashfs(t, layout.blocks, { name: `${b.opts.input} (${fam} tree)`, zlibHeader: layout.squashfs.zlibHeader, mkfsTime: mkfsTimeOf(t) });
      for (const w of image.warnings) b.warn(`${fam} tree: ${w}`);
      return squashfsRecipe(image, layout.blocks);
    });
  };
  // What formats memoize (a disk image, a shared tarball) is let go once no format left to
  // build has the family of one that asked for it (the disk images before the container formats).
  const usedBy = new Map<string, Set<Family>>();
  let building: Family | undefined;
  const memo = <T>(key: string, make: () => T): T => {
    if (building) {
      const families = usedBy.get(key) ?? new Set<Family>();
      usedBy.set(key, families.add(building));
    }
    return b.memo(key, make);
  };
  const ctx: FormatContext = {
    names, options, tree: trees.of, treeKey: trees.key, blocks: layout.blocks, gzip: new GzipCompiler(layout.blocks, inflated), mtimeSec,
    sha256: (r) => sha256Of(r, true), hash: (r, alg) => hashPool.digest(r, alg, true), squashfs: squashfsOf, memo, warn: b.warn,
  };
  b.progress.phase('building views');
  const list: ViewOut[] = [];
  for (const [i, f] of selected.entries()) {
    building = f.family;
    for (const v of await f.build(ctx)) {
      list.push(v);
      void sha256Of(v.recipe);
    }
    const later = new Set(selected.slice(i + 1).map((g) => g.family));
    for (const [key, families] of usedBy) {
      if ([...families].some((fam) => later.has(fam))) continue;
      b.forget(key);
      usedBy.delete(key);
    }
  }
  if (layout.squashfsSha256) void sha256Of(baseSquashfs);
  return { list, sha, baseSquashfs };
}

/** A view made of one literal: its recipe and SHA-256. */
function literalView(text: string): { recipe: Recipe; sha: string } {
  const b = Buffer.from(text, 'utf8');
  const rb = new RecipeBuilder();
  rb.literal(b);
  return { recipe: rb.build(), sha: crypto.createHash('sha256').update(b).digest('hex') };
}

/** 6. The views, each with its FILE.sha256, README.txt and rootfs/ into the catalog. */
function writeViews(catalog: CatalogWriter, views: ViewOut[], results: BuildResult['views'], names: ApplianceNames,
  warnings: string[], mtime: number, baseId: number): void {
  for (const [i, v] of views.entries()) {
    const sha = results[i].sha256;
    catalog.addView({ path: v.path, kind: 'file', recipe: catalog.addRecipe(v.recipe), size: v.recipe.size,
      mtimeSec: mtime, sha256: sha, format: v.format, description: v.description });
    const side = literalView(`${sha}  ${path.basename(v.path)}\n`);
    catalog.addView({ path: `${v.path}.sha256`, kind: 'file', recipe: catalog.addRecipe(side.recipe), size: side.recipe.size,
      mtimeSec: mtime, sha256: side.sha, format: 'sha256', description: `SHA-256 of ${path.basename(v.path)}` });
  }
  const readme = literalView(readmeText(names, views.map((v) => ({ path: v.path, size: v.recipe.size, description: v.description })), warnings));
  catalog.addView({ path: 'README.txt', kind: 'file', recipe: catalog.addRecipe(readme.recipe), size: readme.recipe.size,
    mtimeSec: mtime, sha256: readme.sha, format: 'readme', description: 'what is here and how to use it' });
  catalog.addView({ path: 'rootfs', kind: 'tree', tree: baseId, size: 0, mtimeSec: mtime, format: 'rootfs',
    description: 'the appliance file system, browsable' });
}

/** The live squashfs's tables and their SHA-256s (src/image/squashfs-tables.ts), read back from its file. */
function squashfsTablesOf(file: string, size: number): SquashfsTable[] | undefined {
  const fd = fs.openSync(file, 'r');
  try {
    const bytes = (start: number, end: number) => {
      const b = Buffer.alloc(end - start);
      if (fs.readSync(fd, b, 0, b.length, start) !== b.length) throw new Error(`${file}: short read`);
      return b;
    };
    const regions = tableRegions(bytes(0, SUPERBLOCK_BYTES), size);
    return regions && hashTables(regions, bytes);
  } finally {
    fs.closeSync(fd);
  }
}

/** 7. What `uniso info` tells about the build. */
function writeMeta(catalog: CatalogWriter, b: Build, trees: Trees, names: ApplianceNames, layout: PoolLayout): void {
  const { opts, pool } = b;
  const squash = layout.parts.find((p) => p.part.role === 'squashfs');
  catalog.setMeta('name', names.name);
  catalog.setMeta('template', names.template);
  catalog.setMeta('input_kind', trees.input.kind);
  catalog.setMeta('input_name', path.basename(opts.input));
  if (trees.input.rootSquashfs) catalog.setMeta('root_squashfs', trees.input.rootSquashfs);
  if (squash && layout.squashfsSha256) {
    catalog.setMeta('squashfs_path', squash.part.path);
    catalog.setMeta('squashfs_bytes', String(squash.part.size));
    catalog.setMeta('squashfs_sha256', layout.squashfsSha256);
    catalog.setMeta('squashfs_inodes', String(layout.squashfs.inodes));
    catalog.setMeta('squashfs_block_copies', String(layout.squashfs.copies));
    const tables = squashfsTablesOf(squash.file, squash.part.size);
    if (tables) catalog.setMeta('squashfs_tables', JSON.stringify(tables));
  } else if (opts.keepSquashfs && trees.input.rootSquashfs) {
    catalog.setMeta('squashfs_kept', trees.input.rootSquashfs);
  }
  catalog.setMeta('side_pool_bytes', String(partBytes(layout, 'side')));
  catalog.setMeta('deflate_level', String(opts.level));
  catalog.setMeta('pool_bytes_in', String(pool.stats.bytesIn));
  catalog.setMeta('pool_blocks_offered', String(pool.stats.blocksIn));
  catalog.setMeta('pool_zero_blocks', String(pool.stats.zeroBlocks));
  catalog.setMeta('warnings', JSON.stringify(b.warnings));
  catalog.setMeta('families', JSON.stringify(Object.fromEntries(FAMILIES.map((f) => [f,
    opts.variants.has(f) || opts.overlays.has(f) ? [opts.variants.has(f) ? 'variant' : '', opts.overlays.has(f) ? 'overlay' : ''].filter(Boolean).join('+') : 'base']))));
}

/** 8. The ISO: the input ISO with its squashfs (and the files describing it) replaced, plus /uniso/. */
async function assembleIso(b: Build, trees: Trees, layout: PoolLayout, names: ApplianceNames, epoch: number, isoTmp: string): Promise<void> {
  const replace = layout.replaced.map((r) => ({ isoPath: r.isoPath, file: r.file }));
  if (layout.replaced.length) {
    const src = FileSource.open(b.opts.input);
    try {
      const iso = await IsoImage.open(src, b.opts.input);
      for (const d of await rewriteDescriptions(iso, layout.replaced)) {
        const file = path.join(b.tmp, 'descriptions', d.isoPath);
        fs.mkdirSync(path.dirname(file), { recursive: true });
        fs.writeFileSync(file, d.data);
        replace.push({ isoPath: d.isoPath, file });
      }
    } finally {
      src.close();
    }
  }
  for (const r of replace) fs.utimesSync(r.file, epoch, epoch);
  for (const f of fs.readdirSync(b.stageDir)) fs.utimesSync(path.join(b.stageDir, f), epoch, epoch);
  fs.utimesSync(b.stageDir, epoch, epoch);
  b.progress.phase('writing ISO');
  await writeUniversalIso({
    inputIso: trees.input.kind === 'iso' ? b.opts.input : undefined, replace,
    addDir: b.stageDir, output: isoTmp, volumeId: names.name.toUpperCase().replace(/[^A-Z0-9_]/g, '_'), epochSec: epoch,
  });
}
