// The one place where the operator's controllers are registered. Each factory receives the
// manager (shared informers, Events, remote-cluster clients, metrics) and returns what should run
// while this replica leads.
import type { Controller } from '../kube/controller.ts';
import type { Manager, LeaderRunnable } from '../kube/manager.ts';
import type { Logger } from '../util/log.ts';
import { siteControllerFactory, wanMigrationControllerFactory } from '../controller/index.ts';
import { GatewayLinkProvider } from '../link/provider.ts';
import { AgentStoragePreCopy } from '../storage/provider.ts';

export interface ControllerDeps {
  manager: Manager;
  /** Namespace the operator runs in (its Lease, and by default the Sites' kubeconfig Secrets). */
  namespace: string;
  maxConcurrentReconciles: number;
  log: Logger;
}

export type ControllerFactory = (deps: ControllerDeps) => Controller | LeaderRunnable | Array<Controller | LeaderRunnable>;

/** Environment switch for the WireGuard link provider: `gateway` when site gateways run. */
export const LINK_PROVIDER_ENV = 'CLOUDNET_LINK_PROVIDER';

/**
 * What `cloudnet operator` runs:
 *  - storage pre-copy (src/storage): the agents named by the WanMigration's
 *    `cloudnet.io/storage-agent` annotation; it only matters for storage.mode CloudNetPreCopy;
 *  - the WAN link (src/link): with CLOUDNET_LINK_PROVIDER=gateway, the state the site gateways
 *    publish in ConfigMaps in the operator's namespace gates ConnectingLink. Without it (no
 *    gateways deployed) the link step only checks that the target cluster answers, and says so;
 *  - relay progress: not configured (the relay exposes per-session stats, but no operator-side
 *    reader exists yet), so progress comes from phases only.
 */
export function defaultControllerFactories(env: NodeJS.ProcessEnv = process.env): ControllerFactory[] {
  const gatewayLink = env[LINK_PROVIDER_ENV] === 'gateway';
  if (env[LINK_PROVIDER_ENV] && !gatewayLink) throw new Error(`${LINK_PROVIDER_ENV} must be "gateway" or unset, not ${env[LINK_PROVIDER_ENV]}`);
  const storage = new AgentStoragePreCopy();
  const link = (d: ControllerDeps) => (gatewayLink ? { link: new GatewayLinkProvider({ client: d.manager.client, namespace: d.namespace }) } : {});
  return [
    (d) => siteControllerFactory(link(d))(d),
    (d) => wanMigrationControllerFactory({ storage, ...link(d) })(d),
  ];
}
