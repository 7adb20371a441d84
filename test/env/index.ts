// The shared setup of every integration suite that needs Kubernetes:
//
//   import { useClusters } from '../env/index.ts';
//   const env = useClusters(2);            // at module level or inside describe()
//   test('…', async () => { const [a, b] = env.clusters; … });
//
// Clusters start in `before` (in parallel, KubeVirt/CDI CRDs installed) and stop in `after`,
// which node:test runs even when `before` or a test fails; the exit hooks in processes.ts
// cover a process that dies outright.
//
// Beware: node 24 starts the module-level `before` hooks of a file without waiting for the
// previous one, so a suite's own module-level `before` must `await env.ready()` (or pass
// `setup`), not read `env.clusters` directly. Inside describe() hooks run in order.
import { after, before } from 'node:test';
import { startClusters, type Cluster } from './cluster.ts';
import { installKubevirtCrds } from './manifests.ts';

export * from './cluster.ts';
export * from './manifests.ts';
export * from './rest.ts';
export { freePort } from '../helpers/ports.ts';

export interface ClusterFixtureOptions {
  /** Install the generated KubeVirt + CDI CRDs (default true). */
  kubevirtCrds?: boolean;
  names?: string[];
  /** Runs inside the same `before` once the clusters are up (install CRDs, RBAC, …). */
  setup?: (clusters: Cluster[]) => Promise<void>;
}

export interface ClusterFixture {
  /** The running clusters; only valid inside tests and hooks that run after `before`. */
  readonly clusters: Cluster[];
  /** Resolves with the clusters once started and set up (for other module-level hooks). */
  ready(): Promise<Cluster[]>;
  /** Wall time of startClusters(n) alone (no CRDs, no setup), once started. */
  readonly startupMs: number;
}

const SETUP_TIMEOUT_MS = 180_000;

export function useClusters(n: number, opts: ClusterFixtureOptions = {}): ClusterFixture {
  let clusters: Cluster[] | undefined;
  let starting: Promise<Cluster[]> | undefined;
  let startupMs = NaN;
  const start = async (): Promise<Cluster[]> => {
    const t0 = performance.now();
    const started = await startClusters(n, opts.names);
    startupMs = performance.now() - t0;
    clusters = started;
    if (opts.kubevirtCrds ?? true) await Promise.all(started.map((c) => installKubevirtCrds(c)));
    await opts.setup?.(started);
    return started;
  };
  before(async () => {
    starting = start();
    await starting;
  }, { timeout: SETUP_TIMEOUT_MS });
  after(async () => {
    const running = clusters ?? [];
    clusters = undefined;
    await Promise.all(running.map((c) => c.stop()));
  });
  return {
    get clusters(): Cluster[] {
      if (!clusters) throw new Error('clusters are not running: use env.clusters inside tests, after before() has run');
      return clusters;
    },
    get startupMs(): number {
      return startupMs;
    },
    ready(): Promise<Cluster[]> {
      if (!starting) return Promise.reject(new Error('clusters are not starting: call ready() from a hook or test'));
      return starting;
    },
  };
}
