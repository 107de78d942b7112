// Signatures of universal images (Ed25519, Node's crypto): the key files
// `uniso key generate` writes (PKCS#8 PEM private key, SPKI PEM public
// key) and reading them back for --sign and --trust, signing the
// manifest's bytes at build time (/uniso/uniso.json.sig), checking that
// signature against the key given with --trust, and key fingerprints.
// Ed25519 signatures are deterministic, so a signed build stays
// bit-for-bit reproducible. Nothing but the signature is stored: which key
// signed an image is known only by checking it against a key.
//
// What a good signature covers: the manifest's bytes exactly, and through
// them everything the manifest pins. The manifest holds the catalog's size
// and SHA-256 (checked before SQLite opens the catalog) and the pool's
// file list; the catalog holds every tree, every view's recipe (its
// literal bytes included) and SHA-256, the live squashfs's SHA-256, and
// the block table with each block's SHA-256 (first 128 bits: block_digests,
// src/pool/digests.ts). Under --trust the block store checks every block's
// stored bytes against that digest before using them (besides the 32-bit
// checks, which only catch damage), so mount, serve, extract and verify
// never hand out a byte the signer did not sign. Files of the ISO the
// manifest does not name (boot loader, kernel, initrd) are not covered.

import * as fs from 'node:fs';
import * as crypto from 'node:crypto';
import { ByteSource, preadFully } from '../io/source';
import { SIGNATURE_NAME, UNISO_DIR } from './layout';
import { describeErrno, fileError } from '../util/errors';

/** An Ed25519 signature's size. */
export const SIGNATURE_BYTES = 64;
/** Key files are a few hundred bytes; a larger file is not one (and is not read whole). */
const KEY_FILE_MAX = 64 * 1024;
/** Hex digits of a key's SHA-256 shown as its fingerprint. */
const FINGERPRINT_HEX = 16;

const SIG_PATH = `/${UNISO_DIR}/${SIGNATURE_NAME}`;

/** A key file's bytes; `option` (--sign, --trust) is named when the file cannot be read. */
function readKeyFile(file: string, option: string): Buffer {
  let st: fs.Stats;
  try {
    st = fs.statSync(file);
  } catch (e) {
    throw fileError(file, `${describeErrno(e)} (the ${option} key)`);
  }
  if (st.isDirectory()) throw fileError(file, 'is a directory, not a key file');
  if (st.size > KEY_FILE_MAX) throw fileError(file, `not a key file (${st.size} bytes; a PEM key made by uniso key generate is a few hundred)`);
  try {
    return fs.readFileSync(file);
  } catch (e) {
    throw fileError(file, `${describeErrno(e)} (the ${option} key)`);
  }
}

function tryKey(make: () => crypto.KeyObject): crypto.KeyObject | undefined {
  try {
    return make();
  } catch {
    return undefined;
  }
}

/** A PEM private key the user would have to unlock first (unsupported: uniso asks for no passphrase). */
function encrypted(pem: Buffer): boolean {
  return pem.includes('-----BEGIN ENCRYPTED PRIVATE KEY-----') || /Proc-Type: 4,ENCRYPTED/.test(pem.toString('latin1'));
}

function checkEd25519(file: string, key: crypto.KeyObject, what: string): crypto.KeyObject {
  if (key.asymmetricKeyType !== 'ed25519') {
    throw fileError(file, `not an Ed25519 ${what} (${key.asymmetricKeyType?.toUpperCase() ?? 'unknown type'}); make one with: uniso key generate PREFIX`);
  }
  return key;
}

/** The private key for `build --sign FILE`; a missing, public, non-Ed25519 or unreadable key is a one-line error naming the file. */
export function loadSigningKey(file: string): crypto.KeyObject {
  const pem = readKeyFile(file, '--sign');
  if (encrypted(pem)) throw fileError(file, 'private key is encrypted with a passphrase; uniso signs with an unencrypted key (uniso key generate)');
  const key = tryKey(() => crypto.createPrivateKey({ key: pem, format: 'pem' }));
  if (!key) {
    if (tryKey(() => crypto.createPublicKey({ key: pem, format: 'pem' }))) {
      throw fileError(file, 'is a public key; --sign needs the private key (PREFIX.key from uniso key generate)');
    }
    throw fileError(file, 'not a PEM private key (expected PREFIX.key from uniso key generate)');
  }
  return checkEd25519(file, key, 'private key');
}

/** The public key of `--trust FILE`; a missing, private, non-Ed25519 or unreadable key is a one-line error naming the file. */
export function loadTrustedKey(file: string): crypto.KeyObject {
  const pem = readKeyFile(file, '--trust');
  // createPublicKey takes a private key too (and derives its public key): refuse it, the user mixed up the files
  if (encrypted(pem) || tryKey(() => crypto.createPrivateKey({ key: pem, format: 'pem' }))) {
    throw fileError(file, 'is a private key; --trust takes the public key (PREFIX.pub from uniso key generate)');
  }
  const key = tryKey(() => crypto.createPublicKey({ key: pem, format: 'pem' }));
  if (!key) throw fileError(file, 'not a PEM public key (expected PREFIX.pub from uniso key generate)');
  return checkEd25519(file, key, 'public key');
}

/** The 32 bytes of an Ed25519 public key (of a private key: its public key's). */
function rawPublicKey(key: crypto.KeyObject): Buffer {
  const pub = key.type === 'private' ? crypto.createPublicKey(key) : key;
  return Buffer.from(pub.export({ format: 'jwk' }).x as string, 'base64url');
}

/** A key's fingerprint: the SHA-256 of its raw public key, hex, shortened. */
export function fingerprint(key: crypto.KeyObject): string {
  return crypto.createHash('sha256').update(rawPublicKey(key)).digest('hex').slice(0, FINGERPRINT_HEX);
}

/** A new Ed25519 key pair as PEM texts (PKCS#8 private key, SPKI public key) and its fingerprint. */
export function newKeyPair(): { privatePem: string; publicPem: string; fingerprint: string } {
  const { privateKey, publicKey } = crypto.generateKeyPairSync('ed25519');
  return {
    privatePem: privateKey.export({ type: 'pkcs8', format: 'pem' }) as string,
    publicPem: publicKey.export({ type: 'spki', format: 'pem' }) as string,
    fingerprint: fingerprint(publicKey),
  };
}

/** The signature of the manifest's bytes, exactly as written to the image. */
export function signManifest(manifest: Buffer, key: crypto.KeyObject): Buffer {
  return crypto.sign(null, manifest, key);
}

/** What openImage learned of an image's signature. */
export interface SignatureState {
  /** the image has /uniso/uniso.json.sig (checked only when `trustedKey` is set) */
  signed: boolean;
  /** fingerprint of the --trust key the signature was checked against (and matched) */
  trustedKey?: string;
}

/**
 * The signature of an image: `sig` is its /uniso/uniso.json.sig (undefined
 * when it has none), `manifest` the manifest's bytes as read. With `trust`
 * (a public key file) the signature must be there and verify over those
 * bytes, else a one-line error; without, it is only noted.
 */
export async function checkSignature(image: string, manifest: Buffer, sig: ByteSource | undefined, trust: string | undefined): Promise<SignatureState> {
  if (trust === undefined) return { signed: sig !== undefined };
  const key = loadTrustedKey(trust);
  if (!sig) throw fileError(image, `not signed (no ${SIG_PATH}), but --trust was given`);
  if (sig.size !== SIGNATURE_BYTES) {
    throw fileError(image, `${SIG_PATH} is not an Ed25519 signature (${sig.size} bytes, not ${SIGNATURE_BYTES})`);
  }
  const bytes = Buffer.alloc(SIGNATURE_BYTES);
  await preadFully(sig, bytes, 0, `${image}: ${SIG_PATH}`);
  if (!crypto.verify(null, manifest, key, bytes)) {
    throw fileError(image, `signature does not match ${trust} (not signed by that key, or the manifest was changed)`);
  }
  return { signed: true, trustedKey: fingerprint(key) };
}
