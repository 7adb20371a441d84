// Public surface of the controllers: reconciler factories and the controller factories the
// operator's manager runs (src/operator/controllers.ts). The provider ports they take are in
// src/api/ports.ts.
import { Controller } from '../kube/controller.ts';
import type { KubeObject } from '../kube/rest.ts';
import type { ControllerFactory, ControllerDeps } from './factory.ts';
import { WanMigrationReconciler } from './wanmigration.ts';
import { SiteReconciler } from './site.ts';
import { siteClustersFrom } from './site-clusters.ts';
import { Res } from '../api/resources.ts';
import { MigrationCaches } from './cache/migration-caches.ts';
import type { LinkProvider, MigrationRelay, StoragePreCopy } from '../api/ports.ts';
import type { PlanOptions } from './phases/plan.ts';
import type { Site } from '../api/site.ts';
import { WanMigrationMetrics } from './metrics.ts';

export { WanMigrationReconciler, newWanMigrationReconciler } from './wanmigration.ts';
export { SiteReconciler, newSiteReconciler, type SiteDeps } from './site.ts';
export { siteClustersFrom } from './site-clusters.ts';
export type { WanMigrationDeps, SiteClusters } from './deps.ts';
export type { ControllerDeps, ControllerFactory } from './factory.ts';
export type { Observed } from './phases/observed.ts';
export { plan, DEFAULT_PLAN_OPTIONS, type Plan, type PlanOptions } from './phases/plan.ts';
export { WanMigrationMetrics } from './metrics.ts';
export { MigrationCaches } from './cache/migration-caches.ts';
export { FINALIZER, MIGRATION_LABEL, RESTORE_RUN_STRATEGY, migrationNames } from './names.ts';

export interface ControllerProviders {
  link?: LinkProvider;
  storage?: StoragePreCopy;
  relay?: MigrationRelay;
  plan?: Partial<PlanOptions>;
  /** See MigrationCachesOptions.coalesceMs (default 500 ms). */
  coalesceMs?: number;
  /** See MigrationCachesOptions.sweepIntervalMs (default 60 s). */
  sweepIntervalMs?: number;
}

/** Reconcile on spec changes and on deletion requests, not on our own status writes. */
function specOrDeletionChanged(o: KubeObject, n: KubeObject): boolean {
  return o.metadata?.generation !== n.metadata?.generation || o.metadata?.deletionTimestamp !== n.metadata?.deletionTimestamp;
}

export function wanMigrationControllerFactory(providers: ControllerProviders = {}): ControllerFactory {
  return (d: ControllerDeps) => {
    const { manager } = d;
    const informer = manager.informer(Res.wanMigration);
    // Reads come from caches of both clusters, whose changes wake the migrations they concern.
    const { coalesceMs, sweepIntervalMs, ...ports } = providers;
    const caches = new MigrationCaches(manager, { coalesceMs, sweepIntervalMs });
    const controller = new Controller({
      name: 'wanmigration',
      informer,
      updatePredicate: specOrDeletionChanged,
      maxConcurrentReconciles: d.maxConcurrentReconciles,
      // New migrations take at most a quarter of the workers: a burst of creations never leaves
      // the migrations in flight waiting for a worker (their status would lag behind).
      maxLowPriorityInFlight: Math.max(1, Math.floor(d.maxConcurrentReconciles / 4)),
      cacheSyncTimeoutMs: manager.cacheSyncTimeoutMs,
      metrics: manager.metrics,
      reconciler: new WanMigrationReconciler({
        local: manager.client,
        clusters: siteClustersFrom(manager.clusters, d.namespace),
        events: manager.eventRecorder('cloudnet.io/wanmigration-controller'),
        metrics: new WanMigrationMetrics(manager.metrics.registry),
        caches,
        ...ports,
      }),
    });
    caches.bind(controller);
    // A rotated kubeconfig Secret: the migrations of the Sites that use it look again.
    manager.clusters.onSecretChange((ref) => {
      for (const s of manager.informer(Res.site).list() as unknown as Site[]) {
        const r = s.spec.kubeconfigSecretRef;
        if (r.namespace === ref.namespace && r.name === ref.name) caches.enqueueSite(s.metadata.name ?? '');
      }
    });
    return controller;
  };
}

export function siteControllerFactory(providers: Pick<ControllerProviders, 'link'> & { notReadyRetryMs?: number } = {}): ControllerFactory {
  return (d: ControllerDeps) => {
    const { manager } = d;
    const informer = manager.informer(Res.site);
    const controller = new Controller({
      name: 'site',
      informer,
      updatePredicate: specOrDeletionChanged,
      maxConcurrentReconciles: d.maxConcurrentReconciles,
      cacheSyncTimeoutMs: manager.cacheSyncTimeoutMs,
      metrics: manager.metrics,
      reconciler: new SiteReconciler({
        local: manager.client,
        clusters: siteClustersFrom(manager.clusters, d.namespace),
        events: manager.eventRecorder('cloudnet.io/site-controller'),
        ...providers,
      }),
    });
    // A rotated kubeconfig Secret re-checks the Sites that use it.
    manager.clusters.onSecretChange((ref) => {
      for (const s of informer.list() as unknown as Site[]) {
        const r = s.spec.kubeconfigSecretRef;
        if (r.namespace === ref.namespace && r.name === ref.name) controller.enqueue({ name: s.metadata.name ?? '' });
      }
    });
    return controller;
  };
}
