// Transparent interception at the site gateway: registered migration flows (original destination
// = target node address and migration port) are redirected by nftables to a local port of the
// relay sender, one port per flow, so the accepting socket's port names the flow (Node has no
// getsockopt(SO_ORIGINAL_DST)). Everything else, including every flow nobody registered, passes
// through untouched: a destination missing from the map makes the lookup fail and the rule not
// match.
//
// One table, replaced in a single `nft -f` transaction on every change (deleting and re-adding it
// in one batch is atomic; connections already redirected keep their conntrack NAT binding):
//   table ip cloudnet_intercept {
//     map flows { type ipv4_addr . inet_service : inet_service; elements = { 198.51.100.3 . 40123 : 35001 } }
//     chain prerouting { type nat hook prerouting priority dstnat; ... redirect to ip daddr . tcp dport map @flows }
//     chain output     { type nat hook output priority -100; ...  (connections made on the gateway node itself) }
//     set ports { type inet_service; elements = { 35001 } }
//     chain input      { type filter hook input priority 0; ... tcp dport @ports ct status dnat accept; tcp dport @ports drop }
//   }
// The input rule keeps the per-flow ports for redirected connections only: nobody can reach a
// flow's relay port directly and be carried (and counted) as that migration.
import { run } from './exec.ts';

/** One redirect: TCP to destination goes to the local port instead. */
export interface RedirectFlow {
  destination: { host: string; port: number };
  localPort: number;
}

export interface NftOptions {
  /** nftables table (family ip). Default cloudnet_intercept. */
  table?: string;
  /** Runs `nft -f -` with the script on stdin (tests replace it). */
  nft?: (script: string) => Promise<void>;
}

const IPV4 = /^\d{1,3}(\.\d{1,3}){3}$/;
const TABLE = /^[A-Za-z][A-Za-z0-9_]{0,30}$/;

function checkFlow(f: RedirectFlow): void {
  const { host, port } = f.destination;
  if (!IPV4.test(host) || host.split('.').some((o) => Number(o) > 255)) throw new Error(`interception: not an IPv4 address: ${host}`);
  for (const p of [port, f.localPort]) if (!Number.isInteger(p) || p < 1 || p > 65535) throw new Error(`interception: bad port ${p}`);
}

/** The whole nft script that makes the redirects exactly `flows` (pure, for tests). */
export function nftScript(table: string, flows: readonly RedirectFlow[]): string {
  if (!TABLE.test(table)) throw new Error(`interception: bad nftables table name ${table}`);
  flows.forEach(checkFlow);
  const elements = flows.map((f) => `${f.destination.host} . ${f.destination.port} : ${f.localPort}`);
  const ports = [...new Set(flows.map((f) => f.localPort))];
  const rule = 'meta l4proto tcp redirect to ip daddr . tcp dport map @flows';
  return [
    // `add` then `delete` makes the delete safe when the table does not exist yet.
    `add table ip ${table}`,
    `delete table ip ${table}`,
    `table ip ${table} {`,
    `  map flows { type ipv4_addr . inet_service : inet_service;${elements.length ? ` elements = { ${elements.join(', ')} }` : ''} }`,
    `  chain prerouting { type nat hook prerouting priority dstnat; policy accept; ${rule}; }`,
    `  chain output { type nat hook output priority -100; policy accept; ${rule}; }`,
    `  set ports { type inet_service;${ports.length ? ` elements = { ${ports.join(', ')} }` : ''} }`,
    '  chain input { type filter hook input priority 0; policy accept; tcp dport @ports ct status dnat accept; tcp dport @ports drop; }',
    '}',
    '',
  ].join('\n');
}

export class NftInterceptor {
  readonly table: string;
  private readonly nft: (script: string) => Promise<void>;

  constructor(o: NftOptions = {}) {
    this.table = o.table ?? 'cloudnet_intercept';
    this.nft = o.nft ?? (async (script) => { await run('nft', ['-f', '-'], { input: script }); });
  }

  async apply(flows: readonly RedirectFlow[]): Promise<void> {
    await this.nft(nftScript(this.table, flows));
  }

  /** Removes the table (and with it every redirect). */
  async close(): Promise<void> {
    await this.nft(`add table ip ${this.table}\ndelete table ip ${this.table}\n`);
  }
}

/** `--intercept nft[:TABLE]` of `cloudnet relay send`. */
export function interceptorFromSpec(spec: string): NftInterceptor {
  const m = /^nft(?::(.+))?$/.exec(spec);
  if (!m) throw new Error(`unknown --intercept ${spec} (expected nft or nft:TABLE)`);
  return new NftInterceptor(m[1] ? { table: m[1] } : {});
}
