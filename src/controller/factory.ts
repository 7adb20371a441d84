// The contract between the reconcilers and whoever runs them: a factory receives the manager
// (shared informers, Events, remote-cluster clients, metrics) and returns what should run while
// this replica leads. Defined here, not in src/operator, so that the controllers know nothing of
// the process that wires them (the operator imports this, never the other way round).
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
