// `docker load` archive, in the layout Docker 25+ `docker save` writes: an
// OCI image layout (oci-layout, index.json, blobs/sha256/...) plus the
// manifest.json docker load reads. One uncompressed layer: the docker
// variant tree. The config's diff_id is the sha256 of that layer tar, and
// every blob is named by the sha256 of its bytes.

import * as crypto from 'node:crypto';
import { Format, FormatContext } from './context';
import { PieceList, piecesCrc, compilePlain } from './pieces';
import { endOfArchive, tarMemberBytes, tarMemberDir, tarMemberHeader, tarOfTree, tarPad } from './tar';
import { EntryType } from '../tree';

// ---- media types -----------------------------------------------------------
const MT_INDEX = 'application/vnd.oci.image.index.v1+json';
const MT_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const MT_CONFIG = 'application/vnd.oci.image.config.v1+json';
const MT_LAYER = 'application/vnd.oci.image.layer.v1.tar';

function sha256(b: Buffer): string {
  return crypto.createHash('sha256').update(b).digest('hex');
}

/** Repository and tag: turnkeylinux/core:18.0 for TurnKey names. */
export function dockerRef(ctx: FormatContext): { repo: string; tag: string } {
  const n = ctx.names;
  if (n.app && n.version) return { repo: `turnkeylinux/${n.app.toLowerCase()}`, tag: n.version };
  const repo = n.name.toLowerCase().replace(/[^a-z0-9._-]/g, '-').replace(/^[^a-z0-9]+/, '') || 'appliance';
  return { repo, tag: 'latest' };
}

function defaultCmd(ctx: FormatContext): string[] {
  const t = ctx.tree('docker');
  for (const p of ['sbin/init', 'lib/systemd/systemd', 'bin/bash', 'bin/sh']) {
    const i = t.lookup(p);
    if (i && (i.type === EntryType.File || i.type === EntryType.Symlink)) return [`/${p}`];
  }
  return ['/bin/sh'];
}

export const docker: Format = {
  name: 'docker',
  family: 'docker',
  async build(ctx) {
    const { pieces: layerPieces, skipped } = tarOfTree(ctx.tree('docker'), { prefix: '', includeRoot: false });
    if (skipped.length) ctx.warn(`docker: ${skipped.length} socket(s) cannot be stored in tar and were left out`);
    const lp = layerPieces.done();
    const layer = compilePlain(lp);
    const layerCrc = piecesCrc(lp, ctx.blocks).crc;
    const layerHex = await ctx.sha256(layer);
    const created = new Date(Number(ctx.mtimeSec) * 1000).toISOString().replace('.000Z', 'Z');
    const { repo, tag } = dockerRef(ctx);
    const arch = ctx.names.arch === 'armhf' ? 'arm' : ctx.names.arch;
    const config = Buffer.from(JSON.stringify({
      architecture: arch,
      config: {
        Env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'],
        Cmd: defaultCmd(ctx),
        Labels: { 'org.opencontainers.image.title': ctx.names.name, ...(ctx.names.version ? { 'org.opencontainers.image.version': ctx.names.version } : {}) },
      },
      created,
      history: [{ created, created_by: 'uniso build' }],
      os: 'linux',
      rootfs: { type: 'layers', diff_ids: [`sha256:${layerHex}`] },
    }));
    const configHex = sha256(config);
    const manifest = Buffer.from(JSON.stringify({
      schemaVersion: 2,
      mediaType: MT_MANIFEST,
      config: { mediaType: MT_CONFIG, digest: `sha256:${configHex}`, size: config.length },
      layers: [{ mediaType: MT_LAYER, digest: `sha256:${layerHex}`, size: layer.size }],
    }));
    const manifestHex = sha256(manifest);
    const index = Buffer.from(JSON.stringify({
      schemaVersion: 2,
      mediaType: MT_INDEX,
      manifests: [{
        mediaType: MT_MANIFEST, digest: `sha256:${manifestHex}`, size: manifest.length,
        annotations: { 'io.containerd.image.name': `docker.io/${repo}:${tag}`, 'org.opencontainers.image.ref.name': tag },
      }],
    }));
    const dockerManifest = Buffer.from(JSON.stringify([{
      Config: `blobs/sha256/${configHex}`,
      RepoTags: [`${repo}:${tag}`],
      Layers: [`blobs/sha256/${layerHex}`],
    }]));

    const out = new PieceList();
    const t = ctx.mtimeSec;
    tarMemberDir(out, 'blobs', t);
    tarMemberDir(out, 'blobs/sha256', t);
    const blobs: [string, Buffer | null][] = [[configHex, config], [layerHex, null], [manifestHex, manifest]];
    blobs.sort((a, b) => (a[0] < b[0] ? -1 : 1));
    for (const [hex, data] of blobs) {
      if (data) tarMemberBytes(out, `blobs/sha256/${hex}`, data, t);
      else {
        tarMemberHeader(out, `blobs/sha256/${hex}`, layer.size, t);
        out.recipe(layer, layerCrc);
        tarPad(out, layer.size);
      }
    }
    tarMemberBytes(out, 'index.json', index, t);
    tarMemberBytes(out, 'manifest.json', dockerManifest, t);
    tarMemberBytes(out, 'oci-layout', Buffer.from(JSON.stringify({ imageLayoutVersion: '1.0.0' })), t);
    endOfArchive(out);
    return [{
      path: `docker/${ctx.names.name}-docker.tar`, recipe: compilePlain(out.done()), format: 'docker',
      description: `docker load archive (docker load -i FILE; image ${repo}:${tag})`,
    }];
  },
};
