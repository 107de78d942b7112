// `uniso key generate PREFIX`: a new Ed25519 key pair for signing images,
// PREFIX.key (the private key, PKCS#8 PEM, mode 0600) and PREFIX.pub (the
// public key, SPKI PEM, for --trust). Each is written to a temp name and
// then linked into place, which fails rather than replace an existing file.

import * as fs from 'node:fs';
import * as path from 'node:path';
import { newKeyPair } from '../image/signature';
import { checkOutputDir, removeQuietly, tempNameFor } from '../util/atomic';
import { describeErrno, fileError } from '../util/errors';

function refuseExisting(file: string): void {
  let exists = true;
  try {
    fs.lstatSync(file);
  } catch {
    exists = false;
  }
  if (exists) throw fileError(file, 'already exists; not overwriting a key (remove it or give another PREFIX)');
}

/** Write `text` to a temp file beside `file`, created with `mode` (exactly that with `exact`, else less the umask); returns the temp name. */
function writeTemp(file: string, text: string, mode: number, exact: boolean): string {
  const tmp = tempNameFor(file);
  try {
    const fd = fs.openSync(tmp, 'wx', mode);
    try {
      if (exact) fs.fchmodSync(fd, mode);
      fs.writeFileSync(fd, text);
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
  } catch (e) {
    removeQuietly(tmp);
    throw fileError(file, `cannot write (${describeErrno(e)})`);
  }
  return tmp;
}

/** Give `tmp` the name `file` unless `file` exists (link, then drop the temp name; rename where links are not supported). */
function commitNew(tmp: string, file: string): void {
  try {
    fs.linkSync(tmp, file);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') {
      removeQuietly(tmp);
      refuseExisting(file);
    }
    if (code !== 'EPERM' && code !== 'ENOTSUP' && code !== 'EOPNOTSUPP' && code !== 'ENOSYS') {
      removeQuietly(tmp);
      throw fileError(file, `cannot write (${describeErrno(e)})`);
    }
    refuseExisting(file);
    fs.renameSync(tmp, file);
    return;
  }
  removeQuietly(tmp);
}

export function keyGenerate(prefix: string): { key: string; pub: string; fingerprint: string } {
  const key = `${prefix}.key`;
  const pub = `${prefix}.pub`;
  checkOutputDir(key);
  refuseExisting(key);
  refuseExisting(pub);
  const pair = newKeyPair();
  const keyTmp = writeTemp(path.resolve(key), pair.privatePem, 0o600, true);
  let pubTmp: string | undefined;
  try {
    pubTmp = writeTemp(path.resolve(pub), pair.publicPem, 0o644, false);
    commitNew(keyTmp, key);
  } catch (e) {
    removeQuietly(keyTmp);
    if (pubTmp) removeQuietly(pubTmp);
    throw e;
  }
  try {
    commitNew(pubTmp, pub);
  } catch (e) {
    removeQuietly(pubTmp);
    removeQuietly(key); // ours: made a moment ago, its public key is lost
    throw e;
  }
  return { key, pub, fingerprint: pair.fingerprint };
}
