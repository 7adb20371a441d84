// Public surface of the controllers: reconciler factories and the controller factories the
// operator's manager runs (src/operator/controllers.ts). The provider ports they take are in
// src/api/ports.ts.
import { Controller, type MapFunc } from '../kube/controller.ts';
import type { KubeObject } from '../kube/rest.ts';
import type { ControllerFactory, ControllerDeps } from './factory.ts';
import { WanMigrationReconciler } from './wanmigration.ts';
import { SiteReconciler } from './site.ts';
import { siteClustersFrom } from './site-clusters.ts';
import { Res } from '../api/resources.ts';
import { MANAGED_BY, MANAGED_BY_LABEL } from './names.ts';
import { MIGRATION_NAME_ANNOTATION, MIGRATION_NAME_LABEL, MIGRATION_NAMESPACE_LABEL } from './target-objects.ts';
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
export { FINALIZER, MIGRATION_LABEL, RESTORE_RUN_STRATEGY, migrationNames } from './names.ts';

export interface ControllerProviders {
  link?: LinkProvider;
  storage?: StoragePreCopy;
  relay?: MigrationRelay;
  plan?: Partial<PlanOptions>;
}

/**
 * A VMIM of ours → its WanMigration. The full name is in an annotation, because the name label
 * is shortened beyond 63 characters; the label alone serves VMIMs made before the annotation.
 */
const mapToMigration: MapFunc = (obj) => {
  const md = obj.metadata ?? {};
  const namespace = md.labels?.[MIGRATION_NAMESPACE_LABEL];
  const name = md.annotations?.[MIGRATION_NAME_ANNOTATION] ?? md.labels?.[MIGRATION_NAME_LABEL];
  return namespace && name ? [{ namespace, name }] : [];
};

/** Reconcile on spec changes and on deletion requests, not on our own status writes. */
function specOrDeletionChanged(o: KubeObject, n: KubeObject): boolean {
  return o.metadata?.generation !== n.metadata?.generation || o.metadata?.deletionTimestamp !== n.metadata?.deletionTimestamp;
}

export function wanMigrationControllerFactory(providers: ControllerProviders = {}): ControllerFactory {
  return (d: ControllerDeps) => {
    const { manager } = d;
    const informer = manager.informer(Res.wanMigration);
    // Source VMIMs carry labels naming their WanMigration: their phase changes wake us up.
    const vmims = manager.informer(Res.vmim, { labelSelector: `${MANAGED_BY_LABEL}=${MANAGED_BY}` });
    return new Controller({
      name: 'wanmigration',
      informer,
      watches: [{ informer: vmims, map: mapToMigration }],
      updatePredicate: specOrDeletionChanged,
      maxConcurrentReconciles: d.maxConcurrentReconciles,
      metrics: manager.metrics,
      reconciler: new WanMigrationReconciler({
        local: manager.client,
        clusters: siteClustersFrom(manager.clusters, d.namespace),
        events: manager.eventRecorder('cloudnet.io/wanmigration-controller'),
        metrics: new WanMigrationMetrics(manager.metrics.registry),
        ...providers,
      }),
    });
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
