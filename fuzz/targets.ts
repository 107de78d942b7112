// The fuzz targets: each takes an input's bytes and must end cleanly (see
// fuzz/harness.ts). iso (the ISO 9660 reader, then ingest of the appliance
// ISO), squashfs (ingest, one seed per compressor, with compressed and
// uncompressed metadata), tar and tar-compressed (ingest of tar archives:
// plain, gzip, xz, bzip2, zstd), image (opening a built universal ISO and
// reading every file; bytes read must be the good image's bytes or an
// error), http (requests to `uniso serve`'s HTTP server; Range headers,
// paths, methods, conditional headers) and ranges (the Range parser alone).

import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import * as crypto from 'node:crypto';
import { FileSource } from '../src/io/source';
import { IsoImage, IsoEntry } from '../src/iso/iso9660';
import { ingest } from '../src/ingest/index';
import { PoolWriter } from '../src/pool/writer';
import { openImage, OpenImage } from '../src/image/open';
import { Namespace, Node } from '../src/image/namespace';
import { HttpServer } from '../src/serve/http';
import { parseRange } from '../src/serve/ranges';
import { isUserError, Seed, Target } from './harness';
import { isoHot, makeSquashfs, makeTars, sh, squashfsHot, tinyTree, tinyUniversal } from './seeds';

const MAX_ENTRIES = 20_000;

/** Walk an ISO's directories (bounded: loops and huge trees end the walk) and open every file. */
async function walkIso(iso: IsoImage): Promise<void> {
  const seen = new Set<string>();
  let n = 0;
  const walk = async (d: IsoEntry, depth: number): Promise<void> => {
    const key = d.extents.map((e) => e[0]).join(',');
    if (seen.has(key) || depth > 64) return;
    seen.add(key);
    for (const k of await iso.readdir(d)) {
      if (++n > MAX_ENTRIES) return;
      if (k.isDir) await walk(k, depth + 1);
      else {
        const s = iso.open(k);
        const b = Buffer.alloc(Math.min(s.size, 4096));
        await s.pread(b, 0);
      }
    }
  };
  const root = await iso.lookup('/');
  if (root) await walk(root, 0);
}

async function ingestFile(input: Buffer, scratch: string, name: string): Promise<void> {
  const file = path.join(scratch, `out-${name}`);
  fs.writeFileSync(file, input);
  const pool = new PoolWriter(path.join(scratch, 'out-pool.bin'));
  try {
    await ingest(file, pool);
  } finally {
    await pool.finish().catch(() => { /* the pool of a failed ingest */ });
  }
}

const iso: Target = {
  name: 'iso',
  about: 'ISO 9660 reader (volume descriptors, directories, Rock Ridge NM/CE) and ingest of an appliance ISO',
  async seeds(dir) {
    const tree = tinyTree(dir);
    const stage = path.join(dir, 'iso-stage');
    fs.mkdirSync(path.join(stage, 'casper'), { recursive: true });
    fs.writeFileSync(path.join(stage, 'casper', '10root.squashfs'), makeSquashfs(dir, 'gzip', ['-noI']));
    fs.writeFileSync(path.join(stage, 'README'), 'fuzz\n');
    void tree;
    const out: Seed[] = [];
    for (const [name, flags] of [['rockridge', ['-R']], ['plain', []], ['joliet', ['-J', '-R']]] as [string, string[]][]) {
      const file = path.join(dir, `${name}.iso`);
      fs.rmSync(file, { force: true });
      sh('xorriso', ['-as', 'mkisofs', '-quiet', ...flags, '-V', 'FUZZ', '-o', file, stage]);
      out.push({ name, bytes: fs.readFileSync(file), hot: await isoHot(file) });
    }
    return out;
  },
  async run(input, scratch) {
    const file = path.join(scratch, 'out-in.iso');
    fs.writeFileSync(file, input);
    const src = FileSource.open(file);
    try {
      await walkIso(await IsoImage.open(src, file));
    } finally {
      src.close();
    }
    await ingestFile(input, scratch, 'app.iso');
  },
};

const squashfs: Target = {
  name: 'squashfs',
  about: 'squashfs reader and ingest, every compressor (gzip, xz, lzo, lz4, zstd), compressed and uncompressed metadata',
  async seeds(dir) {
    const out: Seed[] = [];
    for (const comp of ['gzip', 'xz', 'lzo', 'lz4', 'zstd']) {
      for (const extra of [[], ['-noI', '-noD', '-noF', '-noX']]) {
        const bytes = makeSquashfs(dir, comp, extra);
        out.push({ name: `${comp}${extra.length ? '-plain-meta' : ''}`, bytes, hot: squashfsHot(bytes) });
      }
    }
    return out;
  },
  async run(input, scratch) {
    await ingestFile(input, scratch, 'in.squashfs');
  },
};

const tar: Target = {
  name: 'tar',
  about: 'tar ingest (gnu, pax with sparse and xattrs, ustar, oldgnu)',
  async seeds(dir) {
    return makeTars(dir);
  },
  async run(input, scratch) {
    await ingestFile(input, scratch, 'in.tar');
  },
};

const tarCompressed: Target = {
  name: 'tar-compressed',
  about: 'tar.gz, tar.xz, tar.bz2 and tar.zst ingest (zlib and the xz/bzip2/zstd tools)',
  runMs: 3000,
  async seeds(dir) {
    const out: Seed[] = [];
    for (const t of makeTars(dir).filter((s) => s.name === 'pax' || s.name === 'gnu')) {
      for (const [ext, tool] of [['gz', 'gzip'], ['xz', 'xz'], ['bz2', 'bzip2'], ['zst', 'zstd']]) {
        const f = path.join(dir, `${t.name}.tar`);
        const bytes = sh(tool, ['-c', ...(tool === 'zstd' ? ['-q'] : []), f]);
        out.push({ name: `${t.name}.tar.${ext}`, bytes, hot: [[0, Math.min(64, bytes.length)], [Math.max(0, bytes.length - 64), 64]] });
      }
    }
    return out;
  },
  async run(input, scratch, seed) {
    await ingestFile(input, scratch, seed.name);
  },
};

// ---- the image opener ----------------------------------------------------------

/** Walk the namespace of an open image; every file's bytes (up to a cap) are hashed: path -> sha256 or error text. */
async function walkImage(img: OpenImage, budget = 64 << 20): Promise<Map<string, string>> {
  const ns = new Namespace(img.catalog, img.blocks);
  const out = new Map<string, string>();
  let n = 0;
  const walk = async (node: Node, p: string): Promise<void> => {
    for (const [name, child] of ns.readdir(node)) {
      if (++n > MAX_ENTRIES) return;
      const cp = `${p}/${name}`;
      ns.attr(child);
      if (ns.isDir(child)) {
        await walk(child, cp);
        continue;
      }
      let src;
      try {
        src = ns.source(child);
      } catch {
        continue; // not a regular file
      }
      const h = crypto.createHash('sha256');
      const buf = Buffer.allocUnsafe(1 << 20);
      for (let pos = 0; pos < src.size && budget > 0; pos += buf.length) {
        const b = buf.subarray(0, Math.min(buf.length, src.size - pos));
        const got = await src.pread(b, pos);
        if (got !== b.length) throw new Error(`short read of ${cp} at ${pos}`);
        h.update(b);
        budget -= b.length;
      }
      out.set(cp, h.digest('hex'));
    }
  };
  await walk(ns.root, '');
  return out;
}

let goodImage: Map<string, string> | undefined;

const image: Target = {
  name: 'image',
  about: 'the image opener (ISO, manifest, catalog, pool, squashfs of the single-copy image) and reading every file of it',
  clean: (e) => isUserError(e) || (e as Error)?.name === 'BlockCorruptError' || (e as { code?: string })?.code === 'EUNISO_CORRUPT',
  runMs: 2000,
  async seeds(dir) {
    const file = tinyUniversal(dir);
    const img = await openImage(file);
    try {
      goodImage = await walkImage(img);
    } finally {
      img.close();
    }
    return [{ name: 'universal', bytes: fs.readFileSync(file), hot: await isoHot(file) }];
  },
  async run(input, scratch) {
    const file = path.join(scratch, 'out-u.iso');
    fs.writeFileSync(file, input);
    const img = await openImage(file);
    let got: Map<string, string>;
    try {
      got = await walkImage(img);
    } finally {
      img.close();
    }
    // the catalog is pinned by the manifest: what it lists and what reads give must be the good image's
    for (const [p, sha] of got) {
      if (goodImage && goodImage.get(p) !== sha) throw new Error(`WRONG BYTES: ${p} reads differently from the good image`);
    }
  },
};

// ---- the HTTP server -------------------------------------------------------------

let server: { http: HttpServer; img: OpenImage; port: number; files: Map<string, Buffer> } | undefined;

function rawRequest(port: number, req: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    s.on('data', (d) => chunks.push(d));
    s.on('end', () => resolve(Buffer.concat(chunks)));
    s.on('close', () => resolve(Buffer.concat(chunks)));
    s.on('error', (e) => ((e as NodeJS.ErrnoException).code === 'ECONNRESET' ? resolve(Buffer.concat(chunks)) : reject(e)));
    // half-close only when no answer came soon (an incomplete request): node's server drops a
    // response in progress when the client ends first
    s.write(req);
    const t = setTimeout(() => s.end(), 150);
    s.on('close', () => clearTimeout(t));
  });
}

/** Check one HTTP response against the served file's bytes; throws on a wrong answer. */
function checkResponse(res: Buffer, method: string, file: Buffer | undefined): void {
  if (res.length === 0) return; // the connection was refused by node's parser (400 from node itself is fine too)
  const head = res.subarray(0, Math.max(0, res.indexOf('\r\n\r\n'))).toString('latin1');
  const m = /^HTTP\/1\.1 (\d{3})/.exec(head);
  if (!m) throw new Error(`HTTP: not an HTTP response: ${JSON.stringify(head.slice(0, 80))}`);
  const status = Number(m[1]);
  if (status >= 500) throw new Error(`HTTP: status ${status}`);
  const body = res.subarray(res.indexOf('\r\n\r\n') + 4);
  const cl = /\r\ncontent-length: (\d+)/i.exec(head);
  if (method === 'GET' && cl && !/transfer-encoding/i.test(head) && Number(cl[1]) !== body.length) {
    throw new Error(`HTTP: Content-Length ${cl[1]} but ${body.length} body bytes (status ${status})`);
  }
  if (!file || method !== 'GET') return;
  if (status === 200 && !body.equals(file)) throw new Error('HTTP: WRONG BYTES in a 200 response');
  if (status === 206) {
    const cr = /\r\ncontent-range: bytes (\d+)-(\d+)\/(\d+)/i.exec(head);
    if (cr) {
      const [a, b, total] = [Number(cr[1]), Number(cr[2]), Number(cr[3])];
      if (total !== file.length || a > b || b >= total) throw new Error(`HTTP: bad Content-Range ${cr[0].trim()}`);
      if (!body.equals(file.subarray(a, b + 1))) throw new Error('HTTP: WRONG BYTES in a 206 response');
    } else if (!/multipart\/byteranges/i.test(head)) {
      throw new Error('HTTP: 206 without Content-Range');
    }
  }
}

const http: Target = {
  name: 'http',
  about: "uniso serve's HTTP request handling: methods, paths (escapes, dot segments), Range, If-Range, If-None-Match, If-Modified-Since",
  async seeds(dir) {
    const file = tinyUniversal(dir);
    const img = await openImage(file);
    const hs = new HttpServer(img, { log: () => { /* quiet */ } });
    await hs.listen('127.0.0.1', 0);
    const port = (hs.server.address() as net.AddressInfo).port;
    const files = new Map<string, Buffer>();
    const ns = new Namespace(img.catalog, img.blocks);
    for (const p of ['/lxc/tree-incus-metadata.tar.gz', '/README.txt', '/rootfs/etc/hostname', '/rootfs/usr/bin/prog']) {
      const node = ns.lookup(p);
      if (!node) continue;
      const src = ns.source(node);
      const b = Buffer.alloc(src.size);
      await src.pread(b, 0);
      files.set(p, b);
    }
    server = { http: hs, img, port, files };
    const seeds: Seed[] = [];
    const reqs = [
      'GET /README.txt HTTP/1.1\r\nHost: x\r\nRange: bytes=0-9,20-\r\nConnection: close\r\n\r\n',
      'GET /rootfs/usr/bin/prog HTTP/1.1\r\nHost: x\r\nRange: bytes=-100\r\nIf-Range: "0123"\r\nConnection: close\r\n\r\n',
      'HEAD /lxc/tree-incus-metadata.tar.gz HTTP/1.1\r\nHost: x\r\nIf-None-Match: W/"a", "b"\r\nConnection: close\r\n\r\n',
      'GET /rootfs/etc/hostname HTTP/1.1\r\nHost: x\r\nIf-Modified-Since: Tue, 14 Nov 2023 22:13:20 GMT\r\nRange: bytes=1-2\r\nConnection: close\r\n\r\n',
      'GET /rootfs/%65tc/./../etc/hostname?format=json HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n',
      'GET /lxc/?format=json HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n',
      'POST /README.txt HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n',
    ];
    for (const [i, r] of reqs.entries()) {
      const bytes = Buffer.from(r, 'latin1');
      const firstLine = bytes.indexOf('\r\n');
      seeds.push({ name: `req${i}`, bytes, hot: [[0, firstLine], [bytes.indexOf('Range') >= 0 ? bytes.indexOf('Range') : 0, 40]] });
    }
    return seeds;
  },
  async run(input) {
    const s = server!;
    const res = await rawRequest(s.port, input);
    const line = input.toString('latin1').split('\r\n')[0] ?? '';
    const [method, target] = line.split(' ');
    let file: Buffer | undefined;
    try {
      file = s.files.get(decodeURIComponent(new URL(target ?? '/', 'http://x').pathname));
    } catch { /* not a path we know */ }
    // only an exact, plain path is compared byte for byte
    if (target && !/^\/[A-Za-z0-9/._-]*$/.test(target)) file = undefined;
    checkResponse(res, method ?? '', file);
    // the server is still alive and right
    const again = await rawRequest(s.port, Buffer.from('GET /rootfs/etc/hostname HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'));
    checkResponse(again, 'GET', s.files.get('/rootfs/etc/hostname'));
    if (!/^HTTP\/1\.1 200/.test(again.toString('latin1'))) throw new Error('HTTP: the server stopped answering');
  },
  async close() {
    if (server) {
      await server.http.close();
      server.img.close();
    }
  },
};

const ranges: Target = {
  name: 'ranges',
  about: 'the HTTP Range header parser alone (any header text, any size): ranges inside the representation, start <= end',
  clean: () => false,
  async seeds() {
    return ['bytes=0-0', 'bytes=5-,-3, 0-1', 'bytes = 100-200, 7-', 'BYTES=-0', 'bytes=1-2,3-4,5-6,7-8']
      .map((h, i) => ({ name: `h${i}`, bytes: Buffer.from(h), hot: [[0, h.length]] as [number, number][] }));
  },
  async run(input) {
    const text = input.toString('latin1');
    for (const size of [0, 1, 7, 1000, 2 ** 40, 2 ** 53 - 1]) {
      const r = parseRange(text, size);
      if (r === undefined || r === 'unsatisfiable') continue;
      if (r.length === 0 || r.length > 100) throw new Error(`ranges: ${r.length} ranges`);
      for (const x of r) {
        if (!Number.isSafeInteger(x.start) || !Number.isSafeInteger(x.end) || x.start < 0 || x.start > x.end || x.end >= size) {
          throw new Error(`ranges: ${JSON.stringify(text)} against ${size} gave ${x.start}-${x.end}`);
        }
      }
    }
  },
};

export const TARGETS: Target[] = [iso, squashfs, tar, tarCompressed, image, http, ranges];
