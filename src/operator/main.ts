// `cloudnet operator`: the manager process. Flags mirror a kubebuilder main.go:
//   --kubeconfig PATH              (default: in-cluster when KUBERNETES_SERVICE_HOST is set, else $KUBECONFIG/~/.kube/config)
//   --leader-elect                 enable leader election (the Helm chart sets it for 2 replicas)
//   --leader-election-namespace NS (default: $POD_NAMESPACE, the service account's namespace, or "default")
//   --leader-election-id NAME      Lease name (default cloudnet-operator-leader)
//   --lease-duration 15s --renew-deadline 10s --retry-period 2s
//   --metrics-bind-address :8080   ("0" disables)
//   --metrics-secure               (default; --metrics-secure=false turns it off) HTTPS, and every
//                                  /metrics request authenticated and authorized by the API server
//   --metrics-cert-dir DIR         tls.crt/tls.key for it (default: self-signed at start)
//   --health-probe-bind-address :8081
//   --max-concurrent-reconciles 16
//   --kube-api-qps 80 --kube-api-burst 20   client-side rate limit per cluster (local and each Site's)
//   --graceful-shutdown-timeout 30s
// SIGTERM/SIGINT: stop taking work, wait for in-flight reconciles (bounded), release the Lease, exit 0.
import { parseArgs } from 'node:util';
import { readFileSync, existsSync } from 'node:fs';
import { hostname } from 'node:os';
import { randomUUID } from 'node:crypto';
import { KubeConfig } from '@kubernetes/client-node';
import { KubeClient } from '../kube/client.ts';
import type { RestClientOptions } from '../kube/rest.ts';
import { Manager } from '../kube/manager.ts';
import { OperatorMetrics } from '../kube/metrics.ts';
import { startProbeServer, type BoundServer } from './health.ts';
import { serveMetrics } from './metrics-serving.ts';
import type { ControllerFactory } from '../controller/factory.ts';
import { defaultControllerFactories } from './controllers.ts';
import { logger } from '../util/log.ts';

const SA_NAMESPACE_FILE = '/var/run/secrets/kubernetes.io/serviceaccount/namespace';

export interface OperatorConfig {
  kubeConfig: KubeConfig;
  namespace: string;
  leaderElect: boolean;
  leaderElectionId: string;
  identity: string;
  leaseDurationMs: number;
  renewDeadlineMs: number;
  retryPeriodMs: number;
  metricsBindAddress: string;
  /** Serve /metrics over HTTPS with API-server authentication and authorization. Default true. */
  metricsSecure?: boolean;
  /** Directory with tls.crt and tls.key for the metrics server; self-signed when unset. */
  metricsCertDir?: string;
  healthProbeBindAddress: string;
  maxConcurrentReconciles: number;
  gracefulShutdownTimeoutMs: number;
  /** Client-side rate limit of each cluster's client (0 disables). */
  kubeApiQps: number;
  kubeApiBurst: number;
}

/** Production defaults, shared by the flags, the chart and the benchmark. */
export const OPERATOR_DEFAULTS = { maxConcurrentReconciles: 16, kubeApiQps: 80, kubeApiBurst: 20 } as const;

/** Identifies the operator's requests in API server logs and audit events. */
export const OPERATOR_USER_AGENT = 'cloudnet-operator/0.1.0';

/** "15s", "500ms", "2m", "1h" or a bare number of seconds. */
export function parseDuration(s: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(s.trim());
  if (!m) throw new Error(`invalid duration: ${s}`);
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[(m[2] ?? 's') as 'ms' | 's' | 'm' | 'h'];
  return Number(m[1]) * unit;
}

export function loadKubeConfig(path?: string): KubeConfig {
  const kc = new KubeConfig();
  if (path) kc.loadFromFile(path);
  else if (process.env.KUBERNETES_SERVICE_HOST && !process.env.KUBECONFIG) kc.loadFromCluster();
  else kc.loadFromDefault();
  return kc;
}

function defaultNamespace(): string {
  if (process.env.POD_NAMESPACE) return process.env.POD_NAMESPACE;
  if (existsSync(SA_NAMESPACE_FILE)) return readFileSync(SA_NAMESPACE_FILE, 'utf8').trim();
  return 'default';
}

const BOOLEAN_FLAGS = ['leader-elect', 'metrics-secure'];

/** Go's flag package accepts `--flag=true|false` for booleans (kubebuilder's docs use it); node's parseArgs wants `--flag` / `--no-flag`. */
function normalizeBooleans(argv: string[]): string[] {
  return argv.map((a) => {
    const m = /^--([\w-]+)=(true|false)$/.exec(a);
    if (!m || !BOOLEAN_FLAGS.includes(m[1])) return a;
    return m[2] === 'true' ? `--${m[1]}` : `--no-${m[1]}`;
  });
}

export function parseOperatorArgs(argv: string[]): OperatorConfig {
  const { values } = parseArgs({
    args: normalizeBooleans(argv),
    strict: true,
    allowNegative: true,
    options: {
      kubeconfig: { type: 'string' },
      'leader-elect': { type: 'boolean', default: false },
      'leader-election-namespace': { type: 'string' },
      'leader-election-id': { type: 'string', default: 'cloudnet-operator-leader' },
      'lease-duration': { type: 'string', default: '15s' },
      'renew-deadline': { type: 'string', default: '10s' },
      'retry-period': { type: 'string', default: '2s' },
      'metrics-bind-address': { type: 'string', default: ':8080' },
      'metrics-secure': { type: 'boolean', default: true },
      'metrics-cert-dir': { type: 'string' },
      'health-probe-bind-address': { type: 'string', default: ':8081' },
      'max-concurrent-reconciles': { type: 'string', default: String(OPERATOR_DEFAULTS.maxConcurrentReconciles) },
      'kube-api-qps': { type: 'string', default: String(OPERATOR_DEFAULTS.kubeApiQps) },
      'kube-api-burst': { type: 'string', default: String(OPERATOR_DEFAULTS.kubeApiBurst) },
      'graceful-shutdown-timeout': { type: 'string', default: '30s' },
    },
  });
  const maxConcurrentReconciles = Number(values['max-concurrent-reconciles']);
  if (!Number.isInteger(maxConcurrentReconciles) || maxConcurrentReconciles < 1) throw new Error('--max-concurrent-reconciles must be a positive integer');
  const kubeApiQps = Number(values['kube-api-qps']);
  if (!Number.isFinite(kubeApiQps) || kubeApiQps < 0) throw new Error('--kube-api-qps must be a number ≥ 0 (0: no limit)');
  const kubeApiBurst = Number(values['kube-api-burst']);
  if (!Number.isInteger(kubeApiBurst) || kubeApiBurst < 1) throw new Error('--kube-api-burst must be a positive integer');
  return {
    kubeConfig: loadKubeConfig(values.kubeconfig),
    namespace: values['leader-election-namespace'] ?? defaultNamespace(),
    leaderElect: values['leader-elect'] ?? false,
    leaderElectionId: values['leader-election-id'] ?? 'cloudnet-operator-leader',
    identity: `${process.env.POD_NAME ?? hostname()}_${randomUUID()}`,
    leaseDurationMs: parseDuration(values['lease-duration'] ?? '15s'),
    renewDeadlineMs: parseDuration(values['renew-deadline'] ?? '10s'),
    retryPeriodMs: parseDuration(values['retry-period'] ?? '2s'),
    metricsBindAddress: values['metrics-bind-address'] ?? ':8080',
    metricsSecure: values['metrics-secure'] ?? true,
    ...(values['metrics-cert-dir'] ? { metricsCertDir: values['metrics-cert-dir'] } : {}),
    healthProbeBindAddress: values['health-probe-bind-address'] ?? ':8081',
    maxConcurrentReconciles,
    gracefulShutdownTimeoutMs: parseDuration(values['graceful-shutdown-timeout'] ?? '30s'),
    kubeApiQps,
    kubeApiBurst,
  };
}

export interface RunningOperator {
  manager: Manager;
  metricsPort?: number;
  healthPort?: number;
  /** Graceful stop; resolves when everything (servers included) is down. */
  stop(): Promise<void>;
  /** Resolves when the manager has shut down (after stop() or an abort). */
  done: Promise<void>;
}

/** Starts the manager, its controllers and the HTTP servers (used by run() and by tests). */
export async function startOperator(cfg: OperatorConfig, factories: ControllerFactory[] = defaultControllerFactories()): Promise<RunningOperator> {
  const log = logger('operator');
  const metrics = new OperatorMetrics();
  // Each cluster gets its own limiter: the local one here, each Site's in ClusterClients.
  const clientOptions = (): RestClientOptions => ({
    rateLimit: { qps: cfg.kubeApiQps, burst: cfg.kubeApiBurst }, userAgent: OPERATOR_USER_AGENT, metrics: metrics.restClientSink(),
  });
  const manager = new Manager({
    client: new KubeClient(cfg.kubeConfig, 'local', clientOptions()),
    remoteClientOptions: clientOptions(),
    // Lease renewals never wait behind the reconcilers' requests (a few per retryPeriod: no limit).
    leaderElectionClient: new KubeClient(cfg.kubeConfig, 'local', { userAgent: OPERATOR_USER_AGENT, metrics: metrics.restClientSink() }),
    metrics,
    instance: cfg.identity,
    gracefulShutdownTimeoutMs: cfg.gracefulShutdownTimeoutMs,
    leaderElection: cfg.leaderElect ? {
      namespace: cfg.namespace, name: cfg.leaderElectionId, identity: cfg.identity,
      leaseDurationMs: cfg.leaseDurationMs, renewDeadlineMs: cfg.renewDeadlineMs, retryPeriodMs: cfg.retryPeriodMs,
    } : undefined,
  });
  for (const factory of factories) {
    const made = factory({ manager, namespace: cfg.namespace, maxConcurrentReconciles: cfg.maxConcurrentReconciles, log });
    for (const r of Array.isArray(made) ? made : [made]) manager.add(r);
  }
  const servers: BoundServer[] = [];
  const closeServers = () => Promise.all(servers.map((s) => s.close()));
  try {
    const m = await serveMetrics({ bindAddress: cfg.metricsBindAddress, secure: cfg.metricsSecure ?? true, certDir: cfg.metricsCertDir }, metrics.registry, manager.client.rest);
    if (m) servers.push(m);
    const h = await startProbeServer(cfg.healthProbeBindAddress, { ready: () => manager.ready() });
    if (h) servers.push(h);
    const abort = new AbortController();
    const done = manager.start(abort.signal);
    log.info('operator started', {
      identity: cfg.identity, leaderElect: cfg.leaderElect, namespace: cfg.namespace, metricsPort: m?.port, metricsSecure: cfg.metricsSecure ?? true, healthPort: h?.port,
    });
    return {
      manager,
      metricsPort: m?.port,
      healthPort: h?.port,
      done,
      stop: async () => {
        abort.abort();
        await done;
        await closeServers();
      },
    };
  } catch (err) {
    await closeServers();
    throw err;
  }
}

/** Time the shutdown may take beyond the reconcile drain before the process forces its exit. */
export const SHUTDOWN_STEPS_GRACE_MS = 4_000;

export async function run(argv: string[]): Promise<number> {
  const log = logger('operator');
  const cfg = parseOperatorArgs(argv);
  const op = await startOperator(cfg);
  let stopping: Promise<void> | undefined;
  // A shutdown that cannot finish must still end the process, loudly, with what kept it alive.
  const forceExit = (why: string, fields: Record<string, unknown>) => {
    log.error(`${why}; forcing exit`, { ...fields, activeResources: process.getActiveResourcesInfo().join(',') });
    process.exit(1);
  };
  const onSignal = (sig: string) => {
    if (stopping) return forceExit('second signal during shutdown', { signal: sig });
    log.info('signal received; shutting down', { signal: sig });
    stopping = op.stop();
    // Bounded: draining reconciles may take the graceful timeout, the other steps a few seconds.
    // unref: a shutdown that ends earlier must not wait for this timer.
    const limitMs = cfg.gracefulShutdownTimeoutMs + SHUTDOWN_STEPS_GRACE_MS;
    setTimeout(() => forceExit('shutdown did not finish in time', { timeoutMs: limitMs }), limitMs).unref();
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  await op.done;
  await stopping;
  log.info('operator exited');
  return 0;
}
