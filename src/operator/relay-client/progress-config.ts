// The operator's setting for the relay progress reader, and the reader as a real install runs it.
//   CLOUDNET_RELAY_STATS_URL=http://relay-send.cloudnet-system:9410
//       one sender relay (`cloudnet relay send --stats 0.0.0.0:9410`) for every target Site;
//   CLOUDNET_RELAY_STATS_URL=site-b=http://10.0.0.7:9410,site-c=http://10.0.0.8:9410
//       one sender relay per target Site (a sender has one --peer, so one per site pair); a bare URL
//       among them applies to the Sites not named. file: URLs read a `--stats-file` instead.
import type { KubeClient } from '../../kube/client.ts';
import { Res } from '../../api/resources.ts';
import type { WanMigration } from '../../api/wanmigration.ts';
import { vmGuestMemoryBytes } from './guest-memory.ts';
import { RelayProgressReader } from './progress-reader.ts';

export interface RelayStatsSetting {
  /** Site name → stats URL. */
  bySite: ReadonlyMap<string, string>;
  /** For Sites not in bySite. */
  fallback?: string;
}

function checkUrl(s: string, whole: string): string {
  let u: URL;
  try { u = new URL(s); } catch { throw new Error(`relay stats URL ${JSON.stringify(s)} in ${JSON.stringify(whole)} is not a URL`); }
  if (!['http:', 'https:', 'file:'].includes(u.protocol)) throw new Error(`relay stats URL ${s} must be http, https or file`);
  return s;
}

/** Parses `URL` or `SITE=URL[,SITE=URL...][,URL]` (commas or whitespace between entries). */
export function parseRelayStatsSetting(value: string): RelayStatsSetting {
  const bySite = new Map<string, string>();
  let fallback: string | undefined;
  for (const entry of value.split(/[\s,]+/).filter(Boolean)) {
    const m = /^([a-z0-9]([-a-z0-9.]*[a-z0-9])?)=(.+)$/.exec(entry);
    if (m) {
      if (bySite.has(m[1])) throw new Error(`relay stats URL for Site ${m[1]} given twice`);
      bySite.set(m[1], checkUrl(m[3], value));
    } else {
      if (fallback) throw new Error(`more than one relay stats URL without a Site name in ${JSON.stringify(value)}`);
      fallback = checkUrl(entry, value);
    }
  }
  if (!bySite.size && !fallback) throw new Error('empty relay stats URL setting');
  return { bySite, ...(fallback ? { fallback } : {}) };
}

export function relayFor(setting: RelayStatsSetting): (site: string) => string | undefined {
  return (site) => setting.bySite.get(site) ?? setting.fallback;
}

export interface ProductionReaderDeps {
  /** The local cluster: source VMs (for guest memory). */
  client: KubeClient;
  /** The WanMigrations currently known (the controller's informer cache). */
  migrations(): readonly WanMigration[];
}

/** The reader `cloudnet operator` runs when CLOUDNET_RELAY_STATS_URL is set. */
export function relayProgressReader(setting: RelayStatsSetting, d: ProductionReaderDeps): RelayProgressReader {
  return new RelayProgressReader({
    relayFor: relayFor(setting),
    migrations: d.migrations,
    memoryBytes: async (m, signal) => {
      const vm = await d.client.tryGet(Res.vm, m.metadata.namespace, m.spec.vmName, signal);
      return vm ? vmGuestMemoryBytes(vm) : undefined;
    },
  });
}
