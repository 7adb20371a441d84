// X.509 material for the test clusters, made with the openssl CLI (node:crypto makes keys but
// cannot sign certificates). P-256 keys keep generation in the milliseconds: a cluster needs a
// CA, a serving cert, an admin client cert and a service-account signing pair, and every
// RBAC test issues more client certs for restricted users.
import { execFile } from 'node:child_process';
import { generateKeyPair, randomBytes } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';

const execFileAsync = promisify(execFile);

export interface PemFiles {
  certPath: string;
  keyPath: string;
  certPem: string;
  keyPem: string;
}

export type CertAuthority = PemFiles;

export interface CertRequest {
  /** File name stem inside `dir`: writes `<name>.crt` and `<name>.key`. */
  name: string;
  commonName: string;
  /** X.509 O= entries; Kubernetes reads them as the user's groups. */
  organizations?: string[];
  dnsNames?: string[];
  ipAddresses?: string[];
  usage: 'server' | 'client';
  days?: number;
}

export interface SigningKeyPair {
  publicKeyPath: string;
  privateKeyPath: string;
}

async function openssl(args: string[]): Promise<void> {
  try {
    await execFileAsync('openssl', args, { timeout: 30_000 });
  } catch (err) {
    const e = err as NodeJS.ErrnoException & { stderr?: string };
    if (e.code === 'ENOENT') throw new Error('openssl CLI not found: install the Debian package "openssl" (hack/setup.sh)');
    throw new Error(`openssl ${args[0]} failed: ${e.stderr ?? e.message}`);
  }
}

async function newKeyPem(): Promise<{ privatePem: string; publicPem: string }> {
  const { privateKey, publicKey } = await promisify(generateKeyPair)('ec', { namedCurve: 'prime256v1' });
  return {
    privatePem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    publicPem: publicKey.export({ type: 'spki', format: 'pem' }).toString(),
  };
}

/** openssl's -subj syntax treats '/', '=', '+' and '\' specially; identities here never need them. */
function subjectPart(kind: 'O' | 'CN', value: string): string {
  if (!/^[A-Za-z0-9:._@ -]+$/.test(value)) throw new Error(`unsupported character in certificate ${kind}=${value}`);
  return `/${kind}=${value}`;
}

function serial(): string {
  return '0x' + randomBytes(16).toString('hex').replace(/^./, '1');
}

export async function createCertAuthority(dir: string, commonName: string): Promise<CertAuthority> {
  const keyPath = join(dir, 'ca.key');
  const certPath = join(dir, 'ca.crt');
  const { privatePem } = await newKeyPem();
  await writeFile(keyPath, privatePem, { mode: 0o600 });
  const extPath = join(dir, 'ca.ext');
  await writeFile(
    extPath,
    [
      '[req]',
      'distinguished_name = dn',
      'x509_extensions = ca',
      '[dn]',
      '[ca]',
      'basicConstraints = critical,CA:TRUE',
      'keyUsage = critical,keyCertSign,cRLSign,digitalSignature',
      'subjectKeyIdentifier = hash',
      '',
    ].join('\n'),
  );
  await openssl(['req', '-x509', '-new', '-config', extPath, '-key', keyPath, '-subj', subjectPart('CN', commonName),
    '-days', '3650', '-set_serial', serial(), '-out', certPath]);
  return { keyPath, certPath, keyPem: privatePem, certPem: await readFile(certPath, 'utf8') };
}

export async function issueCertificate(ca: CertAuthority, dir: string, req: CertRequest): Promise<PemFiles> {
  const keyPath = join(dir, `${req.name}.key`);
  const certPath = join(dir, `${req.name}.crt`);
  const csrPath = join(dir, `${req.name}.csr`);
  const extPath = join(dir, `${req.name}.ext`);
  const { privatePem } = await newKeyPem();
  await writeFile(keyPath, privatePem, { mode: 0o600 });
  const subject = (req.organizations ?? []).map((o) => subjectPart('O', o)).join('') + subjectPart('CN', req.commonName);
  const sans = [...(req.dnsNames ?? []).map((d) => `DNS:${d}`), ...(req.ipAddresses ?? []).map((ip) => `IP:${ip}`)];
  const ext = [
    'basicConstraints = critical,CA:FALSE',
    'keyUsage = critical,digitalSignature,keyEncipherment',
    `extendedKeyUsage = ${req.usage === 'server' ? 'serverAuth' : 'clientAuth'}`,
    'authorityKeyIdentifier = keyid',
  ];
  if (sans.length) ext.push(`subjectAltName = ${sans.join(',')}`);
  await writeFile(extPath, ext.join('\n') + '\n');
  await openssl(['req', '-new', '-config', '/dev/null', '-key', keyPath, '-subj', subject, '-out', csrPath]);
  await openssl(['x509', '-req', '-in', csrPath, '-CA', ca.certPath, '-CAkey', ca.keyPath, '-set_serial', serial(),
    '-days', String(req.days ?? 365), '-extfile', extPath, '-out', certPath]);
  return { keyPath, certPath, keyPem: privatePem, certPem: await readFile(certPath, 'utf8') };
}

/** The key pair kube-apiserver signs and verifies ServiceAccount tokens with. */
export async function createSigningKeyPair(dir: string, name: string): Promise<SigningKeyPair> {
  const { privatePem, publicPem } = await newKeyPem();
  const privateKeyPath = join(dir, `${name}.key`);
  const publicKeyPath = join(dir, `${name}.pub`);
  await writeFile(privateKeyPath, privatePem, { mode: 0o600 });
  await writeFile(publicKeyPath, publicPem);
  return { privateKeyPath, publicKeyPath };
}
