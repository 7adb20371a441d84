// Kubernetes Events (events.k8s.io/v1) for the objects we reconcile, so `kubectl describe` tells
// the story. Repeats of the same event (same object, type, reason, action and note) within the
// aggregation window are folded into one Event's `series` (count + lastObservedTime), roughly as
// client-go's event broadcaster does, instead of creating a new Event each time. Recording never
// throws and never blocks a reconcile: failures are logged.
import { randomBytes } from 'node:crypto';
import { KubeClient, Resources } from './client.ts';
import { isNotFound, type KubeObject } from './rest.ts';
import { microTime } from './leader.ts';
import { realClock, type Clock } from './clock.ts';
import { errMessage } from './informer.ts';
import { logger, type Logger } from '../util/log.ts';

export type EventType = 'Normal' | 'Warning';

export interface EventRecorderOptions {
  client: KubeClient;
  /** events.k8s.io reportingController, e.g. "cloudnet.io/wanmigration-controller". */
  reportingController: string;
  /** Pod name of this replica. */
  reportingInstance: string;
  /** Window in which repeats are aggregated. Default 6 minutes (client-go's isomorphic window). */
  aggregationWindowMs?: number;
  clock?: Clock;
  log?: Logger;
}

interface SeriesState {
  name: string;
  namespace: string;
  count: number;
  firstMs: number;
  lastMs: number;
}

export interface ObjectReference {
  apiVersion?: string;
  kind?: string;
  namespace?: string;
  name?: string;
  uid?: string;
  resourceVersion?: string;
}

export function referenceTo(obj: KubeObject): ObjectReference {
  const md = obj.metadata ?? {};
  return { apiVersion: obj.apiVersion, kind: obj.kind, namespace: md.namespace, name: md.name, uid: md.uid, resourceVersion: md.resourceVersion };
}

export class EventRecorder {
  private readonly o: EventRecorderOptions;
  private readonly clock: Clock;
  private readonly log: Logger;
  private readonly windowMs: number;
  private readonly series = new Map<string, SeriesState>();
  private chain: Promise<void> = Promise.resolve();

  constructor(opts: EventRecorderOptions) {
    this.o = opts;
    this.clock = opts.clock ?? realClock;
    this.log = opts.log ?? logger('events', { controller: opts.reportingController });
    this.windowMs = opts.aggregationWindowMs ?? 6 * 60_000;
  }

  /** Fire-and-forget: records in the background, in order. */
  event(regarding: KubeObject, type: EventType, reason: string, note: string, action = reason): void {
    void this.record(regarding, type, reason, note, action);
  }

  /** Records and resolves when the API call is done (never rejects). */
  record(regarding: KubeObject, type: EventType, reason: string, note: string, action = reason): Promise<void> {
    const run = this.chain.then(() => this.write(referenceTo(regarding), type, reason, note.slice(0, 1024), action));
    this.chain = run;
    return run;
  }

  /** Resolves once every event recorded so far has been written (for shutdown and tests). */
  flush(): Promise<void> {
    return this.chain;
  }

  private async write(ref: ObjectReference, type: EventType, reason: string, note: string, action: string): Promise<void> {
    // Cluster-scoped objects get their Events in "default", as client-go does.
    const namespace = ref.namespace || 'default';
    const key = JSON.stringify([ref.uid ?? `${ref.kind}/${namespace}/${ref.name}`, type, reason, action, note]);
    const nowMs = this.clock.now();
    this.gc(nowMs);
    try {
      const prev = this.series.get(key);
      if (prev && nowMs - prev.lastMs < this.windowMs) {
        prev.count++;
        prev.lastMs = nowMs;
        try {
          await this.o.client.patchMerge(Resources.event, prev.namespace, prev.name, {
            series: { count: prev.count, lastObservedTime: microTime(Date.now()) },
          }, AbortSignal.timeout(10_000));
          return;
        } catch (err) {
          if (!isNotFound(err)) throw err;
          this.series.delete(key); // the Event expired (TTL); start a new one
        }
      }
      // "<object>.<16 hex>" must stay a valid object name (253 characters) when the object's own
      // name is long: cut it, and never leave a "-" or "." before the dot.
      const suffix = randomBytes(8).toString('hex');
      const prefix = (ref.name ?? '').slice(0, 253 - suffix.length - 1).replace(/[^A-Za-z0-9]+$/, '');
      const name = `${prefix || 'object'}.${suffix}`;
      await this.o.client.create(Resources.event, {
        apiVersion: 'events.k8s.io/v1', kind: 'Event',
        metadata: { name, namespace },
        eventTime: microTime(Date.now()),
        reportingController: this.o.reportingController,
        reportingInstance: this.o.reportingInstance,
        action, reason, note, type,
        regarding: ref,
      }, { signal: AbortSignal.timeout(10_000) });
      this.series.set(key, { name, namespace, count: 1, firstMs: nowMs, lastMs: nowMs });
    } catch (err) {
      this.log.warn('failed to record event', { reason, object: `${namespace}/${ref.name}`, err: errMessage(err) });
    }
  }

  private gc(nowMs: number): void {
    if (this.series.size < 1024) return;
    for (const [k, s] of this.series) if (nowMs - s.lastMs >= this.windowMs) this.series.delete(k);
  }
}
