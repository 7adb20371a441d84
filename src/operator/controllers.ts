// The one place where the operator's controllers are registered. Each factory receives the
// manager (shared informers, Events, remote-cluster clients, metrics) and returns what should run
// while this replica leads.
import type { Controller } from '../kube/controller.ts';
import type { Manager, LeaderRunnable } from '../kube/manager.ts';
import type { Logger } from '../util/log.ts';

export interface ControllerDeps {
  manager: Manager;
  /** Namespace the operator runs in (its Lease, and by default the Sites' kubeconfig Secrets). */
  namespace: string;
  maxConcurrentReconciles: number;
  log: Logger;
}

export type ControllerFactory = (deps: ControllerDeps) => Controller | LeaderRunnable | Array<Controller | LeaderRunnable>;

/** The WanMigration and Site controllers are added here once src/controller exports their factories. */
export const controllerFactories: ControllerFactory[] = [];
