// The one place where the operator's controllers are registered, with the providers that fill
// their ports (src/api/ports.ts). Each factory (src/controller/factory.ts) receives the manager
// (shared informers, Events, remote-cluster clients, metrics) and returns what should run while
// this replica leads.
import { siteClustersFrom, siteControllerFactory, wanMigrationControllerFactory, type ControllerDeps, type ControllerFactory } from '../controller/index.ts';
import { GatewayLinkProvider } from '../link/provider.ts';
import { KubeAgentLauncher } from '../storage/launch/launcher.ts';
import { AgentStoragePreCopy } from '../storage/provider.ts';
import { Res } from '../api/resources.ts';
import { vmGuestMemoryBytes } from './relay-client/guest-memory.ts';
import { relayConfigFromEnv } from './relay-client/relay-config.ts';
import { RelayApiProvider } from './relay-client/relay-provider.ts';

export { RELAY_API_CA_FILE_ENV, RELAY_API_ENV, RELAY_API_TOKEN_FILE_ENV } from './relay-client/relay-config.ts';

/** Environment switch for the WireGuard link provider: `gateway` when site gateways run. */
export const LINK_PROVIDER_ENV = 'CLOUDNET_LINK_PROVIDER';

/** The image the storage agent Pods run (the operator's own image: `cloudnet agent ...`). */
export const AGENT_IMAGE_ENV = 'CLOUDNET_AGENT_IMAGE';
export const AGENT_IMAGE_PULL_POLICY_ENV = 'CLOUDNET_AGENT_IMAGE_PULL_POLICY';
/** The receiver relays' seed intakes (`relay receive --seed-listen`): `host:port` for every Site,
 *  or `site-b=host:port,...` per Site. Target agents of relayed pre-copies seed them when done. */
export const RELAY_SEED_ADDR_ENV = 'CLOUDNET_RELAY_SEED_ADDR';

/** Parses `HOST:PORT` or `SITE=HOST:PORT[,SITE=HOST:PORT...][,HOST:PORT]`. */
export function parseSeedAddrSetting(value: string): (site: string) => string | undefined {
  const bySite = new Map<string, string>();
  let fallback: string | undefined;
  for (const entry of value.split(/[\s,]+/).filter(Boolean)) {
    const m = /^(?:([a-z0-9](?:[-a-z0-9.]*[a-z0-9])?)=)?((?:\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+):\d{1,5})$/.exec(entry);
    if (!m) throw new Error(`${RELAY_SEED_ADDR_ENV}: ${JSON.stringify(entry)} is not [SITE=]HOST:PORT`);
    if (m[1]) bySite.set(m[1], m[2]);
    else fallback = m[2];
  }
  return (site) => bySite.get(site) ?? fallback;
}

/**
 * What `cloudnet operator` runs:
 *  - storage pre-copy (src/storage), with CLOUDNET_AGENT_IMAGE set (the chart sets it to the
 *    operator's image): for storage.mode CloudNetPreCopy the operator launches the agent Pods
 *    itself (src/storage/launch) and talks only to them; nothing in a WanMigration names an
 *    agent. Unset: CloudNetPreCopy stalls with StoragePreCopyUnavailable;
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
  const link = (d: ControllerDeps) => (gatewayLink ? { link: new GatewayLinkProvider({ client: d.manager.client, namespace: d.namespace }) } : {});
  // Parsed here so that a bad setting stops the operator at start, not at the first migration.
  const relayConfig = relayConfigFromEnv(env);
  const agentImage = env[AGENT_IMAGE_ENV];
  const seedRelay = env[RELAY_SEED_ADDR_ENV] ? parseSeedAddrSetting(env[RELAY_SEED_ADDR_ENV]) : undefined;
  const pullPolicy = env[AGENT_IMAGE_PULL_POLICY_ENV];
  if (pullPolicy && !['Always', 'IfNotPresent', 'Never'].includes(pullPolicy)) throw new Error(`${AGENT_IMAGE_PULL_POLICY_ENV} must be Always, IfNotPresent or Never`);
  const storage = (d: ControllerDeps) => (agentImage ? {
    storage: new AgentStoragePreCopy({
      launcher: new KubeAgentLauncher({
        local: d.manager.client, clusters: siteClustersFrom(d.manager.clusters, d.namespace), namespace: d.namespace,
        image: { image: agentImage, ...(pullPolicy ? { pullPolicy: pullPolicy as 'Always' | 'IfNotPresent' | 'Never' } : {}) },
        ...(seedRelay ? { seedRelay } : {}),
      }),
    }),
  } : {});
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
    (d) => wanMigrationControllerFactory({ ...storage(d), ...link(d), ...relay(d) })(d),
  ];
}
