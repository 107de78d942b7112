// Format metadata of the views, checked against independent parsers: the
// docker load archive (manifest.json, OCI index/manifest/config, blob names
// = sha256 of their bytes, diff_id = sha256 of the layer, the layer tree),
// the Incus unified image's metadata.yaml (PyYAML), the OpenNode OVF
// (xmllint), README.txt, the .sha256 files, and `uniso info --json`.

import t from 'tap';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as crypto from 'node:crypto';
import {
  buildUniversal, fixture, listViews, must, mustUniso, run, tempDir, FIXTURE_ISO_NAME, FIXTURE_NAME, FIXTURE_TEMPLATE,
} from './lib/fixture';
import { compareTrees } from './lib/treecmp';

const fx = fixture();
const dir = tempDir(t);
const uni = buildUniversal(dir);
const listing = listViews(uni);
const fileViews = listing.filter((v) => !v.path.endsWith('/'));
const sizeOf = new Map(fileViews.map((v) => [v.path, v.size]));

const sha256 = (b: Buffer) => crypto.createHash('sha256').update(b).digest('hex');

function extractView(view: string): string {
  const out = path.join(dir, 'views', view);
  if (!fs.existsSync(out)) {
    fs.mkdirSync(path.dirname(out), { recursive: true });
    mustUniso(['extract', uni, view, '-o', out]);
  }
  return out;
}

/** The newest mtime (whole seconds) of any entry of the fixture tree, the root included. */
function newestMtime(root: string): number {
  let newest = 0;
  const rec = (p: string) => {
    const st = fs.lstatSync(p);
    newest = Math.max(newest, Math.floor(st.mtimeMs / 1000));
    if (st.isDirectory()) for (const n of fs.readdirSync(p)) rec(path.join(p, n));
  };
  rec(root);
  return newest;
}

const readJson = (p: string): unknown => JSON.parse(fs.readFileSync(p, 'utf8'));

t.test('docker: a docker load archive whose every digest matches its bytes', async (t) => {
  const view = `docker/${FIXTURE_NAME}-docker.tar`;
  const archive = extractView(view);
  const members = must('tar', ['-tf', archive]).stdout.split('\n').filter(Boolean);
  const blobFiles = members.filter((m) => /^blobs\/sha256\/[0-9a-f]{64}$/.test(m));
  t.equal(blobFiles.length, 3, 'three blobs: config, layer, OCI manifest');
  t.same([...members].sort(), ['blobs/', 'blobs/sha256/', ...blobFiles, 'index.json', 'manifest.json', 'oci-layout'].sort(),
    'no other members');
  const x = path.join(dir, 'docker-x');
  fs.mkdirSync(x);
  must('tar', ['-xf', archive, '-C', x]);
  for (const b of blobFiles) t.equal(sha256(fs.readFileSync(path.join(x, b))), path.basename(b), `${b} is named by its sha256`);

  // manifest.json (what docker load reads)
  const manifest = readJson(path.join(x, 'manifest.json')) as { Config: string; RepoTags: string[]; Layers: string[] }[];
  t.ok(Array.isArray(manifest), 'manifest.json is an array');
  t.equal(manifest.length, 1, 'one image');
  const m = manifest[0];
  t.same(m.RepoTags, ['turnkeylinux/fixture:1.0'], 'RepoTags');
  t.match(m.Config, /^blobs\/sha256\/[0-9a-f]{64}$/, 'Config is a blob path');
  t.ok(fs.existsSync(path.join(x, m.Config)), 'Config file exists');
  const configBytes = fs.readFileSync(path.join(x, m.Config));
  t.equal(sha256(configBytes), path.basename(m.Config), 'Config name is the sha256 of its bytes');
  t.equal(m.Layers.length, 1, 'one layer');
  t.match(m.Layers[0], /^blobs\/sha256\/[0-9a-f]{64}$/, 'Layers[0] is a blob path');
  t.ok(fs.existsSync(path.join(x, m.Layers[0])), 'Layers[0] exists');
  const layerPath = path.join(x, m.Layers[0]);
  const layerBytes = fs.readFileSync(layerPath);
  const layerHex = sha256(layerBytes);
  t.equal(layerHex, path.basename(m.Layers[0]), 'layer blob name is the sha256 of its bytes');

  // the image config
  const config = JSON.parse(configBytes.toString('utf8')) as {
    architecture: string; os: string; rootfs: { type: string; diff_ids: string[] }; created: string;
    config: { Cmd?: string[]; Env?: string[] };
  };
  t.equal(config.architecture, 'amd64', 'config.architecture');
  t.equal(config.os, 'linux', 'config.os');
  t.equal(config.rootfs.type, 'layers', 'rootfs.type');
  t.same(config.rootfs.diff_ids, [`sha256:${layerHex}`], 'diff_ids[0] is sha256: + the sha256 of the layer');
  t.ok(!Number.isNaN(Date.parse(config.created)), `created is a date (${config.created})`);
  t.equal(Date.parse(config.created) / 1000, newestMtime(fx.tree), 'created is the newest mtime of the tree');

  // the OCI image layout
  t.same(readJson(path.join(x, 'oci-layout')), { imageLayoutVersion: '1.0.0' }, 'oci-layout');
  const index = readJson(path.join(x, 'index.json')) as {
    schemaVersion: number; mediaType: string;
    manifests: { mediaType: string; digest: string; size: number; annotations?: Record<string, string> }[];
  };
  t.equal(index.schemaVersion, 2, 'index.json schemaVersion 2');
  t.equal(index.mediaType, 'application/vnd.oci.image.index.v1+json', 'index.json mediaType');
  t.equal(index.manifests.length, 1, 'index.json lists one manifest');
  const desc = index.manifests[0];
  t.equal(desc.mediaType, 'application/vnd.oci.image.manifest.v1+json', 'manifest descriptor mediaType');
  t.match(desc.digest, /^sha256:[0-9a-f]{64}$/, 'manifest descriptor digest');
  const ociManifestPath = path.join(x, 'blobs/sha256', desc.digest.slice(7));
  t.ok(fs.existsSync(ociManifestPath), 'the OCI manifest blob exists');
  const ociManifestBytes = fs.readFileSync(ociManifestPath);
  t.equal(`sha256:${sha256(ociManifestBytes)}`, desc.digest, 'OCI manifest digest matches its bytes');
  t.equal(ociManifestBytes.length, desc.size, 'OCI manifest size matches its bytes');
  t.equal(desc.annotations?.['io.containerd.image.name'], 'docker.io/turnkeylinux/fixture:1.0', 'image name annotation');
  t.equal(desc.annotations?.['org.opencontainers.image.ref.name'], '1.0', 'ref name annotation is the tag');
  const oci = JSON.parse(ociManifestBytes.toString('utf8')) as {
    schemaVersion: number; mediaType: string;
    config: { mediaType: string; digest: string; size: number };
    layers: { mediaType: string; digest: string; size: number }[];
  };
  t.equal(oci.schemaVersion, 2, 'OCI manifest schemaVersion 2');
  t.equal(oci.config.mediaType, 'application/vnd.oci.image.config.v1+json', 'config mediaType');
  t.equal(oci.config.digest, `sha256:${sha256(configBytes)}`, 'config digest matches the config bytes');
  t.equal(oci.config.size, configBytes.length, 'config size matches');
  t.equal(oci.layers.length, 1, 'one layer in the OCI manifest');
  t.equal(oci.layers[0].mediaType, 'application/vnd.oci.image.layer.v1.tar', 'layer mediaType (uncompressed tar)');
  t.equal(oci.layers[0].digest, `sha256:${layerHex}`, 'layer digest matches the layer bytes');
  t.equal(oci.layers[0].size, layerBytes.length, 'layer size matches');

  // the layer itself, extracted by GNU tar
  const lx = path.join(dir, 'docker-layer');
  fs.mkdirSync(lx);
  must('tar', ['--numeric-owner', '--xattrs', '--xattrs-include=*', '-xpf', layerPath, '-C', lx]);
  // the layer has no "./" entry, so the root directory's mtime is the extractor's
  t.same(compareTrees(fx.tree, lx, { rootMtime: false }), [], 'the layer equals the fixture tree');
  const names = must('tar', ['-tf', layerPath]).stdout.split('\n').filter(Boolean);
  t.notOk(names.some((n) => n === './' || n === '/' || n.startsWith('/') || n.startsWith('./')), 'layer member names are relative, no root entry');
});

t.test('lxc: incus unified image with metadata.yaml first', async (t) => {
  const file = extractView(`lxc/${FIXTURE_NAME}-incus.tar.gz`);
  const members = must('tar', ['-tzf', file]).stdout.split('\n').filter(Boolean);
  t.equal(members[0], 'metadata.yaml', 'first member is metadata.yaml');
  t.same(members.slice(1).filter((m) => !m.startsWith('rootfs/')), [], 'every other member is under rootfs/');
  t.equal(members.filter((m) => m === 'metadata.yaml').length, 1, 'one metadata.yaml');
  t.ok(members.includes('rootfs/'), 'rootfs/ directory entry');
  const yamlText = must('tar', ['-xzOf', file, 'metadata.yaml']).out;
  const parsed = must('python3', ['-c', 'import yaml,json,sys; print(json.dumps(yaml.safe_load(sys.stdin)))'], { input: yamlText });
  const meta = JSON.parse(parsed.stdout) as {
    architecture: unknown; creation_date: unknown; properties: Record<string, unknown>; templates?: unknown;
  };
  t.equal(meta.architecture, 'x86_64', 'architecture');
  t.equal(typeof meta.creation_date, 'number', 'creation_date is a number');
  t.ok(Number.isInteger(meta.creation_date), 'creation_date is an integer');
  t.equal(meta.creation_date, newestMtime(fx.tree), 'creation_date is the newest mtime of the tree');
  t.equal(meta.properties.os, 'debian', 'properties.os');
  t.equal(meta.properties.release, 'bookworm', 'properties.release');
  t.equal(meta.properties.name, FIXTURE_NAME, 'properties.name');
  t.equal(meta.properties.architecture, 'x86_64', 'properties.architecture');
  t.type(meta.properties.description, 'string', 'properties.description');
});

function xpath(file: string, expr: string): string {
  return must('xmllint', ['--xpath', expr, file]).stdout.replace(/\n$/, ''); // xmllint ends its output with a newline
}

t.test('opennode: the OVF descriptor names the template tar.gz', async (t) => {
  const ovf = extractView(`opennode/${FIXTURE_TEMPLATE}.ovf`);
  const gzView = `opennode/${FIXTURE_TEMPLATE}.tar.gz`;
  const gz = extractView(gzView);
  const lint = run('xmllint', ['--noout', ovf]);
  t.equal(lint.code, 0, `xmllint --noout accepts it ${lint.stderr}`);
  t.equal(lint.stderr, '', 'no warnings');
  const ln = (n: string) => `*[local-name()="${n}"]`;
  const attr = (n: string) => `@*[local-name()="${n}"]`;
  t.equal(xpath(ovf, `count(//${ln('References')}/${ln('File')})`), '1', 'one File reference');
  t.equal(xpath(ovf, `string(//${ln('File')}/${attr('href')})`), `${FIXTURE_TEMPLATE}.tar.gz`, 'File ovf:href is the tar.gz name');
  t.equal(xpath(ovf, `string(//${ln('File')}/${attr('size')})`), String(sizeOf.get(gzView)), 'File ovf:size is the tar.gz view size');
  t.equal(fs.statSync(gz).size, sizeOf.get(gzView), 'the extracted tar.gz has that size too');
  t.equal(xpath(ovf, `string(//${ln('VirtualSystemType')})`), 'openvz', 'VirtualSystemType');
  t.equal(xpath(ovf, `string(//${ln('OperatingSystemSection')}/${ln('Description')})`), FIXTURE_TEMPLATE, 'OperatingSystemSection Description');
  t.equal(xpath(ovf, `string(//${ln('Disk')}/${attr('fileRef')})`), xpath(ovf, `string(//${ln('File')}/${attr('id')})`), 'Disk refers to the File');
  const tarSize = must('sh', ['-c', `gzip -dc '${gz}' | wc -c`]).stdout.trim();
  t.equal(xpath(ovf, `string(//${ln('Disk')}/${attr('capacity')})`), tarSize, 'Disk ovf:capacity is the uncompressed tar size');
  t.equal(xpath(ovf, `namespace-uri(/*)`), 'http://schemas.dmtf.org/ovf/envelope/1', 'OVF 1.x envelope namespace');
});

t.test('README.txt lists every view; each .sha256 names the real bytes', async (t) => {
  const readme = fs.readFileSync(extractView('README.txt'), 'utf8');
  const listed = new Set(readme.split('\n').map((l) => l.trim().split(/\s+/)[0]).filter(Boolean));
  const views = fileViews.filter((v) => v.path !== 'README.txt' && !v.path.endsWith('.sha256'));
  t.ok(views.length >= 7, `${views.length} views`);
  for (const v of views) t.ok(listed.has(v.path), `README.txt lists ${v.path}`);
  t.ok(listed.has('rootfs/'), 'README.txt lists rootfs/');
  t.match(readme, FIXTURE_NAME, 'README.txt names the appliance');
  t.match(readme, /sha256sum -c/, 'README.txt says how to check');
  const json = JSON.parse(mustUniso(['ls', '--json', uni]).stdout) as { path: string; sha256: string | null }[];
  const recorded = new Map(json.map((j) => [j.path, j.sha256]));
  for (const v of views) {
    const bytes = fs.readFileSync(extractView(v.path));
    t.equal(bytes.length, v.size, `${v.path}: size as listed`);
    const hex = sha256(bytes);
    const side = `${v.path}.sha256`;
    t.ok(sizeOf.has(side), `${side} exists`);
    const text = fs.readFileSync(extractView(side), 'utf8');
    t.equal(text, `${hex}  ${path.basename(v.path)}\n`, `${side}: "<sha256>  <basename>\\n" of the real bytes`);
    t.equal(recorded.get(v.path), hex, `${v.path}: uniso ls --json records the same sha256`);
  }
  const extra = fileViews.filter((v) => v.path.endsWith('.sha256') && !sizeOf.has(v.path.slice(0, -7)));
  t.same(extra, [], 'no .sha256 without its file');
});

t.test('uniso info --json', async (t) => {
  const info = JSON.parse(mustUniso(['info', '--json', uni]).stdout) as {
    name: string; template: string; input: { name: string; kind: string; rootSquashfs: string | null };
    pool: { bytes: number }; views: { path: string; size: number }[]; viewBytes: number;
  };
  t.equal(info.name, FIXTURE_NAME, 'name');
  t.equal(info.template, FIXTURE_TEMPLATE, 'template');
  t.equal(info.input.kind, 'iso', 'input kind');
  t.equal(info.input.name, FIXTURE_ISO_NAME, 'input name');
  t.equal(info.input.rootSquashfs, 'casper/10root.squashfs', 'root squashfs');
  const viewSum = fileViews.reduce((s, v) => s + v.size, 0);
  t.ok(info.pool.bytes > 0, `pool bytes ${info.pool.bytes}`);
  t.ok(info.pool.bytes * 4 < viewSum, `pool (${info.pool.bytes} bytes) is much smaller than the views (${viewSum} bytes)`);
  const main = fileViews.filter((v) => !v.path.endsWith('.sha256'));
  t.same(info.views.map((v) => v.path).sort(), main.map((v) => v.path).sort(), 'info lists the views');
  for (const v of info.views) t.equal(v.size, sizeOf.get(v.path), `${v.path}: size as uniso ls -l`);
  t.equal(info.viewBytes, main.reduce((s, v) => s + v.size, 0), 'viewBytes is their sum');
  t.ok(info.pool.bytes < fs.statSync(uni).size, 'the pool fits in the ISO');
});
