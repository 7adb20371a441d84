// `cloudnet route-agent`: routes the peer sites' networks via the site gateway node, on every node
// that is not a gateway (route-agent.ts). SIGTERM/SIGINT remove the agent's routes and exit.
//   cloudnet route-agent --via GATEWAY_NODE_IP --network CIDR... [--interval-ms 5000]
//   cloudnet route-agent --kube [--namespace NS]     (the chart's DaemonSet)
// In a cluster the targets come from the gateways' published state (ConfigMaps
// cloudnet-gateway-<peer> in the release namespace): each gateway names its node's address
// (`cloudnet gateway --node-address`, the pod's hostIP) and the peer networks it tunnels.
import { parseArgs } from 'node:util';
import { numberFlag } from '../util/flags.ts';
import { logger } from '../util/log.ts';
import type { PublishedGatewayState } from './exchange.ts';
import { RouteAgent, type RouteTarget } from './route-agent.ts';

const log = logger('route-agent');

const USAGE = `usage: cloudnet route-agent --via GATEWAY_NODE_IP --network CIDR [--network CIDR]... [--interval-ms 5000]
       cloudnet route-agent --kube [--namespace cloudnet-system] [--interval-ms 5000]
  Routes the peer sites' networks (node, pod and migration networks, Site.spec.networks) via the
  site gateway node's address, re-checked every interval; removes its routes on exit. With --kube,
  what to route comes from the site gateways' published state in the namespace.`;

/** The route targets the gateways published (one per peer site whose gateway names its node). */
export function targetsFromStates(states: readonly (PublishedGatewayState | undefined)[]): RouteTarget[] {
  const out: RouteTarget[] = [];
  for (const s of states) if (s?.nodeAddress && s.peerNetworks?.length) out.push({ via: s.nodeAddress, networks: s.peerNetworks });
  return out;
}

async function kubeTargets(namespace: string): Promise<() => Promise<RouteTarget[]>> {
  // Loaded lazily so that the flag mode never pulls in the Kubernetes client.
  const [{ KubeConfig }, { KubeClient }, { Res }, { STATE_KEY }] = await Promise.all([
    import('@kubernetes/client-node'), import('../kube/client.ts'), import('../api/resources.ts'), import('./kube.ts'),
  ]);
  const kc = new KubeConfig();
  kc.loadFromDefault();
  const client = new KubeClient(kc);
  return async () => {
    const list = await client.list<{ data?: Record<string, string> } & import('../kube/rest.ts').KubeObject>(Res.configMap, namespace,
      { labelSelector: 'app.kubernetes.io/part-of=cloudnet,app.kubernetes.io/component=gateway' });
    return targetsFromStates(list.items.map((cm) => {
      try { return JSON.parse(cm.data?.[STATE_KEY] ?? '') as PublishedGatewayState; } catch { return undefined; }
    }));
  };
}

export async function run(argv: string[]): Promise<number> {
  const { values: v } = parseArgs({
    args: argv,
    options: {
      via: { type: 'string' }, network: { type: 'string', multiple: true }, 'interval-ms': { type: 'string' },
      kube: { type: 'boolean' }, namespace: { type: 'string' }, help: { type: 'boolean', short: 'h' },
    },
  });
  if (v.help) { console.log(USAGE); return 0; }
  let desired: () => Promise<RouteTarget[]>;
  if (v.kube) desired = await kubeTargets(v.namespace ?? 'cloudnet-system');
  else if (v.via && v.network?.length) { const t = { via: v.via, networks: v.network }; desired = async () => [t]; }
  else { console.error(USAGE); return 2; }
  const agent = new RouteAgent({ desired, intervalMs: numberFlag('interval-ms', v['interval-ms'], 5000, { min: 100, integer: true, unit: 'milliseconds' }) });
  await agent.start();
  log.info('route agent ready', v.kube ? { source: `gateway state in ${v.namespace ?? 'cloudnet-system'}` } : { via: v.via ?? '', networks: (v.network ?? []).join(',') });
  await new Promise<void>((resolve) => { process.once('SIGINT', resolve); process.once('SIGTERM', resolve); });
  await agent.stop();
  return 0;
}
