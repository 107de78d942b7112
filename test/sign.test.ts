// Signed images (src/image/signature.ts): `uniso key generate` writes an
// Ed25519 key pair openssl reads as such (private key mode 0600, never
// overwriting a key); `build --sign` puts an Ed25519 signature of the
// manifest's bytes in /uniso/uniso.json.sig that openssl accepts, and two
// signed builds are bit-identical; --trust on verify, ls, info, extract,
// serve and mount accepts the image signed by that key and refuses, with
// one line and a non-zero exit, another key's, an unsigned image, a
// signature with one bit flipped and a manifest changed by one byte (before
// anything is written or mounted: no output file, no mount, no daemon);
// `info` tells signed from unsigned and, with --trust, the key's
// fingerprint (the SHA-256 of the raw public key, computed here with
// openssl). A bad key for build --sign is one line and no output, found
// before the input is read. Oracles: openssl, xorriso, cmp, the files and
// mounts the commands leave.

import t, { Test } from 'tap';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import * as crypto from 'node:crypto';
import { spawn } from 'node:child_process';
import { buildUniversal, fixture, FIXTURE_TEMPLATE, isMounted, must, mustUniso, run, RunResult, tempDir, uniso, UNISO, waitUntil, mountOn, isoExtent, freePort, unmountAtTeardown } from './lib/fixture';

const fx = fixture();
const work = tempDir(t, 'uniso-sign-');
const PROXMOX = `proxmox/${FIXTURE_TEMPLATE}.tar.gz`;
const SIG = 'uniso/uniso.json.sig';

// ---- helpers ---------------------------------------------------------------

/** Exit status non-zero (and not the internal-error 70); stderr exactly one "uniso: " line naming `file` and matching `problem`. */
function oneLineError(t: Test, r: RunResult, file: string, problem: RegExp, what: string): void {
  t.not(r.code, 0, `${what}: exits non-zero`);
  t.not(r.code, 70, `${what}: not an internal error`);
  t.match(r.stderr, /^uniso: [^\n]+\n$/, `${what}: stderr is exactly one "uniso: " line (got: ${r.stderr.trim()})`);
  const line = r.stderr.split('\n')[0];
  t.ok(line.includes(file), `${what}: the message names ${file} (got: ${line})`);
  t.match(line, problem, `${what}: the message says what is wrong`);
}

let dirs = 0;
/** A fresh, empty directory under the test's temp directory. */
function subdir(name: string): string {
  const d = path.join(work, `${++dirs}-${name}`);
  fs.mkdirSync(d);
  return d;
}

/** `uniso key generate DIR/NAME`; returns the prefix. */
function generateKey(name: string): string {
  const prefix = path.join(subdir(`key-${name}`), name);
  mustUniso(['key', 'generate', prefix]);
  return prefix;
}

/** The fingerprint uniso shows for a public key file: SHA-256 of its raw 32 bytes (the end of the SPKI DER), hex, 16 digits. */
function opensslFingerprint(pub: string): string {
  const der = must('openssl', ['pkey', '-pubin', '-in', pub, '-outform', 'DER']).out;
  if (der.length !== 44) throw new Error(`${pub}: ${der.length} bytes of SPKI DER, not the 44 of an Ed25519 key`);
  return crypto.createHash('sha256').update(der.subarray(12)).digest('hex').slice(0, 16);
}

/** Every file of an ISO, copied out with xorriso into a new directory. */
function xorrisoExtract(iso: string, name: string): string {
  const d = path.join(subdir(name), 'image');
  must('xorriso', ['-osirrox', 'on', '-indev', iso, '-extract', '/', d]);
  return d;
}

function flipBit(file: string, offset: number, bit: number): void {
  const fd = fs.openSync(file, 'r+');
  try {
    const b = Buffer.alloc(1);
    if (fs.readSync(fd, b, 0, 1, offset) !== 1) throw new Error(`short read of ${file}`);
    b[0] ^= 1 << bit;
    fs.writeSync(fd, b, 0, 1, offset);
  } finally {
    fs.closeSync(fd);
  }
}

/** The daemon processes whose command line names `mnt` (pgrep's report). */
function daemonsOf(mnt: string): string[] {
  const r = run('pgrep', ['-af', `uniso mount --foreground .*${mnt}$`]);
  return r.stdout.split('\n').filter(Boolean);
}

// ---- the keys and the images -------------------------------------------------

const A = generateKey('release'); // signs
const B = generateKey('other'); // another key pair: not the signer
const signedDirA = subdir('signed-a');
const signed = buildUniversal(signedDirA, fx.iso, ['--sign', `${A}.key`]);
const signedTwice = buildUniversal(subdir('signed-b'), fx.iso, ['--sign', `${A}.key`]);
const unsigned = buildUniversal(subdir('unsigned'));

t.test('key generate: an Ed25519 key pair openssl reads, the private key mode 0600', async (t) => {
  const key = `${A}.key`;
  const pub = `${A}.pub`;
  t.equal(fs.statSync(key).mode & 0o777, 0o600, `${key}: mode 0600`);
  t.match(fs.readFileSync(key, 'utf8'), /^-----BEGIN PRIVATE KEY-----\n[^]+\n-----END PRIVATE KEY-----\n$/, 'the private key is PKCS#8 PEM');
  t.match(fs.readFileSync(pub, 'utf8'), /^-----BEGIN PUBLIC KEY-----\n[^]+\n-----END PUBLIC KEY-----\n$/, 'the public key is SPKI PEM');
  t.match(must('openssl', ['pkey', '-in', key, '-noout', '-text']).stdout, /^ED25519 Private-Key:/, 'openssl pkey: ED25519 private key');
  t.match(must('openssl', ['pkey', '-pubin', '-in', pub, '-noout', '-text']).stdout, /^ED25519 Public-Key:/, 'openssl pkey -pubin: ED25519 public key');
  t.equal(must('openssl', ['pkey', '-in', key, '-pubout']).stdout, fs.readFileSync(pub, 'utf8'), 'the .pub is the .key\'s public key');
  t.not(fs.readFileSync(`${B}.pub`, 'utf8'), fs.readFileSync(pub, 'utf8'), 'a second key generate gives another key');
  t.same(fs.readdirSync(path.dirname(A)).sort(), ['release.key', 'release.pub'], 'nothing else left beside them (no temp files)');
  const k = path.join(subdir('key-fpr'), 'k');
  const r = mustUniso(['key', 'generate', k]);
  const fpr = /\(key ([0-9a-f]{16})\)/.exec(r.stderr)?.[1];
  t.ok(fpr, `key generate tells the fingerprint (${r.stderr.trim()})`);
  t.equal(fpr, opensslFingerprint(`${k}.pub`), 'the SHA-256 of the raw public key, as openssl gives it');
});

t.test('key generate refuses to overwrite a key', async (t) => {
  const before = { key: fs.readFileSync(`${A}.key`), pub: fs.readFileSync(`${A}.pub`) };
  oneLineError(t, uniso(['key', 'generate', A]), `${A}.key`, /already exists/, 'both files exist');
  t.ok(fs.readFileSync(`${A}.key`).equals(before.key) && fs.readFileSync(`${A}.pub`).equals(before.pub), 'the key pair is unchanged');
  t.same(fs.readdirSync(path.dirname(A)).sort(), ['release.key', 'release.pub'], 'no temp files left');

  const d = subdir('key-half');
  fs.writeFileSync(path.join(d, 'k.pub'), 'someone else\'s\n');
  oneLineError(t, uniso(['key', 'generate', path.join(d, 'k')]), path.join(d, 'k.pub'), /already exists/, 'only PREFIX.pub exists');
  t.same(fs.readdirSync(d), ['k.pub'], 'no PREFIX.key written, no temp files');
  t.equal(fs.readFileSync(path.join(d, 'k.pub'), 'utf8'), 'someone else\'s\n', 'PREFIX.pub is untouched');

  const missing = path.join(work, 'no-such-dir', 'k');
  oneLineError(t, uniso(['key', 'generate', missing]), path.join(work, 'no-such-dir'), /does not exist/, 'missing directory');
});

t.test('build --sign: /uniso/uniso.json.sig, bit-identical when built twice, accepted by openssl', async (t) => {
  t.equal(run('cmp', [signed, signedTwice]).code, 0, 'two signed builds: cmp finds no difference');
  const x = xorrisoExtract(signed, 'x-signed');
  t.same(fs.readdirSync(path.join(x, 'uniso')).sort(), ['catalog.sqlite', 'pool.bin', 'uniso.json', 'uniso.json.sig'], '/uniso/ holds the signature');
  t.equal(fs.statSync(path.join(x, SIG)).size, 64, 'an Ed25519 signature: 64 bytes');
  const verify = (pub: string) => run('openssl', ['pkeyutl', '-verify', '-pubin', '-inkey', pub, '-rawin',
    '-in', path.join(x, 'uniso/uniso.json'), '-sigfile', path.join(x, SIG)]);
  const ok = verify(`${A}.pub`);
  t.equal(ok.code, 0, `openssl pkeyutl -verify with the signer's key accepts it ${ok.stderr}`);
  t.match(ok.stdout, /Signature Verified Successfully/, 'openssl says so');
  t.not(verify(`${B}.pub`).code, 0, 'openssl refuses it with another key');
  const u = xorrisoExtract(unsigned, 'x-unsigned');
  t.notOk(fs.existsSync(path.join(u, SIG)), 'an unsigned build has no signature file');
  t.ok(fs.readFileSync(path.join(u, 'uniso/uniso.json')).equals(fs.readFileSync(path.join(x, 'uniso/uniso.json'))),
    'the manifest is the same signed or not');
});

t.test('--trust with the signer\'s key: verify, ls, info, extract', async (t) => {
  const fpr = opensslFingerprint(`${A}.pub`);
  const v = mustUniso(['verify', '--trust', `${A}.pub`, signed]);
  t.match(v.stderr, new RegExp(`verified, signature good \\(key ${fpr}\\)`), 'verify --trust: verified, signature good, with the key\'s fingerprint');
  t.equal(mustUniso(['ls', '--trust', `${A}.pub`, '-l', signed]).stdout, mustUniso(['ls', '-l', signed]).stdout, 'ls --trust lists what ls lists');
  t.match(mustUniso(['ls', '--trust', `${A}.pub`, signed]).stdout, `\n${PROXMOX}\n`, 'ls --trust lists the views');

  const out = subdir('extract-good');
  mustUniso(['extract', signed, PROXMOX, '-o', path.join(out, 'with.tar.gz'), '--trust', `${A}.pub`]);
  mustUniso(['extract', signed, PROXMOX, '-o', path.join(out, 'without.tar.gz')]);
  const w = fs.readFileSync(path.join(out, 'with.tar.gz'));
  t.ok(w.length > 1000, `extract --trust wrote ${w.length} bytes`);
  t.ok(w.equals(fs.readFileSync(path.join(out, 'without.tar.gz'))), 'extract --trust gives the bytes extract gives');

  t.match(mustUniso(['info', '--trust', `${A}.pub`, signed]).stdout, new RegExp(`^signature: +signed, signature good \\(key ${fpr}\\)$`, 'm'),
    'info --trust: signature good, and the key');
  t.match(mustUniso(['info', signed]).stdout, /^signature: +signed \(not checked/m, 'info: signed (not checked without --trust)');
  t.match(mustUniso(['info', unsigned]).stdout, /^signature: +not signed$/m, 'info of an unsigned image: not signed');
  type J = { signature: { signed: boolean; trustedKey: string | null } };
  t.same((JSON.parse(mustUniso(['info', '--json', '--trust', `${A}.pub`, signed]).stdout) as J).signature, { signed: true, trustedKey: fpr }, 'info --json --trust');
  t.same((JSON.parse(mustUniso(['info', '--json', signed]).stdout) as J).signature, { signed: true, trustedKey: null }, 'info --json');
  t.same((JSON.parse(mustUniso(['info', '--json', unsigned]).stdout) as J).signature, { signed: false, trustedKey: null }, 'info --json, unsigned');
});

/** Every reading command refuses `image` under `--trust pub` with one line naming `names` and matching `problem`; extract leaves no file. */
function refusedEverywhere(t: Test, image: string, pub: string, names: string, problem: RegExp, what: string): void {
  oneLineError(t, uniso(['verify', '-q', '--trust', pub, image]), names, problem, `${what}: verify`);
  oneLineError(t, uniso(['ls', '--trust', pub, image]), names, problem, `${what}: ls`);
  oneLineError(t, uniso(['info', '--trust', pub, image]), names, problem, `${what}: info`);
  const out = subdir('extract-refused');
  const r = uniso(['extract', '--trust', pub, image, PROXMOX, '-o', path.join(out, 'x.tar.gz')]);
  oneLineError(t, r, names, problem, `${what}: extract`);
  t.same(fs.readdirSync(out), [], `${what}: extract wrote no output file (nor a temp file)`);
  const s = uniso(['extract', '--trust', pub, image, PROXMOX, '-o', '-']);
  t.equal(s.out.length, 0, `${what}: extract -o - wrote nothing to stdout`);
}

t.test('--trust with another key pair\'s public key: refused', async (t) => {
  refusedEverywhere(t, signed, `${B}.pub`, `${signed}: signature does not match ${B}.pub`, /\(not signed by that key, or the manifest was changed\)$/, 'other key');
});

t.test('--trust on an unsigned image: refused', async (t) => {
  refusedEverywhere(t, unsigned, `${A}.pub`, `${unsigned}: not signed (no /uniso/uniso.json.sig), but --trust was given`, /not signed/, 'unsigned');
  t.equal(mustUniso(['ls', unsigned]).code, 0, 'without --trust the unsigned image is read');
});

t.test('a signature with one bit flipped: refused', async (t) => {
  const iso = path.join(subdir('flipped'), 'flipped.iso');
  fs.copyFileSync(signed, iso);
  const ext = isoExtent(iso, `/${SIG}`);
  t.equal(ext.size, 64, `xorriso finds /${SIG} (64 bytes at ${ext.offset})`);
  const x = xorrisoExtract(signed, 'x-before-flip');
  const sigBefore = fs.readFileSync(path.join(x, SIG));
  t.ok(fs.readFileSync(signed).subarray(ext.offset, ext.offset + 64).equals(sigBefore), 'those bytes are the signature');
  flipBit(iso, ext.offset + 17, 3);
  const y = xorrisoExtract(iso, 'x-after-flip');
  const sigAfter = fs.readFileSync(path.join(y, SIG));
  t.equal(sigAfter.length, 64, 'still 64 bytes');
  t.equal([...sigAfter].reduce((n, b, i) => n + ((b ^ sigBefore[i]).toString(2).split('1').length - 1), 0), 1, 'one bit differs');
  t.equal(mustUniso(['ls', iso]).code, 0, 'the image still reads without --trust');
  refusedEverywhere(t, iso, `${A}.pub`, `${iso}: signature does not match ${A}.pub`, /manifest was changed\)$/, 'flipped bit');
});

t.test('an extracted directory: signed is accepted, a manifest changed by one byte refused', async (t) => {
  const dir = xorrisoExtract(signed, 'x-dir');
  t.equal(mustUniso(['verify', '-q', '--trust', `${A}.pub`, dir]).code, 0, 'verify --trust of the extracted directory');
  t.equal(mustUniso(['ls', '--trust', `${A}.pub`, path.join(dir, 'uniso')]).code, 0, 'ls --trust of its uniso/ directory');
  refusedEverywhere(t, dir, `${B}.pub`, `${dir}: signature does not match ${B}.pub`, /not signed by that key/, 'directory, other key');

  const changed = xorrisoExtract(signed, 'x-changed');
  const mPath = path.join(changed, 'uniso/uniso.json');
  const m = fs.readFileSync(mPath);
  const at = m.indexOf('"name": "turnkey-fixture') + '"name": "'.length;
  t.ok(at > 20, 'the manifest names the appliance');
  m[at] = 'T'.charCodeAt(0); // turnkey-fixture -> Turnkey-fixture: still valid JSON
  fs.writeFileSync(mPath, m);
  // without --trust the change is caught too (the name is not the catalog's), as damage
  oneLineError(t, uniso(['ls', changed]), changed, /manifest is damaged \(its appliance name is not the catalog's\)/, 'the changed manifest, without --trust');
  refusedEverywhere(t, changed, `${A}.pub`, `${changed}: signature does not match ${A}.pub`, /manifest was changed\)$/, 'manifest changed by one byte');

  // the signature is checked before anything else: before the manifest is parsed and the catalog read
  const damaged = xorrisoExtract(signed, 'x-damaged');
  const cat = path.join(damaged, 'uniso/catalog.sqlite');
  const c = fs.readFileSync(cat);
  c[c.length - 100] ^= 0xff;
  fs.writeFileSync(cat, c);
  oneLineError(t, uniso(['ls', '--trust', `${A}.pub`, damaged]), damaged, /catalog is damaged/, 'damaged catalog, the signer\'s key');
  oneLineError(t, uniso(['ls', '--trust', `${B}.pub`, damaged]), `${damaged}: signature does not match ${B}.pub`, /not signed by that key/,
    'damaged catalog, another key: the signature is refused first');
  fs.writeFileSync(path.join(damaged, 'uniso/uniso.json'), '{ not json\n');
  oneLineError(t, uniso(['ls', damaged]), damaged, /not valid JSON/, 'a manifest that is not JSON');
  oneLineError(t, uniso(['ls', '--trust', `${A}.pub`, damaged]), `${damaged}: signature does not match ${A}.pub`, /manifest was changed/,
    'a manifest that is not JSON, --trust: the signature is refused first');

  fs.rmSync(path.join(dir, SIG));
  refusedEverywhere(t, dir, `${A}.pub`, `${dir}: not signed (no /uniso/uniso.json.sig)`, /but --trust was given$/, 'directory without the signature');
});

t.test('--trust with a bad public key file: one line naming it', async (t) => {
  const d = subdir('bad-pub');
  const junk = path.join(d, 'junk.pub');
  fs.writeFileSync(junk, 'not a key\n');
  const rsa = path.join(d, 'rsa.pub');
  must('openssl', ['genpkey', '-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:1024', '-out', path.join(d, 'rsa.key')]);
  must('openssl', ['pkey', '-in', path.join(d, 'rsa.key'), '-pubout', '-out', rsa]);
  for (const [file, problem, what] of [
    [path.join(d, 'missing.pub'), /no such file or directory/, 'missing'],
    [junk, /not a PEM public key/, 'not a key'],
    [rsa, /not an Ed25519 public key \(RSA\)/, 'an RSA key'],
    [`${A}.key`, /is a private key; --trust takes the public key/, 'the private key'],
    [signed, /not a key file/, 'the image itself'],
  ] as const) {
    oneLineError(t, uniso(['ls', '--trust', file, signed]), file, problem, `ls --trust ${what}`);
    const out = subdir('extract-bad-pub');
    oneLineError(t, uniso(['extract', '--trust', file, signed, PROXMOX, '-o', path.join(out, 'x')]), file, problem, `extract --trust ${what}`);
    t.same(fs.readdirSync(out), [], `extract --trust ${what}: no output file`);
  }
});

t.test('serve --trust: serves with the signer\'s key, refuses another before listening', async (t) => {
  const port = await freePort();
  const bad = run(process.execPath, [UNISO, 'serve', signed, '--http', `127.0.0.1:${port}`, '--trust', `${B}.pub`], { timeout: 30000 });
  oneLineError(t, bad, `${signed}: signature does not match ${B}.pub`, /not signed by that key/, 'serve --trust other key');

  const good = spawn(process.execPath, [UNISO, 'serve', signed, '--http', `127.0.0.1:${port}`, '-q', '--trust', `${A}.pub`], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  good.stderr!.on('data', (b: Buffer) => { stderr += b.toString(); });
  const exited = new Promise<void>((resolve) => good.on('exit', () => resolve()));
  t.teardown(async () => {
    if (good.exitCode === null) {
      good.kill('SIGTERM');
      await exited;
    }
  });
  let body: Buffer | undefined;
  const end = Date.now() + 20000;
  while (!body && Date.now() < end && good.exitCode === null) {
    try {
      const res = await fetch(`http://127.0.0.1:${port}/README.txt`);
      if (res.status === 200) body = Buffer.from(await res.arrayBuffer());
    } catch {
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  t.ok(body, `serve --trust with the signer's key answers ${stderr}`);
  t.ok(body?.equals(mustUniso(['extract', signed, 'README.txt', '-o', '-']).out), 'and serves README.txt');
});

t.test('mount --trust: mounts with the signer\'s key; another key is refused before mounting', async (t) => {
  const root = subdir('mnt');
  const mnt = path.join(root, 'mnt');
  const u = path.join(root, 'unsigned-mnt');
  fs.mkdirSync(mnt);
  fs.mkdirSync(u);
  unmountAtTeardown(t, mnt);
  unmountAtTeardown(t, u);
  const r = uniso(['mount', '--trust', `${B}.pub`, signed, mnt]);
  oneLineError(t, r, `${signed}: signature does not match ${B}.pub`, /not signed by that key/, 'mount --trust other key');
  t.notOk(isMounted(mnt), 'not mounted');
  t.same(fs.readdirSync(mnt), [], 'the mount point stays empty');
  t.ok(await waitUntil(() => daemonsOf(mnt).length === 0, 10000), `no daemon left (${daemonsOf(mnt).join('; ')})`);
  t.notMatch(mustUniso(['status']).stdout, mnt, 'uniso status knows no mount there');

  const f = run(process.execPath, [UNISO, 'mount', '-f', '--trust', `${B}.pub`, signed, mnt], { timeout: 30000 });
  t.not(f.code, 0, 'mount -f --trust other key: exits non-zero');
  t.match(f.stderr, `${signed}: signature does not match ${B}.pub`, 'mount -f: says why');
  t.notOk(isMounted(mnt), 'mount -f: not mounted');
  t.ok(await waitUntil(() => daemonsOf(mnt).length === 0, 10000), 'mount -f: no daemon left');

  oneLineError(t, uniso(['mount', '--trust', `${A}.pub`, unsigned, u]), `${unsigned}: not signed`, /but --trust was given/, 'mount --trust of an unsigned image');
  t.notOk(isMounted(u), 'unsigned: not mounted');
  t.ok(await waitUntil(() => daemonsOf(u).length === 0, 10000), 'unsigned: no daemon left');

  if (isMounted(mnt)) uniso(['umount', mnt]); // left by a failed check above
  mountOn(t, signed, mnt, ['--trust', `${A}.pub`]);
  t.ok(isMounted(mnt), 'mount --trust with the signer\'s key mounts');
  t.ok(fs.readFileSync(path.join(mnt, 'README.txt')).equals(mustUniso(['extract', signed, 'README.txt', '-o', '-']).out), 'and reads');
  t.match(mustUniso(['status']).stdout, mnt, 'uniso status lists it');
  mustUniso(['umount', mnt]);
});

t.test('build --sign with a bad key: one line, no output, before the input is read', async (t) => {
  const d = subdir('bad-sign');
  const junk = path.join(d, 'junk.key');
  fs.writeFileSync(junk, '-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n-----END PRIVATE KEY-----\n');
  const rsa = path.join(d, 'rsa.key');
  must('openssl', ['genpkey', '-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:1024', '-out', rsa]);
  // an input that fails when read: the key's error comes first only if the key is checked before the build starts
  const notIso = path.join(d, 'notes.txt');
  fs.writeFileSync(notIso, 'this is not an appliance\n'.repeat(100));
  for (const [file, problem, what] of [
    [path.join(d, 'missing.key'), /no such file or directory \(the --sign key\)/, 'missing'],
    [`${A}.pub`, /is a public key; --sign needs the private key/, 'a public key'],
    [junk, /not a PEM private key/, 'not a key'],
    [rsa, /not an Ed25519 private key \(RSA\)/, 'an RSA key'],
  ] as const) {
    for (const input of [fx.iso, notIso]) {
      const out = subdir('bad-sign-out');
      const r = uniso(['build', input, '-o', path.join(out, 'u.iso'), '-q', '--disk-size', '256M', '--sign', file]);
      oneLineError(t, r, file, problem, `build --sign ${what} (${path.basename(input)})`);
      t.same(fs.readdirSync(out), [], `build --sign ${what}: no output, no temp file or build directory`);
    }
  }
});
