// `cloudnet route-agent`: routes the peer sites' networks via the site gateway node, on every node
// that is not a gateway (route-agent.ts). SIGTERM/SIGINT remove the agent's routes and exit.
//   cloudnet route-agent --via GATEWAY_NODE_IP --network CIDR... [--interval-ms 5000]
import { parseArgs } from 'node:util';
import { logger } from '../util/log.ts';
import { RouteAgent } from './route-agent.ts';

const log = logger('route-agent');

const USAGE = `usage: cloudnet route-agent --via GATEWAY_NODE_IP --network CIDR [--network CIDR]... [--interval-ms 5000]
  Routes each --network (the peer sites' node, pod and migration networks, Site.spec.networks)
  via the site gateway node's address, re-checked every interval; removes its routes on exit.`;

export async function run(argv: string[]): Promise<number> {
  const { values: v } = parseArgs({
    args: argv,
    options: { via: { type: 'string' }, network: { type: 'string', multiple: true }, 'interval-ms': { type: 'string' }, help: { type: 'boolean', short: 'h' } },
  });
  if (v.help) { console.log(USAGE); return 0; }
  if (!v.via || !v.network?.length) { console.error(USAGE); return 2; }
  const target = { via: v.via, networks: v.network };
  const agent = new RouteAgent({ desired: async () => [target], intervalMs: Number(v['interval-ms'] ?? 5000) });
  await agent.start();
  log.info('route agent ready', { via: v.via, networks: v.network.join(',') });
  await new Promise<void>((resolve) => { process.once('SIGINT', resolve); process.once('SIGTERM', resolve); });
  await agent.stop();
  return 0;
}
