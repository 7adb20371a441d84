// Who may talk to a storage agent. Every migration gets its own CA, made by the operator when it
// launches the agents (the CA's private key is dropped once the leaves are signed), one leaf per
// party and one random token:
//   source   the source agent: TLS client of the target's data port and of its HTTP API, and the
//            server of its own HTTP API;
//   target   the target agent: server of the data port and of its HTTP API;
//   operator the operator: client of both HTTP APIs.
// A party's role is the subjectAltName URI `cloudnet-agent://<migration uid>/<role>` of its leaf.
// Every connection is TLS 1.3 with certificates on both sides, checked against the migration's CA
// (a certificate of another migration's CA fails the handshake) and for the role the endpoint
// expects; every HTTP request and every data-port hello also carries the token. A peer that fails
// any of this is refused before it reaches the volume or the guest.
import { createHash, randomBytes, timingSafeEqual, X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { PeerCertificate, TlsOptions, ConnectionOptions } from 'node:tls';
import { createCA, issueLeaf } from './x509.ts';

export type AgentRole = 'source' | 'target' | 'operator';
export const AGENT_ROLES: readonly AgentRole[] = ['source', 'target', 'operator'];

export interface AgentCredentials {
  /** PEM of the migration's CA (the only trust anchor). */
  ca: string;
  /** PEM certificate and PKCS#8 key of this party. */
  cert: string;
  key: string;
  /** The migration's token (sent as `Authorization: Bearer` and in the data-port hello). */
  token: string;
}

/** File names inside a credentials directory (a mounted Secret): also the Secret's data keys. */
export const CREDENTIAL_FILES = { ca: 'ca.crt', cert: 'tls.crt', key: 'tls.key', token: 'token' } as const;

const SCHEME = 'cloudnet-agent:';

export function identityURI(migration: string, role: AgentRole): string {
  return `${SCHEME}//${migration}/${role}`;
}

/** The (migration, role) a certificate's subjectAltName names, if it names exactly one. */
export function identityOf(subjectAltName: string | undefined): { migration: string; role: AgentRole } | undefined {
  const uris = (subjectAltName ?? '').split(/,\s*/).filter((s) => s.startsWith(`URI:${SCHEME}//`)).map((s) => s.slice(4));
  if (uris.length !== 1) return undefined;
  const m = /^cloudnet-agent:\/\/([A-Za-z0-9-]{1,64})\/(source|target|operator)$/.exec(uris[0]);
  return m ? { migration: m[1], role: m[2] as AgentRole } : undefined;
}

const identities = new WeakMap<AgentCredentials, { migration: string; role: AgentRole }>();

/** Own identity, from the credentials' certificate. */
export function ownIdentity(c: AgentCredentials): { migration: string; role: AgentRole } {
  let id = identities.get(c);
  if (!id) {
    id = identityOf(new X509Certificate(c.cert).subjectAltName);
    if (!id) throw new Error('the agent certificate names no cloudnet-agent identity');
    identities.set(c, id);
  }
  return id;
}

/** A fresh CA, one leaf per role and a token, for one migration. The CA key is not returned. */
export function issueMigrationCredentials(migration: string, days = 30): Record<AgentRole, AgentCredentials> {
  const ca = createCA(`cloudnet migration ${migration}`, 'cloudnet.io', days);
  const token = randomBytes(32).toString('base64url');
  const leaf = (role: AgentRole, usage: Array<'server' | 'client'>): AgentCredentials => {
    const l = issueLeaf(ca, { commonName: `cloudnet-agent-${role}`, uris: [identityURI(migration, role)], usage, days }, 'cloudnet.io');
    return { ca: ca.certPem, cert: l.certPem, key: l.keyPem, token };
  };
  return { source: leaf('source', ['server', 'client']), target: leaf('target', ['server']), operator: leaf('operator', ['client']) };
}

/** Reads credentials from a directory holding CREDENTIAL_FILES (a mounted Secret). */
export function loadCredentials(dir: string): AgentCredentials {
  const read = (f: string) => readFileSync(join(dir, f), 'utf8');
  const c = { ca: read(CREDENTIAL_FILES.ca), cert: read(CREDENTIAL_FILES.cert), key: read(CREDENTIAL_FILES.key), token: read(CREDENTIAL_FILES.token).trim() };
  if (c.token.length < 32) throw new Error(`${join(dir, CREDENTIAL_FILES.token)}: token too short`);
  ownIdentity(c);
  return c;
}

/** Constant-time comparison of tokens (hashed first, so lengths leak nothing either). */
export function tokenMatches(expected: string, presented: string | undefined): boolean {
  if (presented === undefined) return false;
  const h = (s: string) => createHash('sha256').update(s).digest();
  return timingSafeEqual(h(expected), h(presented));
}

/** The role of an authenticated TLS peer of this migration, or undefined. */
export function peerRole(own: AgentCredentials, peer: PeerCertificate | undefined): AgentRole | undefined {
  if (!peer || !peer.subjectaltname) return undefined;
  const id = identityOf(peer.subjectaltname);
  return id && id.migration === ownIdentity(own).migration ? id.role : undefined;
}

/** Server side: TLS 1.3, a client certificate from the migration's CA required. */
export function serverTlsOptions(c: AgentCredentials): TlsOptions {
  return { ca: c.ca, cert: c.cert, key: c.key, requestCert: true, rejectUnauthorized: true, minVersion: 'TLSv1.3' };
}

/**
 * Client side: TLS 1.3 with our certificate; the server must present a certificate of the
 * migration's CA naming `expect`. Agents are addressed by pod IP, which no certificate can name
 * in advance, so the role URI replaces the host name check.
 */
export function clientTlsOptions(c: AgentCredentials, expect: AgentRole): ConnectionOptions {
  const migration = ownIdentity(c).migration;
  return {
    ca: c.ca, cert: c.cert, key: c.key, rejectUnauthorized: true, minVersion: 'TLSv1.3',
    checkServerIdentity: (_host, cert) => {
      const id = identityOf(cert.subjectaltname);
      if (!id || id.migration !== migration || id.role !== expect) return new Error(`the peer is not the ${expect} agent of this migration`);
      return undefined;
    },
  };
}
