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
//   --max-concurrent-reconciles 1
//   --graceful-shutdown-timeout 30s
// SIGTERM/SIGINT: stop taking work, wait for in-flight reconciles (bounded), release the Lease, exit 0.
import { parseArgs } from 'node:util';
import { readFileSync, existsSync } from 'node:fs';
import { hostname } from 'node:os';
import { randomUUID } from 'node:crypto';
import { KubeConfig } from '@kubernetes/client-node';
import { KubeClient } from '../kube/client.ts';
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
}

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
      'max-concurrent-reconciles': { type: 'string', default: '1' },
      'graceful-shutdown-timeout': { type: 'string', default: '30s' },
    },
  });
  const maxConcurrentReconciles = Number(values['max-concurrent-reconciles']);
  if (!Number.isInteger(maxConcurrentReconciles) || maxConcurrentReconciles < 1) throw new Error('--max-concurrent-reconciles must be a positive integer');
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
  const manager = new Manager({
    client: new KubeClient(cfg.kubeConfig),
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

export async function run(argv: string[]): Promise<number> {
  const log = logger('operator');
  const cfg = parseOperatorArgs(argv);
  const op = await startOperator(cfg);
  let stopping: Promise<void> | undefined;
  const onSignal = (sig: string) => {
    if (stopping) {
      log.warn('second signal; exiting now', { signal: sig });
      process.exit(1);
    }
    log.info('signal received; shutting down', { signal: sig });
    stopping = op.stop();
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  await op.done;
  await stopping;
  log.info('operator exited');
  // Everything is closed; this only guards against a stray handle keeping a terminated pod alive.
  setTimeout(() => process.exit(0), 2000).unref();
  return 0;
}
