// Test helper: a throwaway TLS CA ("uniso test CA") and a server certificate
// it signed for 127.0.0.1 and localhost, made with the openssl CLI (EC P-256,
// well under a second). testCerts() makes one set per test process (shared by
// nginx and the fault server, removed when the process exits); makeTestCerts()
// makes a fresh, unrelated set in a given directory (e.g. for a "wrong CA" test).

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';

export interface TestCerts {
  /** PEM of the CA certificate: what a client must trust (curl --cacert, NODE_EXTRA_CA_CERTS). */
  caFile: string;
  /** PEM of the server certificate (subjectAltName IP:127.0.0.1, DNS:localhost). */
  certFile: string;
  /** PEM of the server's private key. */
  keyFile: string;
  /** The same three, read. */
  ca: string;
  cert: string;
  key: string;
}

// Our own config, so the system openssl.cnf's defaults do not matter.
const OPENSSL_CNF = `[req]
distinguished_name = dn
prompt = no
[dn]
CN = placeholder
[ca_ext]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[server_ext]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1, DNS:localhost
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid, issuer
`;

function openssl(args: string[]): void {
  const r = spawnSync('openssl', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  if (r.error) throw r.error;
  if (r.status !== 0) throw new Error(`openssl ${args.join(' ')} exited ${r.status}: ${r.stderr.trim()}`);
}

/** Make a CA and a server certificate signed by it in `dir` (which must exist). */
export function makeTestCerts(dir: string): TestCerts {
  const f = (n: string) => path.join(dir, n);
  fs.writeFileSync(f('openssl.cnf'), OPENSSL_CNF);
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];
  openssl(['req', '-x509', ...ec, '-config', f('openssl.cnf'), '-extensions', 'ca_ext', '-subj', '/CN=uniso test CA',
    '-days', '30', '-keyout', f('ca.key'), '-out', f('ca.pem')]);
  openssl(['req', '-new', ...ec, '-config', f('openssl.cnf'), '-subj', '/CN=127.0.0.1',
    '-keyout', f('server.key'), '-out', f('server.csr')]);
  openssl(['x509', '-req', '-in', f('server.csr'), '-CA', f('ca.pem'), '-CAkey', f('ca.key'),
    '-set_serial', '0x' + Date.now().toString(16), '-days', '30', '-extfile', f('openssl.cnf'), '-extensions', 'server_ext',
    '-out', f('server.pem')]);
  const read = (n: string) => fs.readFileSync(f(n), 'utf8');
  return {
    caFile: f('ca.pem'), certFile: f('server.pem'), keyFile: f('server.key'),
    ca: read('ca.pem'), cert: read('server.pem'), key: read('server.key'),
  };
}

let shared: TestCerts | undefined;

/** The CA and server certificate of this test process (made on first use, removed at exit). */
export function testCerts(): TestCerts {
  if (!shared) {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'uniso-certs-'));
    process.on('exit', () => fs.rmSync(dir, { recursive: true, force: true }));
    shared = makeTestCerts(dir);
  }
  return shared;
}
