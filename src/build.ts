// `uniso build`: ingest the appliance (and any per-family variants or
// overlays) into one pool, compile every format's views into recipes,
// checksum them, write the catalog, and assemble the universal ISO. All
// intermediate files live in a temp directory beside the output, which is
// renamed into place only when everything succeeded.

import * as fs from 'node:fs';
import * as path from 'node:path';
import * as crypto from 'node:crypto';
import * as os from 'node:os';
import { ingest, Ingested } from './ingest';
import { PoolWriter } from './pool/writer';
import { blockTableFrom } from './pool/reader';
import { CatalogWriter } from './catalog/writer';
import { Recipe, RecipeBuilder } from './recipe/recipe';
import { applyOverlay, EntryType, Tree, BLOCK_SIZE } from './tree';
import { FORMATS, PREPARERS } from './formats';
import { FAMILIES, Family, FormatContext, FormatOptions, ViewOut } from './formats/context';
import { GzipCompiler } from './formats/gzip';
import { applianceNames, ApplianceNames } from './formats/naming';
import { readmeText } from './formats/readme';
import { ingestDirectory } from './ingest/dir';
import { writeUniversalIso } from './iso/writer';
import { CATALOG_NAME, MANIFEST_FORMAT, MANIFEST_NAME, MANIFEST_VERSION, Manifest, POOL_NAME } from './image/layout';
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
  /** formats to build (names as in FORMATS); all when undefined */
  formats?: string[];
}

export interface BuildResult {
  output: string;
  views: { path: string; size: number; sha256: string }[];
  poolBytes: number;
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

export async function build(opts: BuildOptions): Promise<BuildResult> {
  const output = path.resolve(opts.output);
  checkOutputDir(output);
  if (isSpecialOutput(output)) throw fileError(output, 'is not a regular file (the universal ISO is written to a file)');
  if (!fs.existsSync(opts.input)) throw fileError(opts.input, 'no such file or directory');
  for (const [fam, p] of [...opts.variants, ...opts.overlays]) {
    if (!fs.existsSync(p)) throw fileError(p, `no such file or directory (given for family ${fam})`);
  }
  for (const [fam, p] of opts.overlays) {
    if (!fs.statSync(p).isDirectory()) throw fileError(p, `--overlay ${fam}= needs a directory`);
  }
  const progress = new Progress(!opts.quiet);
  const tmp = fs.mkdtempSync(path.join(path.dirname(output), `.uniso-build-`));
  const isoTmp = tempNameFor(output);
  const warnings: string[] = [];
  let pool: PoolWriter | undefined;
  let catalog: CatalogWriter | undefined;
  let hashPool: HashPool | undefined;
  try {
    const stageDir = path.join(tmp, 'uniso');
    fs.mkdirSync(stageDir);
    const poolPath = path.join(stageDir, POOL_NAME);
    pool = new PoolWriter(poolPath, opts.level);

    // 1. ingest: base tree, then variants and overlays, all into one pool
    const base: Ingested = await ingest(opts.input, pool, progress);
    warnings.push(...base.warnings);
    const familyTrees = new Map<Family, Tree>();
    const overlayTrees = new Map<Family, Tree>();
    for (const fam of FAMILIES) {
      let t: Tree | undefined;
      const variant = opts.variants.get(fam);
      if (variant) {
        const v = await ingest(variant, pool, progress);
        warnings.push(...v.warnings);
        t = v.tree;
      }
      const overlay = opts.overlays.get(fam);
      if (overlay) {
        progress.phase(`reading overlay ${overlay}`);
        const o = await ingestDirectory(overlay, pool, progress);
        overlayTrees.set(fam, o);
        t = applyOverlay(t ?? base.tree, o);
      }
      if (t) familyTrees.set(fam, t.renumbered());
    }
    const baseTree = base.tree.renumbered();
    const treeOf = (fam: Family) => familyTrees.get(fam) ?? baseTree;
    const debFile = baseTree.lookup('etc/debian_version');
    const debVersion = debFile?.type === EntryType.File && debFile.content && debFile.content.size < 4096
      ? (await pool.readContent(debFile.content)).toString('utf8').trim() : undefined;
    const names: ApplianceNames = applianceNames(opts.name ?? path.basename(opts.input), debVersion);
    const memo = new Map<string, unknown>();
    const memoize = <T>(key: string, make: () => T): T => {
      if (!memo.has(key)) memo.set(key, make());
      return memo.get(key) as T;
    };
    const warn = (m: string) => { if (!warnings.includes(m)) warnings.push(m); };
    const formatOptions: FormatOptions = { diskSize: opts.diskSize, memoryMb: opts.memoryMb, ovfSha1: opts.ovfSha1 };

    // 2. preparers adjust family trees (e.g. a boot loader for the disk images) while the pool is open
    const objectIds = new WeakMap<Tree, number>();
    let nextObjectId = 1;
    const objectId = (t: Tree) => {
      if (!objectIds.has(t)) objectIds.set(t, nextObjectId++);
      return objectIds.get(t)!;
    };
    const selected = FORMATS.filter((f) => !opts.formats || opts.formats.includes(f.name));
    for (const prep of PREPARERS) {
      const fams = prep.families.filter((fam) => selected.some((f) => f.family === fam));
      if (!fams.length) continue;
      progress.phase(`preparing: ${prep.name}`);
      for (const fam of fams) {
        await prep.prepare({
          names, options: formatOptions, tree: treeOf, treeKey: (f) => `tree-object-${objectId(treeOf(f))}`,
          setTree: (f, t) => familyTrees.set(f, t),
          provided: (f, p) => overlayTrees.get(f)?.lookup(p) !== undefined,
          pool, memo: memoize, warn,
        }, fam);
      }
    }
    progress.phase('compressing');
    const poolBytes = await pool.finish();

    // 2. catalog: blocks, contents, trees
    catalog = new CatalogWriter(path.join(tmp, 'catalog.build.sqlite'));
    catalog.writeBlocks(pool.blocks, pool.hashes);
    catalog.writeContents(pool.contents);
    const treeIds = new Map<Tree, number>();
    const baseId = catalog.writeTree('base', baseTree);
    treeIds.set(baseTree, baseId);
    for (const fam of FAMILIES) {
      const t = treeOf(fam);
      if (!treeIds.has(t)) treeIds.set(t, catalog.writeTree(fam, t));
      catalog.setFamily(fam, treeIds.get(t)!);
    }

    const table = blockTableFrom(pool.blocks, poolBytes);
    let hashedBytes = 0;
    let hashedNow = false;
    hashPool = new HashPool(poolPath, table, Math.max(1, Math.min(4, os.availableParallelism())), (n) => {
      hashedBytes += n;
      if (hashedNow) progress.add(n);
    });
    let newest = baseTree.newestMtimeNs();
    for (const t of familyTrees.values()) if (t.newestMtimeNs() > newest) newest = t.newestMtimeNs();
    const mtimeSec = newest / 1_000_000_000n;
    const catalogW = catalog;
    // each distinct recipe is hashed once, on the worker threads, as soon as it exists:
    // formats asking for a digest (the OVF manifest, the docker layer) and the views share it
    const shaByRecipe = new Map<Recipe, Promise<string>>();
    const sha256Of = (r: Recipe): Promise<string> => {
      let p = shaByRecipe.get(r);
      if (!p) shaByRecipe.set(r, (p = hashPool!.digest(r)));
      return p;
    };
    const ctx: FormatContext = {
      names,
      options: formatOptions,
      tree: treeOf,
      treeKey: (fam) => String(treeIds.get(treeOf(fam))),
      blocks: pool.blocks,
      gzip: new GzipCompiler(pool.blocks),
      mtimeSec,
      sha256: sha256Of,
      hash: (r: Recipe, alg: string) => hashPool!.digest(r, alg),
      memo: memoize,
      warn,
    };

    // 3. views; each one's checksum starts as soon as its recipe exists
    progress.phase('building views');
    const views: ViewOut[] = [];
    for (const f of selected) {
      for (const v of await f.build(ctx)) {
        views.push(v);
        void sha256Of(v.recipe);
      }
    }

    // 4. checksums
    progress.phase('checksumming views', [...shaByRecipe.keys()].reduce((s, r) => s + r.size, 0));
    progress.add(hashedBytes);
    hashedNow = true;
    const results: BuildResult['views'] = [];
    for (const v of views) results.push({ path: v.path, size: v.recipe.size, sha256: await shaByRecipe.get(v.recipe)! });
    const mtime = Number(mtimeSec);
    const literalView = (text: string) => {
      const b = Buffer.from(text, 'utf8');
      const rb = new RecipeBuilder();
      rb.literal(b);
      return { recipe: rb.build(), sha: crypto.createHash('sha256').update(b).digest('hex') };
    };
    for (const [i, v] of views.entries()) {
      const sha = results[i].sha256;
      catalogW.addView({ path: v.path, kind: 'file', recipe: catalogW.addRecipe(v.recipe), size: v.recipe.size,
        mtimeSec: mtime, sha256: sha, format: v.format, description: v.description });
      const side = literalView(`${sha}  ${path.basename(v.path)}\n`);
      catalogW.addView({ path: `${v.path}.sha256`, kind: 'file', recipe: catalogW.addRecipe(side.recipe), size: side.recipe.size,
        mtimeSec: mtime, sha256: side.sha, format: 'sha256', description: `SHA-256 of ${path.basename(v.path)}` });
    }
    const readme = literalView(readmeText(names, views.map((v) => ({ path: v.path, size: v.recipe.size, description: v.description })), warnings));
    catalogW.addView({ path: 'README.txt', kind: 'file', recipe: catalogW.addRecipe(readme.recipe), size: readme.recipe.size,
      mtimeSec: mtime, sha256: readme.sha, format: 'readme', description: 'what is here and how to use it' });
    catalogW.addView({ path: 'rootfs', kind: 'tree', tree: baseId, size: 0, mtimeSec: mtime, format: 'rootfs',
      description: 'the appliance file system, browsable' });

    const inputBytes = fs.statSync(opts.input).isFile() ? fs.statSync(opts.input).size : 0;
    catalogW.setMeta('name', names.name);
    catalogW.setMeta('template', names.template);
    catalogW.setMeta('input_kind', base.kind);
    catalogW.setMeta('input_name', path.basename(opts.input));
    if (base.rootSquashfs) catalogW.setMeta('root_squashfs', base.rootSquashfs);
    catalogW.setMeta('deflate_level', String(opts.level));
    catalogW.setMeta('pool_bytes_in', String(pool.stats.bytesIn));
    catalogW.setMeta('pool_blocks_offered', String(pool.stats.blocksIn));
    catalogW.setMeta('pool_zero_blocks', String(pool.stats.zeroBlocks));
    catalogW.setMeta('warnings', JSON.stringify(warnings));
    catalogW.setMeta('families', JSON.stringify(Object.fromEntries(FAMILIES.map((f) => [f,
      opts.variants.has(f) || opts.overlays.has(f) ? [opts.variants.has(f) ? 'variant' : '', opts.overlays.has(f) ? 'overlay' : ''].filter(Boolean).join('+') : 'base']))));

    // 5. catalog file, manifest, ISO
    progress.phase('writing catalog');
    const catalogPath = path.join(stageDir, CATALOG_NAME);
    catalogW.finish(catalogPath);
    catalog = undefined;
    const catBytes = fs.readFileSync(catalogPath);
    const manifest: Manifest = {
      format: MANIFEST_FORMAT, version: MANIFEST_VERSION, name: names.name,
      catalog: { file: CATALOG_NAME, size: catBytes.length, sha256: crypto.createHash('sha256').update(catBytes).digest('hex') },
      pool: { file: POOL_NAME, size: poolBytes },
    };
    fs.writeFileSync(path.join(stageDir, MANIFEST_NAME), JSON.stringify(manifest, null, 2) + '\n');
    const epoch = Number(mtimeSec);
    for (const f of fs.readdirSync(stageDir)) fs.utimesSync(path.join(stageDir, f), epoch, epoch);
    fs.utimesSync(stageDir, epoch, epoch);
    progress.phase('writing ISO');
    await writeUniversalIso({
      inputIso: base.kind === 'iso' ? opts.input : undefined,
      addDir: stageDir, output: isoTmp, volumeId: names.name.toUpperCase().replace(/[^A-Z0-9_]/g, '_'), epochSec: epoch,
    });
    commitOutput(isoTmp, output);
    progress.end();
    return { output, views: results, poolBytes, inputBytes, warnings };
  } catch (e) {
    pool?.abort();
    removeQuietly(isoTmp);
    throw e;
  } finally {
    progress.end();
    await hashPool?.close();
    catalog?.close();
    removeQuietly(tmp);
  }
}
