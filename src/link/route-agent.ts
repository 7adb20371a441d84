// The route agent: runs on every node that is not a site gateway (the chart's DaemonSet) and
// routes the peer sites' networks (their node, pod and migration networks: Site.spec.networks) via
// the gateway node's address on the site network. Only the gateway node has the WireGuard tunnel;
// without these routes a VM's node could not reach the target node's migration proxy, the NBD
// disk port or the peer's synchronization controller, and the gateway could not intercept them.
//
// Its routes carry their own routing protocol number (`proto 211`), so the agent can tell them from
// everyone else's: each round it replaces the routes it wants and deletes its own that are no
// longer wanted; on exit it removes all of its own. It never touches a route it did not make.
import { networkInterfaces } from 'node:os';
import { logger } from '../util/log.ts';
import { normalizeCidr, parseCidr } from './cidr.ts';
import { run } from './exec.ts';

const log = logger('route-agent');

/** Routing protocol number of the agent's routes (unassigned in iproute2's rt_protos). */
export const ROUTE_PROTO = 211;

export interface RouteTarget {
  /** The gateway node's address on this site's network. */
  via: string;
  /** The peer networks routed there. */
  networks: string[];
}

export interface RouteAgentOptions {
  /** What to route now (flags: fixed; in a cluster: from Sites and the gateway's published state). */
  desired(): Promise<RouteTarget[]>;
  intervalMs?: number;
  /** Runs `ip` with these arguments, returning stdout (tests replace it). */
  ip?(args: string[]): Promise<string>;
  /** This node's own addresses (default: its interfaces'). A target via one of them is this node:
   *  the gateway node itself, which routes its peers through the tunnel, not via itself. */
  localAddresses?(): string[];
}

function ownAddresses(): string[] {
  return Object.values(networkInterfaces()).flatMap((l) => (l ?? []).map((a) => a.address));
}

interface RouteRow { dst?: string; gateway?: string }

/** `ip route` wants a network address: 198.18.48.0/20, not 198.18.50.1/20. */
function normalize(cidr: string): string {
  if (parseCidr(cidr).family !== 4) throw new Error(`route agent: only IPv4 networks are routed (${cidr})`);
  return normalizeCidr(cidr);
}

export class RouteAgent {
  private readonly o: RouteAgentOptions;
  private readonly ip: (args: string[]) => Promise<string>;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  /** What the last round applied: network → via. */
  applied = new Map<string, string>();

  constructor(o: RouteAgentOptions) {
    this.o = o;
    this.ip = o.ip ?? ((args) => run('ip', args));
  }

  /** One round: our routes become exactly the desired ones. */
  async reconcile(): Promise<void> {
    const want = new Map<string, string>();
    const own = new Set((this.o.localAddresses ?? ownAddresses)());
    for (const t of await this.o.desired()) {
      if (own.has(t.via)) continue;
      for (const n of t.networks) want.set(normalize(n), t.via);
    }
    const have = JSON.parse((await this.ip(['-j', '-4', 'route', 'show', 'proto', String(ROUTE_PROTO)])) || '[]') as RouteRow[];
    for (const r of have) {
      if (!r.dst) continue;
      const dst = r.dst.includes('/') ? r.dst : `${r.dst}/32`;
      if (want.get(dst) !== r.gateway) {
        await this.ip(['route', 'del', dst, 'proto', String(ROUTE_PROTO)]);
        log.info('route removed', { network: dst });
      }
    }
    for (const [dst, via] of want) {
      const cur = have.find((r) => (r.dst?.includes('/') ? r.dst : `${r.dst}/32`) === dst);
      if (cur?.gateway === via) continue;
      await this.ip(['route', 'replace', dst, 'via', via, 'proto', String(ROUTE_PROTO)]);
      log.info('route set', { network: dst, via });
    }
    this.applied = want;
  }

  /** Reconciles now and then every intervalMs (errors are logged and retried next round). */
  async start(): Promise<void> {
    await this.reconcile();
    const loop = (): void => {
      this.timer = setTimeout(() => {
        void this.reconcile().catch((e: unknown) => log.warn('route round failed', { error: e instanceof Error ? e.message : String(e) }))
          .finally(() => { if (!this.stopped) loop(); });
      }, this.o.intervalMs ?? 5000);
    };
    loop();
  }

  /** Stops and removes every route the agent made. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.ip(['route', 'flush', 'proto', String(ROUTE_PROTO)]).catch(() => undefined);
  }
}
