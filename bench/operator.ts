// Operator at scale (issue 16): N WanMigrations created at once against two real API servers
// (kube-apiserver + etcd each, test/env) with the KubeVirt stand-in (test/standin) acting out
// KubeVirt at realistic speed (a phase every ≥ 2 s, guests boot in 2–4 s, the memory transfer
// lasts 20–40 s), and the operator as its own process (`node src/cli.ts operator`) with its
// production defaults (workers, client rate limits, leader election and NODE_OPTIONS as the
// chart runs it).
//
//   npm run bench:operator -- --migrations 50 [--migrations 200 …] [--timeout-minutes 20] [--keep]
//
// The operator authenticates as its own user (cloudnet-operator) on both clusters, and each
// kube-apiserver audits that user's requests only: requests per migration and the busiest second
// come from the audit logs, so they count what the servers saw, both clusters together. Status
// lag is measured by the benchmark's own watches (bench/lib/status-lag.ts). RSS is the operator's
// peak VmHWM, CPU its user+system seconds while the migrations ran.
// Results: a table on stdout, and bench/results/operator.json (one entry per N, replaced on rerun).
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { setTimeout as delay } from 'node:timers/promises';
import yaml from 'js-yaml';
import { KubeClient } from '../src/kube/client.ts';
import type { KubeObject } from '../src/kube/rest.ts';
import { Res } from '../src/api/resources.ts';
import { TERMINAL_PHASES, type Phase } from '../src/api/wanmigration.ts';
import { OPERATOR_DEFAULTS } from '../src/operator/main.ts';
import { applyManifestFile, freePort, installKubevirtCrds, startCluster, userKubeconfig, type Cluster } from '../test/env/index.ts';
import { startProcess, type ManagedProcess } from '../test/env/processes.ts';
import { processCpuSeconds } from '../test/env/wan.ts';
import { KubeVirtStandIn, SyncHub } from '../test/standin/standin.ts';
import { createVM, ensure } from '../test/standin/harness.ts';
import { PacedDriver } from './lib/paced-driver.ts';
import { auditArgs, breakdown, peakPerSecond, readAudit } from './lib/audit.ts';
import type { LagReport } from './lib/status-lag.ts';
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { gaugeValue, histogramQuantile } from './lib/prom.ts';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const OPERATOR_USER = 'cloudnet-operator';
const OPERATOR_NS = 'cloudnet-system';
const VMS_PER_NAMESPACE = 50;
/** The stand-in's pace: ≥ 2 s between two phase changes of one object, looking once a second. */
const STANDIN = { phaseDelayMs: 2000, tickMs: 1000 };

const { values: args } = parseArgs({
  options: {
    migrations: { type: 'string', multiple: true },
    'timeout-minutes': { type: 'string' },
    out: { type: 'string' },
    keep: { type: 'boolean' },
    'operator-node-options': { type: 'string' },
  },
});
const sizes = (args.migrations ?? ['50']).flatMap((s) => s.split(',')).map(Number);
if (sizes.some((n) => !Number.isInteger(n) || n < 1)) throw new Error('--migrations takes positive integers');
const TIMEOUT_MS = Number(args['timeout-minutes'] ?? 20) * 60_000;
const OUT = args.out ?? join(root, 'bench/results/operator.json');

export interface OperatorBenchResult {
  n: number;
  succeeded: number;
  failed: number;
  /** Not terminal when the benchmark gave up. */
  stuck: number;
  wallSeconds: number;
  operatorRequestsPerMigration: number;
  operatorRequests: { source: number; target: number };
  peakRequestsPerSecond: number;
  statusLagP99Ms: number;
  statusLag: LagReport;
  operatorRssMiB: number;
  /** The operator's own view at the end (prom-client default metrics), MiB: where the RSS is. */
  operatorMemoryMiB: { rss: number; heapUsed: number; heapTotal: number; external: number };
  operatorCpuSeconds: number;
  /** The operator's own metrics at the end: where a reconcile's time goes (seconds). */
  operatorInternals: { queueWaitP99: number; normalQueueWaitP99: number; reconcileP99: number; normalReconcileP99: number; rateLimiterWaitP99: number; reconciles: number };
  /** Where the requests went (both clusters, "verb resource[/subresource]"). */
  requestBreakdown: Record<string, number>;
}

/** Runs `fn` over `items`, `limit` at a time. */
async function pool<T>(items: T[], limit: number, fn: (x: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) await fn(items[next++]);
  }));
}

async function until<T>(what: string, fn: () => Promise<T | undefined | false>, timeoutMs: number, everyMs = 1000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn().catch(() => undefined);
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await delay(everyMs);
  }
}

/** operator.nodeOptions from the chart's default values: what the operator's pod runs with. */
function chartNodeOptions(): string {
  const values = yaml.load(readFileSync(join(root, 'charts/cloudnet/values.yaml'), 'utf8')) as { operator?: { nodeOptions?: string } };
  return values.operator?.nodeOptions ?? '';
}

function rssMiB(pid: number, field: 'VmRSS' | 'VmHWM'): number {
  try {
    const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : 0;
  } catch {
    return 0;
  }
}

async function runOnce(n: number): Promise<OperatorBenchResult> {
  const dir = mkdtempSync(join(tmpdir(), 'cloudnet-bench-operator-'));
  const auditA = auditArgs(dir, 'site-a', OPERATOR_USER);
  const auditB = auditArgs(dir, 'site-b', OPERATOR_USER);
  let clusters: Cluster[] = [];
  let operator: ManagedProcess | undefined;
  const stands: KubeVirtStandIn[] = [];
  let tracker: LagWatcher | undefined;
  try {
    clusters = await Promise.all([
      startCluster({ name: 'site-a', apiServerArgs: auditA.args }),
      startCluster({ name: 'site-b', apiServerArgs: auditB.args }),
    ]);
    const [a, b] = clusters;
    // A loaded machine can time a request out while the fresh API servers settle: try again.
    await until('CRDs installed', async () => {
      await Promise.all([installKubevirtCrds(a), installKubevirtCrds(b)]);
      for (const f of ['crds/cloudnet.io_sites.yaml', 'crds/cloudnet.io_wanmigrations.yaml']) await applyManifestFile(a, join(root, f));
      return true;
    }, 5 * 60_000, 2000);
    const src = new KubeClient(a.kubeConfig, 'site-a');
    const dst = new KubeClient(b.kubeConfig, 'site-b');
    await until('WanMigration storage ready', async () => (await src.list(Res.wanMigration)).items && (await src.list(Res.site)).items, 60_000, 500);

    // The stand-in plays KubeVirt on both sides, at a realistic pace.
    const hub = new SyncHub();
    const driver = new PacedDriver();
    for (const [c, addr] of [[src, '192.0.2.1:9185'], [dst, '192.0.2.2:9185']] as const) {
      stands.push(new KubeVirtStandIn({ client: c, hub, syncAddress: addr, driver, ...STANDIN }));
    }
    await Promise.all(stands.map((s) => s.start()));

    // The operator's own identity on both clusters; the Site's Secret carries the target one.
    const [opA, opB] = await Promise.all([a, b].map((c) => userKubeconfig(c, { user: OPERATOR_USER, groups: ['system:masters'] })));
    const kubeconfigPath = join(dir, 'operator.kubeconfig');
    writeFileSync(kubeconfigPath, opA.kubeconfigYaml, { mode: 0o600 });
    await ensure(src, Res.namespace, { metadata: { name: OPERATOR_NS } });
    await ensure(src, Res.secret, { metadata: { name: 'site-b-kubeconfig', namespace: OPERATOR_NS }, stringData: { kubeconfig: opB.kubeconfigYaml } });
    const sample = (yaml.loadAll(readFileSync(join(root, 'config/samples/site.yaml'), 'utf8')) as KubeObject[]).find((d) => d.kind === 'Site')!;
    await ensure(src, Res.site, sample);

    // N VMs, VMS_PER_NAMESPACE per namespace, running before the migrations start.
    const namespaces = Array.from({ length: Math.ceil(n / VMS_PER_NAMESPACE) }, (_, i) => `bench-${i}`);
    for (const ns of namespaces) for (const c of [src, dst]) await ensure(c, Res.namespace, { metadata: { name: ns } });
    const vms = Array.from({ length: n }, (_, i) => ({ ns: namespaces[Math.floor(i / VMS_PER_NAMESPACE)], name: `vm-${i}` }));
    const tVMs = Date.now();
    await pool(vms, 16, async (v) => {
      await createVM(src, v.ns, v.name, { memory: '2Gi', diskSize: '10Gi' });
      // CDI's claim behind the DataVolume, as on a real cluster (the operator reads its size).
      await ensure(src, Res.pvc, { metadata: { name: `${v.name}-root`, namespace: v.ns }, spec: { accessModes: ['ReadWriteOnce'], storageClassName: 'local-path', resources: { requests: { storage: '10Gi' } } } });
    });
    await until(`${n} source VMIs running`, async () => {
      const vmis = (await src.list<KubeObject & { status?: { phase?: string } }>(Res.vmi)).items;
      return vmis.filter((v) => v.status?.phase === 'Running').length >= n;
    }, 15 * 60_000, 2000);
    console.log(`  ${n} VMs running after ${((Date.now() - tVMs) / 1000).toFixed(0)} s`);

    writeFileSync(join(dir, 'site-a.kubeconfig'), a.kubeconfigYaml, { mode: 0o600 });
    writeFileSync(join(dir, 'site-b.kubeconfig'), b.kubeconfigYaml, { mode: 0o600 });
    tracker = await startLagWatcher(join(dir, 'site-a.kubeconfig'), join(dir, 'site-b.kubeconfig'));

    // The operator, as `cloudnet operator` runs in its pod (the chart's flags, defaults otherwise;
    // metrics over plain HTTP, read once at the end, instead of the chart's authenticated HTTPS).
    const [metricsPort, healthPort] = [await freePort(), await freePort()];
    process.env.POD_NAMESPACE = OPERATOR_NS;
    process.env.LOG_LEVEL = 'info';
    // The chart's NODE_OPTIONS (V8 heap limits), unless an experiment asks for others.
    process.env.NODE_OPTIONS = args['operator-node-options'] ?? chartNodeOptions();
    operator = startProcess(dir, 'operator', process.execPath, [join(root, 'src/cli.ts'), 'operator', '--kubeconfig', kubeconfigPath, '--leader-elect',
      `--metrics-bind-address=127.0.0.1:${metricsPort}`, '--metrics-secure=false', `--health-probe-bind-address=127.0.0.1:${healthPort}`]);
    const op = operator;
    await until('operator ready', async () => (await fetch(`http://127.0.0.1:${healthPort}/readyz`)).ok, 60_000, 250);
    await until('Site site-b Ready', async () => {
      const s = await src.tryGet<KubeObject & { status?: { conditions?: Array<{ type: string; status: string }> } }>(Res.site, undefined, 'site-b');
      return s?.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True');
    }, 60_000, 250);

    // All at once.
    let rssPeak = 0;
    const rssTimer = setInterval(() => { rssPeak = Math.max(rssPeak, rssMiB(op.pid, 'VmRSS')); }, 1000);
    const cpu0 = processCpuSeconds(op.pid);
    const t0 = Date.now();
    console.log(`  creating ${n} WanMigrations`);
    await Promise.all(vms.map((v) => src.create(Res.wanMigration, {
      apiVersion: 'cloudnet.io/v1alpha1', kind: 'WanMigration',
      metadata: { name: `${v.name}-to-site-b`, namespace: v.ns },
      spec: { vmName: v.name, targetSite: 'site-b', targetNamespace: v.ns },
    })));
    let last = '';
    const counts = await until(`${n} migrations finished`, async () => {
      const items = (await src.list<KubeObject & { status?: { phase?: Phase } }>(Res.wanMigration)).items;
      const by = new Map<string, number>();
      for (const w of items) by.set(w.status?.phase ?? 'none', (by.get(w.status?.phase ?? 'none') ?? 0) + 1);
      const line = [...by].sort().map(([p, c]) => `${p} ${c}`).join(', ');
      if (line !== last) { console.log(`  ${((Date.now() - t0) / 1000).toFixed(0).padStart(4)} s  ${line}`); last = line; }
      const done = items.filter((w) => w.status?.phase && TERMINAL_PHASES.includes(w.status.phase));
      return done.length >= n ? by : undefined;
    }, TIMEOUT_MS, 2000).catch(async () => {
      const items = (await src.list<KubeObject & { status?: { phase?: Phase } }>(Res.wanMigration)).items;
      const by = new Map<string, number>();
      for (const w of items) by.set(w.status?.phase ?? 'none', (by.get(w.status?.phase ?? 'none') ?? 0) + 1);
      return by;
    });
    const tEnd = Date.now();
    const cpu = processCpuSeconds(op.pid) - cpu0;
    clearInterval(rssTimer);
    const hwm = rssMiB(op.pid, 'VmHWM');
    const lag = await tracker.report();
    const metricsText = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text().catch(() => '');
    if (args.keep) writeFileSync(join(dir, 'operator-metrics.txt'), metricsText);
    const gauge = (name: string) => Math.round((gaugeValue(metricsText, name) ?? 0) / 2 ** 20);
    const q99 = (name: string, labels = '') => Math.round((histogramQuantile(metricsText, name, 0.99, labels) ?? 0) * 1000) / 1000;
    const internals = {
      queueWaitP99: q99('workqueue_queue_duration_seconds', 'name="wanmigration"'),
      normalQueueWaitP99: q99('cloudnet_workqueue_queue_duration_seconds', 'name="wanmigration",priority="normal"'),
      reconcileP99: q99('controller_runtime_reconcile_time_seconds', 'controller="wanmigration"'),
      normalReconcileP99: q99('cloudnet_reconcile_time_seconds', 'controller="wanmigration",priority="normal"'),
      rateLimiterWaitP99: q99('rest_client_rate_limiter_duration_seconds'),
      reconciles: [...metricsText.matchAll(/^controller_runtime_reconcile_total\{controller="wanmigration",result="[^"]+"\} (\S+)$/gm)].reduce((a, m) => a + Number(m[1]), 0),
    };
    const memory = { rss: gauge('process_resident_memory_bytes'), heapUsed: gauge('nodejs_heap_size_used_bytes'), heapTotal: gauge('nodejs_heap_size_total_bytes'), external: gauge('nodejs_external_memory_bytes') };
    await operator.kill('SIGTERM', 10_000);
    operator = undefined;

    const reqA = readAudit(auditA.logPath, OPERATOR_USER);
    const reqB = readAudit(auditB.logPath, OPERATOR_USER);
    const all = [...reqA, ...reqB];
    const succeeded = counts.get('Succeeded') ?? 0;
    const failed = (counts.get('Failed') ?? 0) + (counts.get('Aborted') ?? 0);
    return {
      n,
      succeeded,
      failed,
      stuck: n - succeeded - failed,
      wallSeconds: Math.round((tEnd - t0) / 100) / 10,
      operatorRequestsPerMigration: Math.round((all.length / n) * 10) / 10,
      operatorRequests: { source: reqA.length, target: reqB.length },
      peakRequestsPerSecond: peakPerSecond(all),
      statusLagP99Ms: lag.p99Ms,
      statusLag: lag,
      operatorRssMiB: Math.round(Math.max(rssPeak, hwm)),
      operatorMemoryMiB: memory,
      operatorInternals: internals,
      operatorCpuSeconds: Math.round(cpu * 10) / 10,
      requestBreakdown: breakdown(all),
    };
  } finally {
    await operator?.kill('SIGKILL');
    tracker?.kill();
    await Promise.all(stands.map((s) => s.stop()));
    await Promise.all(clusters.map((c) => c.stop()));
    if (args.keep) console.log(`  kept ${dir} (operator.log, audit logs)`);
    else rmSync(dir, { recursive: true, force: true });
  }
}

interface LagWatcher {
  report(): Promise<LagReport>;
  kill(): void;
}

/** bench/lib/lag-process.ts as a child process: its timestamps do not wait for the stand-in's work here. */
async function startLagWatcher(srcKubeconfig: string, dstKubeconfig: string): Promise<LagWatcher> {
  const child: ChildProcess = spawn(process.execPath, [join(root, 'bench/lib/lag-process.ts'), srcKubeconfig, dstKubeconfig], { stdio: ['pipe', 'pipe', 'inherit'] });
  const lines = createInterface({ input: child.stdout! })[Symbol.asyncIterator]();
  const next = async () => {
    const r = await lines.next();
    if (r.done) throw new Error('the lag watcher exited');
    return r.value;
  };
  if ((await next()).trim() !== 'ready') throw new Error('the lag watcher did not start');
  return {
    async report() {
      child.stdin!.write('report\n');
      return JSON.parse(await next()) as LagReport;
    },
    kill() {
      if (child.exitCode === null) child.kill('SIGKILL');
    },
  };
}

function table(rows: OperatorBenchResult[]): string {
  const head = ['N', 'succeeded', 'failed', 'wall s', 'req/migration', 'peak req/s', 'status lag p99 ms', 'RSS MiB', 'CPU s'];
  const lines = rows.map((r) => [r.n, r.succeeded, r.failed + r.stuck, r.wallSeconds, r.operatorRequestsPerMigration, r.peakRequestsPerSecond, r.statusLagP99Ms, r.operatorRssMiB, r.operatorCpuSeconds].map(String));
  const w = head.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i].length)));
  const fmt = (cells: string[]) => `| ${cells.map((c, i) => c.padStart(w[i])).join(' | ')} |`;
  return [fmt(head), `|${w.map((x) => '-'.repeat(x + 2)).join('|')}|`, ...lines.map(fmt)].join('\n');
}

const previous: { runs?: OperatorBenchResult[] } = existsSync(OUT) ? JSON.parse(readFileSync(OUT, 'utf8')) as { runs?: OperatorBenchResult[] } : {};
const runs = new Map((previous.runs ?? []).map((r) => [r.n, r]));
for (const n of sizes) {
  console.log(`N=${n}: starting (load average ${loadavg()[0].toFixed(1)} on ${cpus().length} cores)`);
  const r = await runOnce(n);
  runs.set(n, r);
  console.log(table([r]));
  console.log(`  status lag: ${JSON.stringify(r.statusLag)}; requests source ${r.operatorRequests.source}, target ${r.operatorRequests.target}; memory at the end ${JSON.stringify(r.operatorMemoryMiB)}; internals ${JSON.stringify(r.operatorInternals)}`);
  console.log(`  requests by kind: ${JSON.stringify(r.requestBreakdown)}`);
  writeFileSync(OUT, `${JSON.stringify({
    benchmark: 'operator at scale (issue 16)',
    updated: new Date().toISOString(),
    machine: { cpus: cpus().length, loadAverage1m: Math.round(loadavg()[0] * 10) / 10 },
    operator: { ...OPERATOR_DEFAULTS, leaderElect: true, nodeOptions: args['operator-node-options'] ?? chartNodeOptions() },
    standIn: { ...STANDIN, bootMs: [2000, 4000], receiverMs: [2000, 5000], memoryMs: [20_000, 40_000] },
    runs: [...runs.values()].sort((x, y) => x.n - y.n),
  }, null, 2)}\n`);
}
console.log(table([...runs.values()].sort((x, y) => x.n - y.n)));
