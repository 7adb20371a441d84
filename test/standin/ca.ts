// A real self-signed CA certificate, as virt-operator publishes in kubevirt-ca (an ECDSA P-256
// CA; the stand-in only needs something that parses as X.509 like KubeVirt's does). Made by the
// openssl CLI because node:crypto cannot issue certificates.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export function selfSignedCA(commonName: string, days = 7): string {
  const dir = mkdtempSync(join(tmpdir(), 'standin-ca-'));
  try {
    execFileSync('openssl', [
      'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
      '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'ca.pem'), '-days', String(days),
      '-subj', `/CN=${commonName}`, '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign',
    ], { stdio: ['ignore', 'ignore', 'pipe'] });
    return readFileSync(join(dir, 'ca.pem'), 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') throw new Error('openssl not found: the KubeVirt stand-in needs the openssl CLI (APT package openssl, installed by hack/setup.sh)');
    throw e;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
