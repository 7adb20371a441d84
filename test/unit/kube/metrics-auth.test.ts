// The metrics endpoint's authentication and authorization, against a scripted API server (what
// the reviews answer is the API server's business; test/integration/metrics-auth.test.ts asks a
// real one): which status each answer maps to, what is sent, what is cached, and that the
// endpoint speaks HTTPS with a certificate for the names scrapers dial.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate, createPublicKey } from 'node:crypto';
import { request } from 'node:https';
import { Registry } from 'prom-client';
import { kubeMetricsAuth, type MetricsAuthorizer } from '../../../src/kube/metrics-auth.ts';
import { selfSignedCert } from '../../../src/util/self-signed-cert.ts';
import { authorized, metricsHandler, serveHttp } from '../../../src/kube/secure-serving.ts';
import type { RestClient } from '../../../src/kube/rest.ts';

interface Call { path: string; body: { spec: Record<string, unknown> } }

/** A RestClient stand-in: token "good-*" authenticates as user "<token>-user"; users in `allowed` may get. */
function scriptedApi(allowed: string[], fail = false) {
  const calls: Call[] = [];
  const rest = {
    async request<T>(_method: string, path: string, opts: { body?: unknown } = {}): Promise<T> {
      const body = opts.body as Call['body'];
      calls.push({ path, body });
      if (fail) throw new Error('connect ECONNREFUSED');
      if (path.endsWith('/tokenreviews')) {
        const token = String(body.spec.token);
        const ok = token.startsWith('good-');
        return { status: ok ? { authenticated: true, user: { username: `${token}-user`, uid: 'u1', groups: ['g1'] } } : { authenticated: false } } as T;
      }
      return { status: { allowed: allowed.includes(String(body.spec.user)) } } as T;
    },
  };
  return { rest: rest as unknown as RestClient, calls };
}

test('metrics auth: 401 without or with a bad token, 403 without the right, 200 with it', async () => {
  const api = scriptedApi(['good-reader-user']);
  const auth = kubeMetricsAuth(api.rest);
  assert.equal((await auth.check(undefined, '/metrics')).status, 401);
  assert.equal((await auth.check('Basic dXNlcjpwdw==', '/metrics')).status, 401);
  assert.equal(api.calls.length, 0, 'no review without a bearer token');
  assert.equal((await auth.check('Bearer bad', '/metrics')).status, 401);
  assert.equal(api.calls.length, 1, 'a rejected token is not sent to the access review');
  assert.equal((await auth.check('Bearer good-intruder', '/metrics')).status, 403);
  assert.deepEqual(await auth.check('bearer good-reader', '/metrics'), { status: 200, user: 'good-reader-user' });
  const sar = api.calls.at(-1);
  assert.equal(sar?.path, '/apis/authorization.k8s.io/v1/subjectaccessreviews');
  assert.deepEqual(sar?.body.spec, { user: 'good-reader-user', uid: 'u1', groups: ['g1'], extra: undefined, nonResourceAttributes: { path: '/metrics', verb: 'get' } });
});

test('metrics auth: answers are cached per token and path, allowed longer than denied', async () => {
  let now = 0;
  const api = scriptedApi(['good-reader-user']);
  const auth = kubeMetricsAuth(api.rest, { allowedTtlMs: 120_000, deniedTtlMs: 10_000, now: () => now });
  for (let i = 0; i < 5; i++) assert.equal((await auth.check('Bearer good-reader', '/metrics')).status, 200);
  for (let i = 0; i < 5; i++) assert.equal((await auth.check('Bearer good-intruder', '/metrics')).status, 403);
  assert.equal(auth.reviews(), 2, 'one review per token within the TTL');
  await auth.check('Bearer good-reader', '/other');
  assert.equal(auth.reviews(), 3, 'another path is another question');
  now = 10_001;
  await auth.check('Bearer good-reader', '/metrics');
  await auth.check('Bearer good-intruder', '/metrics');
  assert.equal(auth.reviews(), 4, 'the denial expired, the grant did not');
  now = 130_002;
  await auth.check('Bearer good-reader', '/metrics');
  assert.equal(auth.reviews(), 5);
  const small = kubeMetricsAuth(scriptedApi([]).rest, { maxEntries: 2, now: () => 0 });
  for (const t of ['a', 'b', 'c', 'a']) await small.check(`Bearer good-${t}`, '/metrics');
  assert.equal(small.reviews(), 4, 'the cache is bounded: the oldest token was dropped');
});

test('metrics auth: an API server failure is a 500, not cached, and never echoes the token', async () => {
  const api = scriptedApi([], true);
  const auth = kubeMetricsAuth(api.rest);
  const d = await auth.check('Bearer good-secret-token', '/metrics');
  assert.ok(d.status === 500 && !d.message.includes('secret-token'), JSON.stringify(d));
  await auth.check('Bearer good-secret-token', '/metrics');
  assert.equal(auth.reviews(), 2);
});

function get(port: number, path: string, headers: Record<string, string>, ca: string): Promise<{ status: number; body: string; authenticate?: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, headers, ca, servername: 'localhost', agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (d: string) => { body += d; });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, authenticate: res.headers['www-authenticate'] }));
    });
    req.on('error', reject);
    req.end();
  });
}

test('metrics server: HTTPS with the self-signed certificate, every path behind the authorizer', async () => {
  const cert = selfSignedCert({ commonName: 'cloudnet-operator-metrics', dnsNames: ['localhost'], ipAddresses: ['127.0.0.1', '::1'] });
  const x = new X509Certificate(cert.certPem);
  assert.ok(x.verify(createPublicKey(cert.keyPem)), 'self-signed by its own key');
  assert.equal(x.ca, false);
  assert.equal(x.checkHost('localhost'), 'localhost');
  assert.equal(x.checkIP('127.0.0.1'), '127.0.0.1');
  assert.equal(x.checkIP('::1'), '::1');
  const registry = new Registry();
  const asked: string[] = [];
  const authorizer: MetricsAuthorizer = {
    async check(h, path) {
      asked.push(path);
      if (!h) return { status: 401, message: 'Unauthorized' };
      return h === 'Bearer ok' ? { status: 200, user: 'u' } : { status: 403, message: 'Forbidden' };
    },
  };
  const bound = await serveHttp('127.0.0.1:0', authorized(authorizer, metricsHandler(registry)), cert);
  assert.ok(bound);
  try {
    const none = await get(bound.port, '/metrics', {}, cert.certPem);
    assert.equal(none.status, 401);
    assert.equal(none.authenticate, 'Bearer');
    assert.equal((await get(bound.port, '/metrics', { authorization: 'Bearer nope' }, cert.certPem)).status, 403);
    assert.equal((await get(bound.port, '/metrics', { authorization: 'Bearer ok' }, cert.certPem)).status, 200);
    assert.equal((await get(bound.port, '/debug', {}, cert.certPem)).status, 401, 'unknown paths are not revealed to strangers');
    assert.equal((await get(bound.port, '/debug', { authorization: 'Bearer ok' }, cert.certPem)).status, 404);
    assert.deepEqual(asked, ['/metrics', '/metrics', '/metrics', '/debug', '/debug']);
  } finally {
    await bound.close();
  }
});
