// Real certificates, as virt-operator makes them: a self-signed CA (ECDSA P-256) whose certificate
// goes into kubevirt-ca (and whose key stays in the Secret kubevirt-ca), and the per-node
// certificates the virt-handlers present to each other on the migration connection (both
// directions verified: server and client auth). Made by the openssl CLI because node:crypto cannot
// issue certificates.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface KeyPair {
  /** PEM certificate. */
  cert: string;
  /** PEM private key. */
  key: string;
}

function openssl(args: string[], cwd: string): void {
  try {
    execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') throw new Error('openssl not found: the KubeVirt stand-in needs the openssl CLI (APT package openssl, installed by hack/setup.sh)');
    throw e;
  }
}

function inTemp<T>(fn: (dir: string) => T): T {
  const dir = mkdtempSync(join(tmpdir(), 'standin-ca-'));
  try {
    return fn(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** A new self-signed CA (certificate and key). */
export function newCA(commonName: string, days = 7): KeyPair {
  return inTemp((dir) => {
    openssl([
      'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
      '-keyout', 'key.pem', '-out', 'ca.pem', '-days', String(days),
      '-subj', `/CN=${commonName}`, '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign',
    ], dir);
    return { cert: readFileSync(join(dir, 'ca.pem'), 'utf8'), key: readFileSync(join(dir, 'key.pem'), 'utf8') };
  });
}

/** The certificate of a new self-signed CA (what kubevirt-ca publishes). */
export function selfSignedCA(commonName: string, days = 7): string {
  return newCA(commonName, days).cert;
}

/** A certificate signed by `ca` for a node, valid for its IP addresses, for server and client auth. */
export function issueCert(ca: KeyPair, commonName: string, ips: readonly string[], days = 2): KeyPair {
  return inTemp((dir) => {
    writeFileSync(join(dir, 'ca.pem'), ca.cert);
    writeFileSync(join(dir, 'ca.key'), ca.key, { mode: 0o600 });
    writeFileSync(join(dir, 'ext'), `subjectAltName=${ips.map((ip) => `IP:${ip}`).join(',')}\nextendedKeyUsage=serverAuth,clientAuth\n`);
    openssl(['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', 'key.pem', '-out', 'csr.pem', '-subj', `/CN=${commonName}`], dir);
    openssl(['x509', '-req', '-in', 'csr.pem', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'cert.pem', '-days', String(days), '-extfile', 'ext'], dir);
    return { cert: readFileSync(join(dir, 'cert.pem'), 'utf8'), key: readFileSync(join(dir, 'key.pem'), 'utf8') };
  });
}
