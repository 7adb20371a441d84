// The reconcile contract shared by the runtime (src/kube) and the reconcilers (src/controller),
// copied from controller-runtime: a reconcile is idempotent, keyed by namespace/name, and says
// whether to requeue. Errors are retried with per-key exponential backoff by the workqueue.
import type { Logger } from '../util/log.ts';

export interface ObjectKey {
  namespace?: string;
  name: string;
}

export interface ReconcileContext {
  log: Logger;
  /** Unique per reconcile invocation; appears in every log line of that reconcile. */
  reconcileID: string;
  /** Aborted on shutdown or lost leadership: long waits must honour it. */
  signal: AbortSignal;
}

/** `requeueAfterMs` schedules a fresh reconcile (no backoff); `requeue` re-adds with rate limiting. */
export interface ReconcileResult {
  requeue?: boolean;
  requeueAfterMs?: number;
}

export interface Reconciler {
  reconcile(key: ObjectKey, ctx: ReconcileContext): Promise<ReconcileResult | void>;
}

// Defined in src/api (which imports nothing of ours) so the provider ports can name kinds too.
export type { ResourceRef } from '../api/resources.ts';

export function keyString(k: ObjectKey): string {
  return k.namespace ? `${k.namespace}/${k.name}` : k.name;
}

export function parseKey(s: string): ObjectKey {
  const i = s.indexOf('/');
  return i < 0 ? { name: s } : { namespace: s.slice(0, i), name: s.slice(i + 1) };
}
