// The Manager owns what a controller-runtime manager owns: shared informers (one per cluster,
// resource and selector), the controllers, leader election, the metrics registry, the Events
// recorders and the remote-cluster clients. Caches run on every replica (so standbys are warm and
// ready); controllers run only on the leader. Shutdown order matters: stop handing out work, wait
// (bounded) for in-flight reconciles, THEN release the Lease so the next leader never overlaps.
// Every shutdown step is logged and bounded, and the last one closes the API clients, which aborts
// whatever request or watch is still in flight (a hung renewal, a watch, a reconcile's call past
// the drain timeout): each settles with a rejection its caller handles, so shutdown always ends.
import { Gauge } from 'prom-client';
import { Controller } from './controller.ts';
import { Informer, restListWatcher, type InformerOptions, type ListWatchSelector, type TransformFunc } from './informer.ts';
import { LeaderElector, type LeaderElectionOptions } from './leader.ts';
import { EventRecorder } from './events.ts';
import { ClusterClients } from './clusters.ts';
import { KubeClient } from './client.ts';
import { OperatorMetrics } from './metrics.ts';
import type { KubeObject, RestClientOptions } from './rest.ts';
import type { ResourceRef } from './types.ts';
import { realClock, type Clock } from './clock.ts';
import { logger, type Logger } from '../util/log.ts';

/** The elector's own options minus what the manager supplies (client, callbacks, metrics). */
export type LeaderElectionConfig = Pick<LeaderElectionOptions,
  'namespace' | 'name' | 'identity' | 'leaseDurationMs' | 'renewDeadlineMs' | 'retryPeriodMs'>;

export interface ManagerOptions {
  client: KubeClient;
  /** Omit to run controllers without leader election (single replica, tests). */
  leaderElection?: LeaderElectionConfig;
  /**
   * The client the Lease is renewed with. Give it its own connection pool and no share of the
   * workers' rate limit (controller-runtime builds its own clientset for it): a renewal queued
   * behind a burst of reconciles would miss renewDeadline and stop the controllers. Default: `client`.
   */
  leaderElectionClient?: KubeClient;
  metrics?: OperatorMetrics;
  /** Resync period of informers created through informer(). Default 10 min; 0 disables. */
  resyncPeriodMs?: number;
  /** Bound on waiting for in-flight reconciles at shutdown. Default 30 s. */
  gracefulShutdownTimeoutMs?: number;
  /**
   * Bound on each later shutdown step (leader election with the Lease release, informers, cluster
   * clients, API clients). Default 5 s; a step past it is logged and shutdown goes on.
   */
  shutdownStepTimeoutMs?: number;
  /** Time source of the shutdown bounds (tests). */
  clock?: Clock;
  /** Identity used as Events' reportingInstance (pod name). */
  instance?: string;
  informerOptions?: Omit<InformerOptions, 'name'>;
  /** Rate limits, user agent and metrics of the clients built for remote clusters. */
  remoteClientOptions?: RestClientOptions;
  /** Bound on a controller's wait for its caches to sync at start. Default 2 min. */
  cacheSyncTimeoutMs?: number;
  log?: Logger;
}

/** A transform for a shared informer; `id` tells caches of the same resource with different shapes apart. */
export interface CacheShape {
  id: string;
  transform: TransformFunc;
}

/** Anything besides controllers that should run only while leading. */
export interface LeaderRunnable {
  readonly name: string;
  start(signal: AbortSignal): Promise<void>;
}

export class Manager {
  readonly client: KubeClient;
  readonly metrics: OperatorMetrics;
  readonly clusters: ClusterClients;
  private readonly opts: ManagerOptions;
  private readonly log: Logger;
  private readonly informers = new Map<KubeClient, Map<string, Informer>>();
  private readonly runnables: LeaderRunnable[] = [];
  private elector: LeaderElector | undefined;
  private started = false;
  private isReady = false;
  private startupInformers: Informer[] = [];
  private term: Promise<unknown> | undefined;

  constructor(opts: ManagerOptions) {
    this.opts = opts;
    this.client = opts.client;
    this.metrics = opts.metrics ?? new OperatorMetrics();
    this.log = opts.log ?? logger('manager');
    this.clusters = new ClusterClients({ local: opts.client, informerOptions: opts.informerOptions, clientOptions: opts.remoteClientOptions });
    // Each informer holds a watch on its cluster's API server: how many, per cluster, shows what
    // the caches cost the clusters (e.g. per-namespace informers of a peer).
    const informers = this.informers;
    new Gauge({
      name: 'cloudnet_informers', help: 'Informers (one watch each) the operator runs, by cluster', labelNames: ['cluster'], registers: [this.metrics.registry],
      collect() {
        this.reset();
        const byCluster = new Map<string, number>();
        for (const [client, perClient] of informers) byCluster.set(client.clusterName, (byCluster.get(client.clusterName) ?? 0) + perClient.size);
        for (const [cluster, n] of byCluster) this.set({ cluster }, n);
      },
    });
  }

  get cacheSyncTimeoutMs(): number {
    return this.opts.cacheSyncTimeoutMs ?? 120_000;
  }

  /**
   * A shared informer of `ref` on `client` (default: the local cluster), started with the manager.
   * With `shape`, objects are cached stripped; informers of other shapes are separate caches.
   */
  informer<T extends KubeObject = KubeObject>(ref: ResourceRef, sel: ListWatchSelector = {}, client: KubeClient = this.client, shape?: CacheShape): Informer<T> {
    let perClient = this.informers.get(client);
    if (!perClient) this.informers.set(client, (perClient = new Map()));
    const key = JSON.stringify([ref.group, ref.version, ref.plural, sel.namespace ?? '', sel.labelSelector ?? '', sel.fieldSelector ?? '', shape?.id ?? '']);
    let inf = perClient.get(key);
    if (!inf) {
      inf = new Informer(restListWatcher(client.rest, ref, sel), {
        resyncPeriodMs: this.opts.resyncPeriodMs ?? 10 * 60_000,
        ...this.opts.informerOptions,
        // managedFields are never read and are often the largest part of an object (controller-
        // runtime's TransformStripManagedFields): no cache keeps them.
        transform: shape ? (o: KubeObject) => shape.transform(stripManagedFields(o)) : stripManagedFields,
        name: `${ref.plural}${ref.group ? '.' + ref.group : ''}@${client.clusterName}${sel.namespace ? '/' + sel.namespace : ''}${sel.labelSelector ? `{${sel.labelSelector}}` : ''}`,
      });
      perClient.set(key, inf);
      if (this.started) inf.start();
    }
    return inf as unknown as Informer<T>;
  }

  /**
   * Stops and forgets one informer (e.g. of a peer namespace no migration uses any more); a later
   * informer() call with the same arguments starts a new one.
   */
  async releaseInformer(inf: Informer): Promise<void> {
    for (const [client, perClient] of this.informers) {
      for (const [key, candidate] of perClient) {
        if (candidate !== inf) continue;
        perClient.delete(key);
        if (perClient.size === 0) this.informers.delete(client);
        await inf.stop();
        return;
      }
    }
  }

  /** Stops and forgets the informers of a remote client (e.g. after its kubeconfig rotated). */
  async dropInformers(client: KubeClient): Promise<void> {
    const perClient = this.informers.get(client);
    this.informers.delete(client);
    await Promise.all([...(perClient?.values() ?? [])].map((i) => i.stop()));
  }

  add(runnable: Controller | LeaderRunnable): void {
    this.runnables.push(runnable);
  }

  eventRecorder(reportingController: string, client: KubeClient = this.client): EventRecorder {
    return new EventRecorder({ client, reportingController, reportingInstance: this.opts.instance ?? this.opts.leaderElection?.identity ?? 'cloudnet' });
  }

  /**
   * Readiness: every informer that existed at start has synced (true on standbys too, as in
   * controller-runtime). It latches: informers a controller adds later (e.g. for a remote cluster
   * that may be down) must not flap the pod out of its Service.
   */
  ready(): boolean {
    if (this.isReady) return true;
    if (!this.started) return false;
    this.isReady = this.startupInformers.every((i) => i.hasSynced());
    return this.isReady;
  }

  isLeader(): boolean {
    return this.opts.leaderElection ? (this.elector?.isLeader() ?? false) : this.started;
  }

  /** Runs until `signal` aborts, then shuts down in order and resolves. */
  async start(signal: AbortSignal): Promise<void> {
    if (this.started) throw new Error('manager already started');
    this.started = true;
    this.startupInformers = [...this.informers.values()].flatMap((m) => [...m.values()]);
    for (const i of this.startupInformers) i.start();
    const runAll = (termSignal: AbortSignal) => {
      const s = AbortSignal.any([termSignal, signal]);
      this.term = Promise.allSettled(this.runnables.map((r) => r.start(s).catch((err: unknown) => {
        this.log.error('runnable failed', { runnable: r.name, err: err instanceof Error ? err.message : String(err) });
      })));
    };
    const le = this.opts.leaderElection;
    let electorRun: Promise<void> | undefined;
    const electorAbort = new AbortController();
    if (le) {
      this.elector = new LeaderElector({
        client: this.opts.leaderElectionClient ?? this.client, ...le, metrics: this.metrics,
        onStartedLeading: (termSignal) => runAll(termSignal),
        onStoppedLeading: () => this.log.info('stopped leading; controllers stopped'),
      });
      electorRun = this.elector.run(electorAbort.signal);
    } else {
      runAll(new AbortController().signal);
    }
    await new Promise<void>((resolve) => {
      if (signal.aborted) return resolve();
      signal.addEventListener('abort', () => resolve(), { once: true });
    });
    await this.shutdown(electorAbort, electorRun);
  }

  /** The shutdown sequence; each step logged and bounded. Never throws. */
  private async shutdown(electorAbort: AbortController, electorRun: Promise<void> | undefined): Promise<void> {
    const clock = this.opts.clock ?? realClock;
    const t0 = clock.now();
    const stepMs = this.opts.shutdownStepTimeoutMs ?? 5_000;
    const late: string[] = [];
    const step = async (name: string, ms: number, run: () => Promise<unknown>) => {
      const s0 = clock.now();
      const outcome = await settleWithin(run(), ms, clock);
      if (outcome === 'timeout') {
        late.push(name);
        this.log.warn('shutdown step did not finish in time; going on', { step: name, timeoutMs: ms });
      } else if (outcome instanceof Error) {
        this.log.error('shutdown step failed; going on', { step: name, err: outcome.message });
      } else {
        this.log.info('shutdown step done', { step: name, ms: clock.now() - s0 });
      }
    };
    this.log.info('shutting down: draining in-flight reconciles');
    await step('drain reconciles', this.opts.gracefulShutdownTimeoutMs ?? 30_000, () => this.term ?? Promise.resolve());
    // Releases the Lease if we hold it (bounded by renewDeadline inside the elector).
    await step('stop leader election', stepMs, async () => {
      electorAbort.abort();
      await electorRun;
    });
    await step('stop informers', stepMs, () => Promise.all([...this.informers.values()].flatMap((m) => [...m.values()].map((i) => i.stop()))));
    await step('close remote cluster clients', stepMs, () => this.clusters.stop());
    // Last: aborts what is still in flight on any of them (a step above that timed out included).
    const clients = new Set<KubeClient>([this.client, ...this.informers.keys()]);
    if (this.opts.leaderElectionClient) clients.add(this.opts.leaderElectionClient);
    await step('close API clients', stepMs, () => Promise.all([...clients].map((c) => c.rest.close())));
    this.log.info('shutdown complete', { ms: clock.now() - t0, ...(late.length ? { timedOut: late } : {}) });
  }
}

/** 'done', the error it rejected with, or 'timeout' if `p` did not settle within `ms` on `clock`. */
export async function settleWithin(p: Promise<unknown>, ms: number, clock: Clock = realClock): Promise<'done' | 'timeout' | Error> {
  let handle: unknown;
  const expired = new Promise<'timeout'>((resolve) => { handle = clock.setTimeout(() => resolve('timeout'), ms); });
  try {
    return await Promise.race([p.then(() => 'done' as const, (err: unknown) => (err instanceof Error ? err : new Error(String(err)))), expired]);
  } finally {
    clock.clearTimeout(handle);
  }
}

/** The object without metadata.managedFields (a shallow copy; the rest is shared). */
export function stripManagedFields(o: KubeObject): KubeObject {
  if (!o.metadata?.managedFields) return o;
  const { managedFields: _drop, ...metadata } = o.metadata;
  return { ...o, metadata };
}
