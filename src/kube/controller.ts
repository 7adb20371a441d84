// A controller binds a primary informer, optional watches of related objects (possibly in another
// cluster) mapped back to primary keys, a workqueue and a Reconciler, with controller-runtime's
// result handling:
//   error            -> addRateLimited (per-key exponential backoff), counted as an error
//   TerminalError    -> no retry, counted as an error
//   requeueAfterMs>0 -> forget + addAfter
//   requeue          -> addRateLimited
//   success          -> forget
// Each reconcile gets a uuid reconcileID and a child logger keyed controller/namespace/name/reconcileID.
import { randomUUID } from 'node:crypto';
import { Workqueue, type RateLimiter } from './workqueue.ts';
import { requestPriority } from './ratelimit.ts';
import { ItemExponentialRateLimiter } from './backoff.ts';
import { realClock, type Clock } from './clock.ts';
import { objectKey, errMessage, type Informer } from './informer.ts';
import { keyString, parseKey, type ObjectKey, type Reconciler } from './types.ts';
import { isConflict, type KubeObject } from './rest.ts';
import type { OperatorMetrics, ControllerMetrics, ReconcileResultLabel } from './metrics.ts';
import { logger, type Logger } from '../util/log.ts';

/** Thrown by a reconciler for errors that retrying cannot fix (bad input): no requeue. */
export class TerminalError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'TerminalError';
  }
}

/** Maps a related object to the primary keys it affects. */
/** A primary key a watch maps to; `lowPriority`: it waits behind changes of objects in flight (e.g. it has not started). */
export type MappedKey = ObjectKey & { lowPriority?: boolean };

export type MapFunc<T extends KubeObject = KubeObject> = (obj: T) => MappedKey[];

/**
 * The cached objects differ only in resourceVersion: the informer's transform stripped everything
 * that changed, so nothing a reconcile reads did (controller-runtime's predicates filter the same
 * way). Reconciling anyway would split the folding window of a change that matters.
 */
export function sameButVersion(a: KubeObject, b: KubeObject): boolean {
  const strip = (o: KubeObject) => JSON.stringify({ ...o, metadata: { ...o.metadata, resourceVersion: undefined, managedFields: undefined } });
  return strip(a) === strip(b);
}

export interface WatchSpec<T extends KubeObject = KubeObject> {
  informer: Informer<T>;
  map: MapFunc<T>;
  /**
   * Wait this long before reconciling a key this watch enqueued: changes arriving meanwhile (two
   * sides of one migration moving a step) fold into one reconcile and one status write. 0: at once.
   */
  delayMs?: number;
}

export interface ControllerOptions<P extends KubeObject = KubeObject> {
  name: string;
  /** Informer of the primary resource; its keys are the reconcile keys. */
  informer: Informer<P>;
  reconciler: Reconciler;
  watches?: WatchSpec[];
  /** Filters primary update events (e.g. generationChanged); adds and deletes always pass. */
  updatePredicate?: (oldObj: P, newObj: P) => boolean;
  maxConcurrentReconciles?: number;
  /**
   * Workers that may reconcile new objects (low priority: initial list, creations, resyncs) at
   * once; the others stay free for changes of objects in flight. Default: all of them.
   */
  maxLowPriorityInFlight?: number;
  /** Bound on waiting for in-flight reconciles when stopping. Default 30 s. */
  drainTimeoutMs?: number;
  /**
   * Bound on waiting for the caches at start (controller-runtime's CacheSyncTimeout). After it the
   * workers start anyway: keys arrive as the primary cache fills, and readers fall back to live
   * reads for caches that are not synced. Default 2 min.
   */
  cacheSyncTimeoutMs?: number;
  newRateLimiter?: () => RateLimiter;
  metrics?: OperatorMetrics;
  clock?: Clock;
  log?: Logger;
}

export class Controller<P extends KubeObject = KubeObject> {
  readonly name: string;
  readonly maxConcurrentReconciles: number;
  private readonly opts: ControllerOptions<P>;
  private readonly log: Logger;
  private readonly clock: Clock;
  private readonly metrics?: ControllerMetrics;
  private queue: Workqueue | undefined;

  constructor(opts: ControllerOptions<P>) {
    this.opts = opts;
    this.name = opts.name;
    this.maxConcurrentReconciles = Math.max(1, opts.maxConcurrentReconciles ?? 1);
    this.log = opts.log ?? logger('controller', { controller: opts.name });
    this.clock = opts.clock ?? realClock;
    this.metrics = opts.metrics?.forController(opts.name);
    this.metrics?.maxConcurrent(this.maxConcurrentReconciles);
    this.metrics?.activeWorkers(0);
    const enqueueObj = (obj: KubeObject) => this.queue?.add(objectKey(obj));
    opts.informer.addEventHandler({
      // New objects (the initial list, a burst of creations) wait behind changes of objects in flight.
      onAdd: (obj) => this.queue?.add(objectKey(obj), { low: true }),
      onDelete: enqueueObj,
      onUpdate: (o, n) => {
        if (o === n) this.queue?.add(objectKey(n), { low: true }); // periodic resync
        else if (!opts.updatePredicate || opts.updatePredicate(o, n)) enqueueObj(n);
      },
    });
    for (const w of opts.watches ?? []) this.watch(w);
  }

  /**
   * Enqueues the primary keys that `w.map` returns for every change of `w.informer` (controller-
   * runtime's Watches with a mapping function). Usable after start, e.g. for the informers of a
   * remote cluster met at run time; those are not waited for at start. Returns an unregister function.
   */
  watch<T extends KubeObject>(w: WatchSpec<T>): () => void {
    const enqueueMapped = (obj: T) => {
      let keys: MappedKey[] = [];
      try {
        keys = w.map(obj);
      } catch (err) {
        this.log.error('watch map function threw', { err: errMessage(err) });
      }
      for (const k of keys) {
        if (k.lowPriority) this.queue?.add(keyString(k), { low: true });
        else if (w.delayMs) this.queue?.addAfter(keyString(k), w.delayMs);
        else this.queue?.add(keyString(k));
      }
    };
    return w.informer.addEventHandler({ onAdd: enqueueMapped, onDelete: enqueueMapped, onUpdate: (o, n) => { if (o !== n && !sameButVersion(o, n)) enqueueMapped(n); } });
  }

  /** All informers this controller reads have synced. */
  hasSynced(): boolean {
    return this.opts.informer.hasSynced() && (this.opts.watches ?? []).every((w) => w.informer.hasSynced());
  }

  /** Queues a reconcile from outside the informers (e.g. a remote cluster's credentials changed). */
  enqueue(key: MappedKey): void {
    this.queue?.add(keyString(key), key.lowPriority ? { low: true } : {});
  }

  enqueueAfter(key: ObjectKey, ms: number): void {
    this.queue?.addAfter(keyString(key), ms);
  }

  /**
   * Runs until `signal` aborts (shutdown or lost leadership): waits for the caches, queues every
   * primary key, and runs the workers. On abort it stops handing out work and waits (bounded) for
   * in-flight reconciles, whose ReconcileContext.signal is the same `signal`.
   */
  async start(signal: AbortSignal): Promise<void> {
    const informers = [this.opts.informer, ...(this.opts.watches ?? []).map((w) => w.informer)];
    const timeoutMs = this.opts.cacheSyncTimeoutMs ?? 120_000;
    const bounded = AbortSignal.any([signal, AbortSignal.timeout(timeoutMs)]);
    const synced = await Promise.all(informers.map((inf) => inf.waitForSync(bounded)));
    if (signal.aborted) return;
    if (!synced.every(Boolean)) {
      const late = informers.filter((i) => !i.hasSynced()).map((i) => i.name);
      this.log.error('caches did not sync in time; starting anyway (reads fall back to the API)', { timeoutMs, informers: late });
    }
    const queue = new Workqueue({
      name: this.name,
      clock: this.clock,
      rateLimiter: this.opts.newRateLimiter?.() ?? new ItemExponentialRateLimiter(),
      ...(this.opts.maxLowPriorityInFlight !== undefined ? { maxLowInFlight: this.opts.maxLowPriorityInFlight } : {}),
      metrics: this.opts.metrics?.forQueue(this.name),
    });
    this.opts.metrics?.trackQueue(this.name, queue);
    this.queue = queue;
    for (const key of this.opts.informer.keys()) queue.add(key, { low: true });
    this.log.info('starting workers', { workers: this.maxConcurrentReconciles });
    const workers = Array.from({ length: this.maxConcurrentReconciles }, () => this.worker(queue, signal));
    await new Promise<void>((resolve) => {
      if (signal.aborted) return resolve();
      signal.addEventListener('abort', () => resolve(), { once: true });
    });
    const drained = await queue.shutDownWithDrain(this.opts.drainTimeoutMs ?? 30_000);
    if (!drained) this.log.warn('in-flight reconciles did not finish before the drain timeout');
    else await Promise.all(workers);
    if (this.queue === queue) this.queue = undefined;
    this.log.info('workers stopped');
  }

  private async worker(queue: Workqueue, signal: AbortSignal): Promise<void> {
    for (;;) {
      const key = await queue.get();
      if (key === undefined) return;
      this.metrics?.activeWorkers(1);
      try {
        await this.reconcileKey(queue, key, signal);
      } finally {
        queue.done(key);
        this.metrics?.activeWorkers(-1);
      }
    }
  }

  private async reconcileKey(queue: Workqueue, key: string, signal: AbortSignal): Promise<void> {
    const objKey = parseKey(key);
    const reconcileID = randomUUID();
    const log = this.log.child({ controller: this.name, namespace: objKey.namespace ?? '', name: objKey.name, reconcileID });
    const t0 = this.clock.now();
    let result: ReconcileResultLabel;
    try {
      // The requests of a reconcile of a new object queue behind the others at the rate limiter.
      const res = (await requestPriority.run(queue.isLow(key) ? 'low' : 'normal', () => this.opts.reconciler.reconcile(objKey, { log, reconcileID, signal }))) ?? {};
      if (res.requeueAfterMs !== undefined && res.requeueAfterMs > 0) {
        queue.forget(key);
        queue.addAfter(key, res.requeueAfterMs);
        result = 'requeue_after';
      } else if (res.requeue) {
        queue.addRateLimited(key);
        result = 'requeue';
      } else {
        queue.forget(key);
        result = 'success';
      }
    } catch (err) {
      result = 'error';
      this.metrics?.error();
      if (err instanceof TerminalError) {
        this.metrics?.terminalError();
        queue.forget(key);
        log.error('reconcile failed permanently', { err: errMessage(err) });
      } else {
        queue.addRateLimited(key);
        // A write conflict only means the cache was behind: the retry reads the newer object.
        if (isConflict(err)) log.info('reconcile hit a write conflict; requeued', { err: errMessage(err), retries: queue.numRequeues(key) });
        else log.error('reconcile failed', { err: errMessage(err), retries: queue.numRequeues(key) });
      }
    }
    this.metrics?.reconciled(result, (this.clock.now() - t0) / 1000, queue.isLow(key));
  }
}

/** Update predicate: only spec changes (metadata.generation) trigger a reconcile. */
export function generationChanged(oldObj: KubeObject, newObj: KubeObject): boolean {
  return oldObj.metadata?.generation !== newObj.metadata?.generation;
}

/** Maps an object to the owners of `kind` named in its ownerReferences (same cluster and namespace). */
export function mapToOwners(kind: string, apiGroup?: string): MapFunc {
  return (obj) => (obj.metadata?.ownerReferences ?? [])
    .filter((r) => r.kind === kind && (apiGroup === undefined || r.apiVersion.split('/')[0] === apiGroup || (apiGroup === '' && !r.apiVersion.includes('/'))))
    .map((r) => ({ namespace: obj.metadata?.namespace, name: r.name }));
}

/**
 * Maps an object to the primary named by two labels. Owner references cannot cross clusters, so
 * objects we create in a remote cluster carry labels naming their primary in the local cluster.
 */
export function mapFromLabels(namespaceLabel: string, nameLabel: string): MapFunc {
  return (obj) => {
    const labels = obj.metadata?.labels ?? {};
    const name = labels[nameLabel];
    if (!name) return [];
    const namespace = labels[namespaceLabel];
    return [namespace ? { namespace, name } : { name }];
  };
}

/** Maps every related object to all current primary keys (e.g. a shared Secret or a Site). */
export function mapToAll(primary: Informer): MapFunc {
  return () => primary.keys().map(parseKey);
}
