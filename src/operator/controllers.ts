// The one place where the operator's controllers are registered, with the providers that fill
// their ports (src/api/ports.ts). Each factory (src/controller/factory.ts) receives the manager
// (shared informers, Events, remote-cluster clients, metrics) and returns what should run while
// this replica leads.
import { siteControllerFactory, wanMigrationControllerFactory, type ControllerDeps, type ControllerFactory } from '../controller/index.ts';
import { GatewayLinkProvider } from '../link/provider.ts';
import { AgentStoragePreCopy } from '../storage/provider.ts';
import { Res } from '../api/resources.ts';
import { vmGuestMemoryBytes } from './relay-client/guest-memory.ts';
import { relayConfigFromEnv } from './relay-client/relay-config.ts';
import { RelayApiProvider } from './relay-client/relay-provider.ts';

export { RELAY_API_CA_FILE_ENV, RELAY_API_ENV, RELAY_API_TOKEN_FILE_ENV } from './relay-client/relay-config.ts';

/** Environment switch for the WireGuard link provider: `gateway` when site gateways run. */
export const LINK_PROVIDER_ENV = 'CLOUDNET_LINK_PROVIDER';

/**
 * What `cloudnet operator` runs:
 *  - storage pre-copy (src/storage): the agents named by the WanMigration's
 *    `cloudnet.io/storage-agent` annotation; it only matters for storage.mode CloudNetPreCopy;
 *  - the WAN link (src/link): with CLOUDNET_LINK_PROVIDER=gateway, the state the site gateways
 *    publish in ConfigMaps in the operator's namespace gates ConnectingLink. Without it (no
 *    gateways deployed) the link step only checks that the target cluster answers, and says so;
 *  - the relay (relay-client/): with CLOUDNET_RELAY_API naming the source site's sender relay
 *    (`cloudnet relay send --api ...`, per target Site or one for all) and its token
 *    (CLOUDNET_RELAY_API_TOKEN_FILE), a WanMigration with relay.enabled registers its flows (the
 *    target node address and migration ports from the receiver VMI's status) and relay settings;
 *    the site gateway then redirects exactly those flows to the relay, whose sessions each name
 *    their WanMigration: status.progress (bytes sent, bytes over WAN, rounds, reduction ratio, ETA)
 *    and the RelayOptimizing condition come from there. Unset: no relay, and relay.enabled raises
 *    a RelayUnavailable warning (the operator cannot vouch for a relay it cannot see).
 */
export function defaultControllerFactories(env: NodeJS.ProcessEnv = process.env): ControllerFactory[] {
  const gatewayLink = env[LINK_PROVIDER_ENV] === 'gateway';
  if (env[LINK_PROVIDER_ENV] && !gatewayLink) throw new Error(`${LINK_PROVIDER_ENV} must be "gateway" or unset, not ${env[LINK_PROVIDER_ENV]}`);
  const storage = new AgentStoragePreCopy();
  const link = (d: ControllerDeps) => (gatewayLink ? { link: new GatewayLinkProvider({ client: d.manager.client, namespace: d.namespace }) } : {});
  // Read here so that a bad setting stops the operator at start, not at the first migration.
  const relayConfig = relayConfigFromEnv(env);
  const relay = (d: ControllerDeps) => {
    if (!relayConfig) return {};
    return {
      relay: new RelayApiProvider({
        ...relayConfig,
        memoryBytes: async (m, signal) => {
          const vm = await d.manager.client.tryGet(Res.vm, m.metadata.namespace, m.spec.vmName, signal);
          return vm ? vmGuestMemoryBytes(vm) : undefined;
        },
      }),
    };
  };
  return [
    (d) => siteControllerFactory(link(d))(d),
    (d) => wanMigrationControllerFactory({ storage, ...link(d), ...relay(d) })(d),
  ];
}
