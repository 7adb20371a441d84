// A minimal X.509 issuer on node:crypto: a self-signed CA and leaf certificates it signs, ECDSA
// P-256 with SHA-256. node:crypto makes keys and signs bytes but has no certificate builder, and
// the operator image carries no openssl CLI, so the DER is assembled here. It covers exactly what
// the storage agents' mutual TLS needs (test/unit/storage/x509.test.ts checks the result with
// node's X509Certificate, openssl and a real TLS 1.3 handshake):
//   - CA: basicConstraints CA:TRUE pathlen 0, keyUsage keyCertSign+cRLSign, subject key id;
//   - leaf: basicConstraints CA:FALSE, keyUsage digitalSignature, extKeyUsage serverAuth and/or
//     clientAuth, subjectAltName URIs (the agent's identity), authority/subject key ids.
import { createHash, generateKeyPairSync, randomBytes, sign, type KeyObject } from 'node:crypto';

// ---- DER

function len(n: number): Buffer {
  if (n < 0x80) return Buffer.from([n]);
  const bytes: number[] = [];
  for (let v = n; v > 0; v = Math.floor(v / 256)) bytes.unshift(v & 0xff);
  return Buffer.from([0x80 | bytes.length, ...bytes]);
}

const tlv = (tag: number, content: Buffer): Buffer => Buffer.concat([Buffer.from([tag]), len(content.length), content]);
const seq = (...parts: Buffer[]): Buffer => tlv(0x30, Buffer.concat(parts));
const set = (...parts: Buffer[]): Buffer => tlv(0x31, Buffer.concat(parts));
const explicit = (n: number, inner: Buffer): Buffer => tlv(0xa0 + n, inner);
const octets = (b: Buffer): Buffer => tlv(0x04, b);
const bool = (v: boolean): Buffer => tlv(0x01, Buffer.from([v ? 0xff : 0x00]));
const utf8 = (s: string): Buffer => tlv(0x0c, Buffer.from(s, 'utf8'));
const bits = (b: Buffer, unused = 0): Buffer => tlv(0x03, Buffer.concat([Buffer.from([unused]), b]));

function uint(b: Buffer): Buffer {
  let i = 0;
  while (i < b.length - 1 && b[i] === 0) i++;
  const v = b.subarray(i);
  return tlv(0x02, v[0] & 0x80 ? Buffer.concat([Buffer.from([0]), v]) : v);
}

function oid(dotted: string): Buffer {
  const [a, b, ...rest] = dotted.split('.').map(Number);
  const out = [40 * a + b];
  for (const n of rest) {
    const chunk: number[] = [n & 0x7f];
    for (let v = Math.floor(n / 128); v > 0; v = Math.floor(v / 128)) chunk.unshift(0x80 | (v & 0x7f));
    out.push(...chunk);
  }
  return tlv(0x06, Buffer.from(out));
}

/** UTCTime until 2049, GeneralizedTime from 2050 (RFC 5280 4.1.2.5). */
function time(d: Date): Buffer {
  const iso = d.toISOString().replace(/[-:T]/g, '').slice(0, 14); // YYYYMMDDHHMMSS
  return d.getUTCFullYear() < 2050 ? tlv(0x17, Buffer.from(`${iso.slice(2)}Z`)) : tlv(0x18, Buffer.from(`${iso}Z`));
}

const OID = {
  ecdsaSha256: '1.2.840.10045.4.3.2',
  commonName: '2.5.4.3',
  organization: '2.5.4.10',
  subjectKeyId: '2.5.29.14',
  keyUsage: '2.5.29.15',
  subjectAltName: '2.5.29.17',
  basicConstraints: '2.5.29.19',
  authorityKeyId: '2.5.29.35',
  extKeyUsage: '2.5.29.37',
  serverAuth: '1.3.6.1.5.5.7.3.1',
  clientAuth: '1.3.6.1.5.5.7.3.2',
} as const;

function name(commonName: string, organization?: string): Buffer {
  const rdns = [];
  if (organization) rdns.push(set(seq(oid(OID.organization), utf8(organization))));
  rdns.push(set(seq(oid(OID.commonName), utf8(commonName))));
  return seq(...rdns);
}

const extension = (id: string, critical: boolean, value: Buffer): Buffer => seq(oid(id), ...(critical ? [bool(true)] : []), octets(value));

// ---- certificates

export interface Issued {
  certPem: string;
  keyPem: string;
}

export interface CertificateAuthority extends Issued {
  key: KeyObject;
  /** Subject key identifier (the issuer's key id in the leaves). */
  keyId: Buffer;
  subject: Buffer;
}

export interface LeafRequest {
  commonName: string;
  /** subjectAltName URIs: the identity a peer checks. */
  uris?: string[];
  usage: Array<'server' | 'client'>;
  days?: number;
}

const keyIdOf = (spkiDer: Buffer): Buffer => createHash('sha1').update(spkiDer).digest();
const ALG = seq(oid(OID.ecdsaSha256));

function toPem(der: Buffer): string {
  const b64 = der.toString('base64').replace(/.{64}/g, '$&\n').replace(/\n$/, '');
  return `-----BEGIN CERTIFICATE-----\n${b64}\n-----END CERTIFICATE-----\n`;
}

function certificate(o: { subject: Buffer; issuer: Buffer; spki: Buffer; signer: KeyObject; days: number; extensions: Buffer[] }): string {
  const serial = randomBytes(16);
  serial[0] &= 0x7f;
  serial[0] |= 0x01; // positive, and never a leading zero byte to strip
  // A little backdating absorbs clock skew between the operator's node and the agents' nodes.
  const notBefore = new Date(Date.now() - 5 * 60_000);
  const notAfter = new Date(Date.now() + o.days * 86_400_000);
  const tbs = seq(explicit(0, uint(Buffer.from([2]))), uint(serial), ALG, o.issuer, seq(time(notBefore), time(notAfter)), o.subject, o.spki, explicit(3, seq(...o.extensions)));
  const signature = sign('sha256', tbs, { key: o.signer, dsaEncoding: 'der' });
  return toPem(seq(tbs, ALG, bits(signature)));
}

function newKey(): { key: KeyObject; keyPem: string; spki: Buffer } {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  return { key: privateKey, keyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(), spki: publicKey.export({ type: 'spki', format: 'der' }) };
}

/** A self-signed CA that signs leaves only (pathlen 0). */
export function createCA(commonName: string, organization?: string, days = 30): CertificateAuthority {
  const { key, keyPem, spki } = newKey();
  const subject = name(commonName, organization);
  const keyId = keyIdOf(spki);
  const certPem = certificate({
    subject, issuer: subject, spki, signer: key, days,
    extensions: [
      extension(OID.basicConstraints, true, seq(bool(true), uint(Buffer.from([0])))),
      // keyCertSign (bit 5) and cRLSign (bit 6): 0000 0110 -> one unused trailing bit
      extension(OID.keyUsage, true, bits(Buffer.from([0x06]), 1)),
      extension(OID.subjectKeyId, false, octets(keyId)),
    ],
  });
  return { certPem, keyPem, key, keyId, subject };
}

/** A leaf certificate signed by `ca`. */
export function issueLeaf(ca: CertificateAuthority, req: LeafRequest, organization?: string): Issued {
  const { keyPem, spki } = newKey();
  const eku = req.usage.map((u) => oid(u === 'server' ? OID.serverAuth : OID.clientAuth));
  const extensions = [
    extension(OID.basicConstraints, true, seq()),
    // digitalSignature (bit 0): 1000 0000 -> seven unused trailing bits
    extension(OID.keyUsage, true, bits(Buffer.from([0x80]), 7)),
    extension(OID.extKeyUsage, false, seq(...eku)),
    extension(OID.subjectKeyId, false, octets(keyIdOf(spki))),
    extension(OID.authorityKeyId, false, seq(tlv(0x80, ca.keyId))),
  ];
  // GeneralName uniformResourceIdentifier is [6] IMPLICIT IA5String.
  if (req.uris?.length) extensions.push(extension(OID.subjectAltName, false, seq(...req.uris.map((u) => tlv(0x86, Buffer.from(u, 'ascii'))))));
  const certPem = certificate({ subject: name(req.commonName, organization), issuer: ca.subject, spki, signer: ca.key, days: req.days ?? 30, extensions });
  return { certPem, keyPem };
}
