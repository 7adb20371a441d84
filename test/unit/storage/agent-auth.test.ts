// The per-migration PKI of the storage agents: certificates made with node:crypto only are valid
// X.509 (node and openssl agree), name their role, and a TLS 1.3 handshake accepts exactly the
// migration's own parties.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { once } from 'node:events';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import {
  clientTlsOptions, identityOf, issueMigrationCredentials, ownIdentity, peerRole, serverTlsOptions, tokenMatches, type AgentCredentials, type AgentRole,
} from '../../../src/storage/agent-auth.ts';

const mig = issueMigrationCredentials('0b6f7e4c-1111-4222-8333-944445555666');
const other = issueMigrationCredentials('0b6f7e4c-aaaa-4bbb-8ccc-9ddddeeeefff');

test('each role gets a leaf of the migration CA that names it; the CA is a CA', () => {
  const ca = new X509Certificate(mig.source.ca);
  assert.equal(ca.ca, true);
  for (const role of ['source', 'target', 'operator'] as AgentRole[]) {
    const leaf = new X509Certificate(mig[role].cert);
    assert.equal(leaf.ca, false);
    assert.ok(leaf.checkIssued(ca) && leaf.verify(ca.publicKey), `${role} leaf is signed by the CA`);
    assert.deepEqual(ownIdentity(mig[role]), { migration: '0b6f7e4c-1111-4222-8333-944445555666', role });
    assert.equal(mig[role].token, mig.source.token);
  }
  assert.notEqual(other.source.token, mig.source.token);
  assert.equal(new X509Certificate(other.source.cert).verify(ca.publicKey), false);
});

test('openssl accepts the chain and reads the key usages', () => {
  const dir = mkdtempSync(join(tmpdir(), 'cn-x509-'));
  try {
    writeFileSync(join(dir, 'ca.pem'), mig.target.ca);
    writeFileSync(join(dir, 'target.pem'), mig.target.cert);
    writeFileSync(join(dir, 'operator.pem'), mig.operator.cert);
    assert.match(execFileSync('openssl', ['verify', '-CAfile', join(dir, 'ca.pem'), '-purpose', 'sslserver', join(dir, 'target.pem')], { encoding: 'utf8' }), /OK/);
    assert.match(execFileSync('openssl', ['verify', '-CAfile', join(dir, 'ca.pem'), '-purpose', 'sslclient', join(dir, 'operator.pem')], { encoding: 'utf8' }), /OK/);
    // The operator's certificate is a client certificate only: it cannot serve as an agent.
    assert.throws(() => execFileSync('openssl', ['verify', '-CAfile', join(dir, 'ca.pem'), '-purpose', 'sslserver', join(dir, 'operator.pem')], { stdio: 'pipe' }));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('identityOf wants exactly one cloudnet-agent URI with a known role', () => {
  assert.deepEqual(identityOf('URI:cloudnet-agent://abc/target'), { migration: 'abc', role: 'target' });
  assert.equal(identityOf('URI:cloudnet-agent://abc/target, URI:cloudnet-agent://abc/source'), undefined);
  assert.equal(identityOf('URI:cloudnet-agent://abc/admin'), undefined);
  assert.equal(identityOf('DNS:target'), undefined);
  assert.equal(identityOf(undefined), undefined);
});

test('tokens compare in constant time and only equal tokens match', () => {
  assert.ok(tokenMatches(mig.source.token, mig.source.token));
  assert.ok(!tokenMatches(mig.source.token, other.source.token));
  assert.ok(!tokenMatches(mig.source.token, ''));
  assert.ok(!tokenMatches(mig.source.token, undefined));
});

/** A TLS handshake from `client` (expecting `expect`) to a server holding `server`; the peer role the server saw. */
async function handshake(server: AgentCredentials, client: AgentCredentials, expect: AgentRole): Promise<{ ok: boolean; role?: AgentRole; error?: string }> {
  let role: AgentRole | undefined;
  const srv = tls.createServer(serverTlsOptions(server), (s) => { role = peerRole(server, s.getPeerCertificate()); s.end('x'); });
  srv.on('tlsClientError', () => undefined);
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  const port = (srv.address() as { port: number }).port;
  try {
    return await new Promise((resolve) => {
      const c = tls.connect({ host: '127.0.0.1', port, ...clientTlsOptions(client, expect) });
      c.on('data', () => { c.end(); resolve({ ok: true, role }); });
      c.on('error', (e) => resolve({ ok: false, error: e.message }));
      c.on('close', () => resolve({ ok: false, error: 'closed' }));
    });
  } finally {
    srv.close();
  }
}

test('a TLS 1.3 handshake accepts the migration\'s parties and only them', async () => {
  assert.deepEqual(await handshake(mig.target, mig.source, 'target'), { ok: true, role: 'source' });
  assert.deepEqual(await handshake(mig.source, mig.operator, 'source'), { ok: true, role: 'operator' });
  // The client insists on the role it expects: a target cannot pass for a source.
  assert.equal((await handshake(mig.target, mig.operator, 'source')).ok, false);
  // Another migration's certificates fail both ways.
  assert.equal((await handshake(mig.target, other.source, 'target')).ok, false);
  assert.equal((await handshake(other.target, mig.source, 'target')).ok, false);
});
