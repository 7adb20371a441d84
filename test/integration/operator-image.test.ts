// The operator as the image runs it, without docker (no base image can be pulled here): the
// Dockerfile's steps are replayed on the host. dist/ is compiled with tsconfig.build.json, the
// production dependency closure is taken from package-lock.json (exactly what `npm ci
// --omit=dev` installs, copied from node_modules, offline), and `node dist/cli.js operator` runs
// as UID 65532 in a root-owned app dir, with the chart's arguments, against a real API server
// where the chart is installed, authenticated as the chart's ServiceAccount. So this checks that
// the image has every runtime dependency, writes nothing, and that the chart's least-privilege
// RBAC is enough for two replicas to start, elect one leader (Lease), serve probes and metrics
// (HTTPS, a scraper's token reviewed by the API server),
// reconcile a Site and a WanMigration (statuses, Events), hand over on SIGTERM and stop; the
// Argo CD health check reads the statuses the operator really writes.
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, chownSync, cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { get as httpGet } from 'node:http';
import { request as httpsRequest, type RequestOptions } from 'node:https';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import yaml from 'js-yaml';
import { startCluster, userKubeconfig, type Cluster } from '../env/cluster.ts';
import { installKubevirtCrds } from '../env/manifests.ts';
import { cachedTool, chartDir, helmTemplate, repoRoot, runHelm } from '../../hack/packaging.ts';
import { argoHealth, type Json } from '../../hack/argo-health.ts';
import { waitFor } from '../helpers/poll.ts';

const NS = 'cloudnet-system';
const RELEASE = 'cloudnet';
const SA = `system:serviceaccount:${NS}:${RELEASE}`;
const RUNTIME_UID = 65532; // Dockerfile USER and chart podSecurityContext.runAsUser
const nodeBin = join(repoRoot, 'node_modules', '.bin', 'node');

let cluster: Cluster;
let work: string;
let app: string;
/** One operator process, as one pod of the chart's Deployment. */
interface Replica { name: string; proc: ChildProcess; exited: Promise<number | null>; logs: string[] }
const replicas: Replica[] = [];
let launch: (podName: string) => Replica;
/** Every log line of every replica. */
const allLogs = () => replicas.flatMap((r) => r.logs);

/** holderIdentity of the Lease named after the release ('' when released or not created yet). */
function leaseHolder(): string {
  return kubectl(['-n', NS, 'get', 'lease', '-o', `jsonpath={.items[?(@.metadata.name=="${RELEASE}")].spec.holderIdentity}`]);
}

/** The operator container's args from `helm template` of the release this test installs. */
function chartContainerArgs(): string[] {
  const docs = yaml.loadAll(helmTemplate(RELEASE, NS, ['gateway.enabled=false'])) as { kind?: string; metadata?: { name?: string }; spec?: { template: { spec: { containers: { args: string[] }[] } } } }[];
  const dep = docs.find((d) => d?.kind === 'Deployment' && d.metadata?.name === RELEASE);
  assert.ok(dep?.spec, 'the chart renders the operator Deployment');
  const args = dep.spec.template.spec.containers[0].args;
  assert.ok(args.includes('--leader-elect') && args.includes(`--leader-election-id=${RELEASE}`), JSON.stringify(args));
  return args;
}

/** package-lock.json's packages that `npm ci --omit=dev` installs. */
function productionPackages(): string[] {
  const lock = JSON.parse(readFileSync(join(repoRoot, 'package-lock.json'), 'utf8')) as { packages: Record<string, { dev?: boolean; link?: boolean }> };
  return Object.entries(lock.packages).filter(([path, p]) => path.startsWith('node_modules/') && !p.dev && !p.link).map(([path]) => path);
}

function kubectl(args: string[], input?: string): string {
  const r = spawnSync(cachedTool('kubectl'), ['--kubeconfig', cluster.kubeconfigPath, '--cache-dir', join(work, 'kube-cache'), ...args], {
    encoding: 'utf8', input, timeout: 60_000, env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: work },
  });
  assert.equal(r.status, 0, `kubectl ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

const operatorLogs = (): string => `operator logs:\n${allLogs().slice(-30).join('\n')}`;

let leaderName = '';
/** A token of a ServiceAccount bound to the chart's metrics-reader ClusterRole, as Prometheus has. */
let scraperToken = '';

async function exitWithin(r: Replica, ms: number): Promise<number | null | 'timeout'> {
  let timer: NodeJS.Timeout | undefined;
  const code = await Promise.race([r.exited, new Promise<'timeout'>((res) => { timer = setTimeout(() => res('timeout'), ms); })]);
  clearTimeout(timer);
  return code;
}

/** /metrics as Prometheus scrapes it with the chart's defaults: HTTPS (self-signed), bearer token. */
function scrape(port: number, token: string): Promise<{ status: number; body: string } | undefined> {
  return fetchOnce(httpsRequest, { host: '127.0.0.1', port, path: '/metrics', timeout: 10_000, rejectUnauthorized: false,
    headers: { authorization: `Bearer ${token}` } });
}

/** One GET without connection reuse, so no keep-alive socket outlives the test. */
function httpStatus(port: number, path: string): Promise<{ status: number; body: string } | undefined> {
  return fetchOnce(httpGet, { host: '127.0.0.1', port, path, timeout: 2000 });
}

/** One request on its own connection; undefined on any network error or timeout. */
function fetchOnce(send: (o: RequestOptions, cb: (res: import('node:http').IncomingMessage) => void) => import('node:http').ClientRequest, opts: RequestOptions): Promise<{ status: number; body: string } | undefined> {
  return new Promise((resolve) => {
    const req = send({ ...opts, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => { body += d; });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      res.on('error', () => resolve(undefined));
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(undefined));
    req.end();
  });
}

function logged(r: Replica, pred: (entry: Record<string, unknown>) => boolean): Record<string, unknown> | undefined {
  for (const l of r.logs) {
    try {
      const e = JSON.parse(l) as Record<string, unknown>;
      if (pred(e)) return e;
    } catch { /* not JSON: node warnings */ }
  }
  return undefined;
}

describe('the operator image layout, run as the chart runs it', () => {
  before(async () => {
    work = mkdtempSync(join(tmpdir(), 'cloudnet-image-'));
    chmodSync(work, 0o755);
    app = join(work, 'app');
    // Dockerfile stage "build".
    const tsc = spawnSync(nodeBin, [join(repoRoot, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', join(repoRoot, 'tsconfig.build.json'), '--outDir', join(app, 'dist')], { encoding: 'utf8' });
    assert.equal(tsc.status, 0, `tsc -p tsconfig.build.json: ${tsc.stdout}${tsc.stderr}`);
    // Dockerfile stage "prod-deps", then the runtime COPYs.
    for (const pkg of productionPackages()) {
      const from = join(repoRoot, pkg);
      if (!existsSync(from)) continue; // optional dependency for another platform
      mkdirSync(dirname(join(app, pkg)), { recursive: true });
      cpSync(from, join(app, pkg), { recursive: true, verbatimSymlinks: true });
    }
    cpSync(join(repoRoot, 'package.json'), join(app, 'package.json'));

    cluster = await startCluster({ name: 'image' });
    kubectl(['create', 'namespace', 'kubevirt']); // KubeVirt's namespace, where the chart puts its CA-bundle Role
    const r = runHelm(['install', RELEASE, chartDir, '--namespace', NS, '--create-namespace', '--kubeconfig', cluster.kubeconfigPath, '--set', 'gateway.enabled=false']);
    assert.equal(r.status, 0, r.stderr);
    kubectl(['wait', '--for=condition=Established', '--timeout=60s', 'crd/wanmigrations.cloudnet.io', 'crd/sites.cloudnet.io']);
    await installKubevirtCrds(cluster); // the controllers watch VMIMs
    kubectl(['-n', 'default', 'create', 'serviceaccount', 'prometheus']);
    kubectl(['create', 'clusterrolebinding', 'prometheus-cloudnet-metrics', `--clusterrole=${RELEASE}-metrics-reader`, '--serviceaccount=default:prometheus']);
    scraperToken = kubectl(['-n', 'default', 'create', 'token', 'prometheus']).trim();
    const sa = await userKubeconfig(cluster, { user: SA, groups: ['system:serviceaccounts', `system:serviceaccounts:${NS}`, 'system:authenticated'] });
    // Stands in for the projected ServiceAccount token: readable by the runtime user, like the mount.
    const kubeconfig = join(work, 'sa.kubeconfig');
    writeFileSync(kubeconfig, sa.kubeconfigYaml, { mode: 0o644 });
    const home = join(work, 'tmp'); // the chart's /tmp emptyDir (HOME and TMPDIR point there)
    mkdirSync(home, { mode: 0o755 });
    const asRoot = process.getuid?.() === 0;
    if (asRoot) chownSync(home, RUNTIME_UID, RUNTIME_UID);

    // The container arguments exactly as the chart renders them, except: loopback ports picked by
    // the kernel (pods have their own network namespace, these processes share one), the
    // kubeconfig instead of the in-cluster token, and a shorter Lease so the handover test is quick.
    const chartArgs = chartContainerArgs();
    const args = ['dist/cli.js', ...chartArgs.map((a) => a.replace(/^(--(?:metrics|health-probe)-bind-address)=.*$/, '$1=127.0.0.1:0')),
      '--kubeconfig', kubeconfig, '--lease-duration=4s', '--renew-deadline=3s', '--retry-period=500ms'];
    // As root, drop to the image's numeric user exactly like `USER 65532:65532`; otherwise we already are non-root.
    const [cmd, cmdArgs] = asRoot
      ? ['setpriv', [`--reuid=${RUNTIME_UID}`, `--regid=${RUNTIME_UID}`, '--clear-groups', '--', nodeBin, ...args]]
      : [nodeBin, args];
    launch = (podName: string): Replica => {
      const proc = spawn(cmd, cmdArgs, {
        cwd: app,
        stdio: ['ignore', 'pipe', 'pipe'],
        env: {
          PATH: process.env.PATH ?? '/usr/bin:/bin', NODE_ENV: 'production', HOME: home, TMPDIR: home, NODE_OPTIONS: '--enable-source-maps',
          POD_NAMESPACE: NS, POD_NAME: podName, LOG_LEVEL: 'info',
        },
      });
      const r: Replica = { name: podName, proc, exited: new Promise((resolve) => proc.once('exit', (code) => resolve(code))), logs: [] };
      for (const stream of [proc.stdout, proc.stderr]) {
        let buf = '';
        stream?.setEncoding('utf8');
        stream?.on('data', (d: string) => {
          buf += d;
          const lines = buf.split('\n');
          buf = lines.pop() ?? '';
          r.logs.push(...lines.filter(Boolean));
        });
      }
      replicas.push(r);
      return r;
    };
    // The chart's two replicas.
    launch('cloudnet-0');
    launch('cloudnet-1');
  });

  after(async () => {
    for (const r of replicas) {
      if (r.proc.exitCode === null && r.proc.signalCode === null) {
        r.proc.kill('SIGKILL');
        await r.exited;
      }
      r.proc.stdout?.destroy();
      r.proc.stderr?.destroy();
    }
    await cluster?.stop();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it('ships only production dependencies, without TypeScript or the node package', () => {
    assert.ok(!existsSync(join(app, 'node_modules', 'typescript')), 'typescript is a devDependency');
    assert.ok(!existsSync(join(app, 'node_modules', 'node')), 'the node devDependency (a second Node binary) is not shipped');
    assert.ok(existsSync(join(app, 'node_modules', '@kubernetes', 'client-node')));
    assert.ok(existsSync(join(app, 'dist', 'cli.js')));
  });

  it('runs two replicas: both serve probes and metrics, exactly one holds the Lease', async () => {
    const ports = new Map<Replica, { health: number; metrics: number }>();
    for (const r of replicas) {
      const started = await waitFor(() => logged(r, (e) => e.message === 'operator started'), { what: `"operator started" from ${r.name}`, timeoutMs: 30_000, intervalMs: 200, diagnostics: operatorLogs });
      const p = { health: Number(started.healthPort), metrics: Number(started.metricsPort) };
      assert.ok(p.health > 0 && p.metrics > 0, JSON.stringify(started));
      ports.set(r, p);
      await waitFor(async () => ((await httpStatus(p.health, '/healthz'))?.status === 200 ? true : undefined), { what: `${r.name} /healthz 200`, timeoutMs: 15_000, intervalMs: 200, diagnostics: operatorLogs });
      await waitFor(async () => ((await httpStatus(p.health, '/readyz'))?.status === 200 ? true : undefined), { what: `${r.name} /readyz 200`, timeoutMs: 30_000, intervalMs: 200, diagnostics: operatorLogs });
    }
    const holder = await waitFor(() => {
      const out = leaseHolder().trim();
      return /^cloudnet-[01]_\S+$/.test(out) ? out : undefined;
    }, { what: 'the Lease', timeoutMs: 30_000, intervalMs: 200, diagnostics: operatorLogs });
    leaderName = holder.split('_')[0];
    for (const r of replicas) {
      assert.equal(await httpStatus(ports.get(r)?.metrics ?? 0, '/metrics'), undefined, 'no plain HTTP on the metrics port (TLS only)');
      const metrics = await scrape(ports.get(r)?.metrics ?? 0, scraperToken);
      assert.equal(metrics?.status, 200, metrics?.body);
      const want = r.name === leaderName ? 1 : 0;
      assert.match(metrics?.body ?? '', new RegExp(`^leader_election_master_status\\{name="${RELEASE}"\\} ${want}$`, 'm'), `${r.name} leader gauge ${want}`);
      assert.match(metrics?.body ?? '', /^# TYPE controller_runtime_reconcile_total counter$/m);
    }
  });

  it('reconciles a Site and a WanMigration with nothing but the chart RBAC; Argo CD health reads them', async () => {
    // The "peer" cluster is this cluster again, reached with its admin kubeconfig from a Secret in
    // the operator's namespace (the only namespace where the chart lets it read Secrets freely).
    kubectl(['-n', NS, 'create', 'secret', 'generic', 'site-b-kubeconfig', `--from-file=kubeconfig=${cluster.kubeconfigPath}`]);
    kubectl(['apply', '-f', '-'], JSON.stringify({
      apiVersion: 'cloudnet.io/v1alpha1', kind: 'Site', metadata: { name: 'site-b' },
      spec: { kubeconfigSecretRef: { namespace: NS, name: 'site-b-kubeconfig', key: 'kubeconfig' } },
    }));
    const site = await waitFor(() => {
      const o = JSON.parse(kubectl(['get', 'site/site-b', '-o', 'json'])) as Json & { status?: { conditions?: { type: string; status: string }[] } };
      return o.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ? o : undefined;
    }, { what: 'Site site-b Ready', timeoutMs: 60_000, intervalMs: 200, diagnostics: operatorLogs });
    assert.equal(argoHealth(site).status, 'Healthy');

    kubectl(['apply', '-f', '-'], JSON.stringify({
      apiVersion: 'cloudnet.io/v1alpha1', kind: 'WanMigration', metadata: { name: 'image-probe', namespace: 'default' },
      spec: { vmName: 'no-such-vm', targetSite: 'site-b', targetNamespace: 'default' },
    }));
    const wm = await waitFor(() => {
      const o = JSON.parse(kubectl(['-n', 'default', 'get', 'wanmigration/image-probe', '-o', 'json'])) as Json & { status?: { observedGeneration?: number; conditions?: { type: string; status: string; reason: string }[] } };
      return o.status?.observedGeneration === 1 && o.status.conditions?.some((c) => c.type === 'Stalled') ? o : undefined;
    }, { what: 'a WanMigration status written by the operator', timeoutMs: 60_000, intervalMs: 200, diagnostics: operatorLogs });
    const stalled = wm.status?.conditions?.find((c) => c.type === 'Stalled');
    assert.equal(stalled?.status, 'True', JSON.stringify(wm.status));
    const health = argoHealth(wm);
    assert.equal(health.status, 'Degraded');
    assert.ok(health.message.startsWith(`${stalled.reason}: `), health.message);
    const events = kubectl(['-n', 'default', 'get', 'events.events.k8s.io', '--field-selector', 'regarding.name=image-probe', '-o', 'jsonpath={.items[*].reason}']);
    assert.ok(events.includes(stalled.reason), `an Event with reason ${stalled.reason}: ${events}`);
    // Only the leader runs controllers; the standby waits for the Lease.
    for (const r of replicas) {
      const workers = logged(r, (e) => e.message === 'starting workers');
      if (r.name === leaderName) assert.ok(workers, `${r.name} (leader) started workers`);
      else assert.equal(workers, undefined, `${r.name} (standby) must not reconcile`);
    }
    const forbidden = allLogs().filter((l) => /forbidden/i.test(l));
    assert.deepEqual(forbidden, [], 'the operator hit an RBAC denial');
  });

  it('hands the Lease to the standby when the leader gets SIGTERM', async () => {
    const leader = replicas.find((r) => r.name === leaderName);
    const standby = replicas.find((r) => r.name !== leaderName);
    assert.ok(leader && standby);
    leader.proc.kill('SIGTERM');
    assert.equal(await exitWithin(leader, 30_000), 0, `leader exit; log:\n${leader.logs.slice(-20).join('\n')}`);
    const holder = await waitFor(() => {
      const out = leaseHolder().trim();
      return out.startsWith(`${standby.name}_`) ? out : undefined;
    }, { what: `${standby.name} to take the Lease`, timeoutMs: 30_000, intervalMs: 200, diagnostics: operatorLogs });
    assert.ok(holder);
  });

  it('shuts the last replica down cleanly, releasing the Lease, having written nothing outside /tmp', async () => {
    const last = replicas.find((r) => r.name !== leaderName);
    assert.ok(last);
    last.proc.kill('SIGTERM');
    // The bound is the pod's: the chart's terminationGracePeriodSeconds (30 s), above its
    // --graceful-shutdown-timeout (25 s) for draining a reconcile that is still in flight.
    assert.equal(await exitWithin(last, 30_000), 0, `exit; log:\n${last.logs.slice(-40).join('\n')}`);
    const holder = leaseHolder();
    assert.equal(holder.trim(), '', 'Lease released');
    const writes = allLogs().filter((l) => /EACCES|EROFS|permission denied/i.test(l));
    assert.deepEqual(writes, [], 'an operator tried to write outside /tmp');
  });
});
