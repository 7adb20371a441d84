// The one place where the operator's controllers are registered. Each factory receives the
// manager (shared informers, Events, remote-cluster clients, metrics) and returns what should run
// while this replica leads.
import type { Controller } from '../kube/controller.ts';
import type { Manager, LeaderRunnable } from '../kube/manager.ts';
import type { Logger } from '../util/log.ts';
import { siteControllerFactory, wanMigrationControllerFactory } from '../controller/index.ts';

export interface ControllerDeps {
  manager: Manager;
  /** Namespace the operator runs in (its Lease, and by default the Sites' kubeconfig Secrets). */
  namespace: string;
  maxConcurrentReconciles: number;
  log: Logger;
}

export type ControllerFactory = (deps: ControllerDeps) => Controller | LeaderRunnable | Array<Controller | LeaderRunnable>;

/**
 * What `cloudnet operator` runs. The link and storage providers are left out until their issues
 * land: the reconcilers then report those steps honestly instead of pretending.
 */
export function defaultControllerFactories(): ControllerFactory[] {
  return [siteControllerFactory(), wanMigrationControllerFactory()];
}
