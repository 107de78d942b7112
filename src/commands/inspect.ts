// `uniso ls` and `uniso info`: what an image holds, without mounting it.

import { openImage, OpenOptions } from '../image/open';
import { fmtBytes } from '../util/progress';
import { Recipe, SegKind } from '../recipe/recipe';
import { BlockTable } from '../pool/reader';

export async function ls(image: string, opts: { json?: boolean; long?: boolean }, open: OpenOptions = {}): Promise<void> {
  const img = await openImage(image, open);
  try {
    const views = img.catalog.views();
    if (opts.json) {
      process.stdout.write(JSON.stringify(views.map((v) => ({
        path: v.kind === 'tree' ? `${v.path}/` : v.path, size: v.size, sha256: v.sha256, format: v.format, description: v.description,
      })), null, 2) + '\n');
      return;
    }
    for (const v of views) {
      const p = v.kind === 'tree' ? `${v.path}/` : v.path;
      if (opts.long) process.stdout.write(`${String(v.size).padStart(14)}  ${p}\n`);
      else process.stdout.write(`${p}\n`);
    }
  } finally {
    img.close();
  }
}

/** Stored bytes of the distinct pool blocks `r` reads (raw and deflate segments, through its included recipes too). */
function poolBytesOf(r: Recipe, t: BlockTable): number {
  const seen = new Set<number>();
  const seenRecipes = new Set<Recipe>();
  let bytes = 0;
  const walk = (x: Recipe) => {
    if (seenRecipes.has(x)) return;
    seenRecipes.add(x);
    for (let i = 0; i < x.count; i++) {
      const k = x.kinds[i] as SegKind;
      if ((k === SegKind.Raw || k === SegKind.Deflate) && !seen.has(x.args[i])) {
        seen.add(x.args[i]);
        bytes += t.csize[x.args[i] - 1];
      }
    }
    for (const sub of x.subs) walk(sub);
  };
  walk(r);
  return bytes;
}

export async function info(image: string, opts: { json?: boolean }, open: OpenOptions = {}): Promise<void> {
  const img = await openImage(image, open);
  try {
    const c = img.catalog;
    const meta = c.allMeta();
    const t = img.blocks.table;
    let stored = 0;
    let raw = 0;
    for (let i = 0; i < t.count; i++) {
      stored += t.csize[i];
      raw += t.usize[i];
    }
    const views = c.views();
    const warnings = JSON.parse(meta.warnings ?? '[]') as string[];
    const parts = img.manifest.pool.parts;
    const squash = parts.find((p) => p.role === 'squashfs');
    const side = parts.find((p) => p.role === 'side');
    const data = {
      name: meta.name,
      template: meta.template,
      input: { name: meta.input_name, kind: meta.input_kind, rootSquashfs: meta.root_squashfs ?? null },
      schemaVersion: Number(meta.schema_version),
      // which key signed it is known only by checking it against one (--trust)
      signature: { signed: img.signature.signed, trustedKey: img.signature.trustedKey ?? null },
      pool: {
        bytes: img.manifest.pool.size, blocks: t.count, uncompressedBytes: raw, storedBytes: stored,
        contentBytes: Number(meta.pool_bytes_in ?? 0), zeroBlocks: Number(meta.pool_zero_blocks ?? 0),
        blocksOffered: Number(meta.pool_blocks_offered ?? 0),
        squashfs: squash ? {
          path: `/${squash.path}`, bytes: squash.size, inodes: Number(meta.squashfs_inodes ?? 0),
          blocksWrittenTwice: Number(meta.squashfs_block_copies ?? 0),
        } : null,
        keptSquashfs: meta.squashfs_kept ? `/${meta.squashfs_kept}` : null,
        sidePool: side ? { path: `/${side.path}`, bytes: side.size } : null,
      },
      trees: c.trees(),
      families: JSON.parse(meta.families ?? '{}') as Record<string, string>,
      // poolBytes: stored bytes of the distinct pool blocks the view reads (what copying it costs from a mirror)
      views: views.filter((v) => v.kind === 'file' && v.format !== 'sha256').map((v) => ({
        path: v.path, size: v.size, ...(opts.json && v.recipe !== null ? { poolBytes: poolBytesOf(c.recipe(v.recipe), t) } : {}),
      })),
      viewBytes: views.filter((v) => v.kind === 'file' && v.format !== 'sha256').reduce((s, v) => s + v.size, 0),
      warnings,
    };
    if (opts.json) {
      process.stdout.write(JSON.stringify(data, null, 2) + '\n');
      return;
    }
    const o = process.stdout;
    o.write(`name:        ${data.name}\n`);
    o.write(`input:       ${data.input.name} (${data.input.kind}${data.input.rootSquashfs ? `, ${data.input.rootSquashfs}` : ''})\n`);
    const sig = data.signature;
    o.write(`signature:   ${sig.trustedKey ? `signed, signature good (key ${sig.trustedKey})`
      : sig.signed ? 'signed (not checked: give --trust KEY.pub to check it)' : 'not signed'}\n`);
    o.write(`catalog:     schema ${data.schemaVersion}, ${fmtBytes(img.manifest.catalog.size)}\n`);
    o.write(`pool:        ${fmtBytes(data.pool.bytes)} in ${t.count} blocks (${fmtBytes(raw)} unique uncompressed, ` +
      `${fmtBytes(data.pool.contentBytes)} of file content, ${data.pool.zeroBlocks} zero blocks not stored)\n`);
    const sq = data.pool.squashfs;
    if (sq) {
      o.write(`squashfs:    ${sq.path}, ${fmtBytes(sq.bytes)}, ${sq.inodes} inodes: the live root file system, its data blocks ` +
        `are the pool's${sq.blocksWrittenTwice ? ` (${sq.blocksWrittenTwice} written twice, for files that share them)` : ''}\n`);
    }
    if (data.pool.keptSquashfs) o.write(`squashfs:    ${data.pool.keptSquashfs}, the input's, kept as it was (--keep-squashfs)\n`);
    if (data.pool.sidePool) o.write(`side pool:   ${data.pool.sidePool.path}, ${fmtBytes(data.pool.sidePool.bytes)}: blocks only other trees have\n`);
    for (const tr of data.trees) o.write(`tree:        ${tr.name}: ${tr.entries} entries, ${fmtBytes(tr.bytes)}\n`);
    o.write(`families:    ${Object.entries(data.families).map(([f, s]) => `${f}=${s}`).join(' ')}\n`);
    o.write(`views:       ${data.views.length} files, ${fmtBytes(data.viewBytes)} in all, served from ${fmtBytes(data.pool.bytes)}\n`);
    for (const v of data.views) o.write(`  ${fmtBytes(v.size).padStart(9)}  ${v.path}\n`);
    for (const w of warnings) o.write(`warning:     ${w}\n`);
  } finally {
    img.close();
  }
}
