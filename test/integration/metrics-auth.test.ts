// The operator's /metrics as the chart runs it (kubebuilder v4's secure metrics), against a real
// kube-apiserver: the chart's RBAC is applied, the operator runs as its ServiceAccount, and
// scrapers present real ServiceAccount tokens. No token: 401; a token whose account lacks the
// chart's metrics-reader role: 403; one bound to it: 200. The probes stay open (the kubelet has no
// token), and without the chart's metrics-auth role the operator cannot vouch for anyone (500).
import assert from 'node:assert/strict';
import { get as httpGet } from 'node:http';
import { request } from 'node:https';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TLSSocket } from 'node:tls';
import { after, before, describe, it } from 'node:test';
import { startCluster, userKubeconfig, type Cluster } from '../env/cluster.ts';
import { helmTemplate, OPERATOR_ONLY } from '../../hack/packaging.ts';
import { OPERATOR_DEFAULTS, startOperator, type OperatorConfig, type RunningOperator } from '../../src/operator/main.ts';
import { kubectlIn, serviceAccountUser, type Kubectl } from './rbac-helpers.ts';

const NS = 'cloudnet-system';
const RELEASE = 'cloudnet';

let cluster: Cluster;
let work: string;
let k: Kubectl;
const operators: RunningOperator[] = [];

interface Reply { status: number; body: string; authenticate?: string; peerCertSAN?: string }

/** GET over HTTPS like a Prometheus with insecureSkipVerify (the certificate is self-signed). */
function scrape(port: number, path: string, token?: string): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request({
      host: '127.0.0.1', port, path, agent: false, rejectUnauthorized: false, timeout: 15_000,
      headers: token ? { authorization: `Bearer ${token}` } : {},
    }, (res) => {
      const san = (res.socket as TLSSocket).getPeerCertificate().subjectaltname;
      let body = '';
      res.setEncoding('utf8').on('data', (d: string) => { body += d; });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, authenticate: res.headers['www-authenticate'], peerCertSAN: san }));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end();
  });
}

function plainGet(port: number, path: string): Promise<number> {
  return new Promise((resolve, reject) => {
    httpGet({ host: '127.0.0.1', port, path, agent: false }, (res) => { res.resume(); resolve(res.statusCode ?? 0); }).on('error', reject);
  });
}

async function runOperatorAs(user: string, groups: string[]): Promise<RunningOperator> {
  const creds = await userKubeconfig(cluster, { user, groups });
  const cfg: OperatorConfig = {
    kubeConfig: creds.kubeConfig, namespace: NS, leaderElect: false, leaderElectionId: RELEASE, identity: `${user}-test`,
    leaseDurationMs: 15_000, renewDeadlineMs: 10_000, retryPeriodMs: 2_000,
    metricsBindAddress: '127.0.0.1:0', metricsSecure: true, healthProbeBindAddress: '127.0.0.1:0',
    maxConcurrentReconciles: 1, gracefulShutdownTimeoutMs: 5_000, kubeApiQps: OPERATOR_DEFAULTS.kubeApiQps, kubeApiBurst: OPERATOR_DEFAULTS.kubeApiBurst,
  };
  const op = await startOperator(cfg, []); // no controllers: only the servers matter here
  operators.push(op);
  return op;
}

describe('secure /metrics against a real API server, with the chart\'s RBAC', () => {
  let op: RunningOperator;
  let readerToken: string;
  let strangerToken: string;

  before(async () => {
    work = mkdtempSync(join(tmpdir(), 'cloudnet-metrics-auth-'));
    cluster = await startCluster({ name: 'metrics-auth' });
    k = kubectlIn(cluster, work);
    for (const ns of [NS, 'kubevirt', 'monitoring']) k.ok(['create', 'namespace', ns]);
    k.ok(['apply', '-f', '-'], undefined, helmTemplate(RELEASE, NS, ['crds.install=false', ...OPERATOR_ONLY]));
    // Scrapers: Prometheus bound to the chart's metrics-reader role, and an account without it.
    k.ok(['-n', 'monitoring', 'create', 'serviceaccount', 'prometheus']);
    k.ok(['-n', 'monitoring', 'create', 'serviceaccount', 'stranger']);
    k.ok(['create', 'clusterrolebinding', 'prometheus-cloudnet-metrics', `--clusterrole=${RELEASE}-metrics-reader`, '--serviceaccount=monitoring:prometheus']);
    readerToken = k.ok(['-n', 'monitoring', 'create', 'token', 'prometheus']).trim();
    strangerToken = k.ok(['-n', 'monitoring', 'create', 'token', 'stranger']).trim();
    const sa = serviceAccountUser(NS, RELEASE);
    op = await runOperatorAs(sa.user, sa.groups);
  });
  after(async () => {
    for (const o of operators) await o.stop();
    await cluster?.stop();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it('refuses a request without a token: 401', async () => {
    const r = await scrape(op.metricsPort ?? 0, '/metrics');
    assert.equal(r.status, 401);
    assert.equal(r.authenticate, 'Bearer');
    assert.doesNotMatch(r.body, /controller_runtime|process_/);
    assert.match(r.peerCertSAN ?? '', /DNS:localhost/, 'served over TLS with the self-signed certificate');
  });

  it('refuses a token the API server does not accept: 401', async () => {
    const forged = `${readerToken.slice(0, -4)}AAAA`;
    assert.equal((await scrape(op.metricsPort ?? 0, '/metrics', forged)).status, 401);
    assert.equal((await scrape(op.metricsPort ?? 0, '/metrics', 'not-a-token')).status, 401);
  });

  it('refuses a valid token whose account may not get /metrics: 403', async () => {
    const r = await scrape(op.metricsPort ?? 0, '/metrics', strangerToken);
    assert.equal(r.status, 403);
    assert.match(r.body, /system:serviceaccount:monitoring:stranger/);
  });

  it('serves a token bound to the metrics-reader ClusterRole: 200 with the metrics', async () => {
    const r = await scrape(op.metricsPort ?? 0, '/metrics', readerToken);
    assert.equal(r.status, 200, r.body);
    assert.match(r.body, /^# TYPE process_cpu_user_seconds_total counter$/m);
  });

  it('keeps /healthz and /readyz plain and open for the kubelet', async () => {
    assert.equal(await plainGet(op.healthPort ?? 0, '/healthz'), 200);
    assert.ok([200, 503].includes(await plainGet(op.healthPort ?? 0, '/readyz')));
  });

  it('cannot vouch for anyone without the chart\'s metrics-auth role: 500, never 200', async () => {
    const bare = await runOperatorAs('system:serviceaccount:elsewhere:no-rights', ['system:serviceaccounts', 'system:authenticated']);
    const r = await scrape(bare.metricsPort ?? 0, '/metrics', readerToken);
    assert.equal(r.status, 500);
    assert.doesNotMatch(r.body, /process_cpu/);
  });
});
