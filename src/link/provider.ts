// The Site controller's view of the link (the LinkProvider port, src/api/ports.ts): it does not touch
// WireGuard itself; it reads what the site's gateway agent published in the ConfigMap
// `cloudnet-gateway-<site>` (kube.ts) and turns it into a StepReport and Site.status numbers.
// A gateway that stops publishing is reported, not trusted: its last word goes stale.
import type { KubeClient } from '../kube/client.ts';
import type { Site } from '../api/site.ts';
import type { LinkMeasurements, LinkProvider, LinkRequest, StepReport } from '../api/ports.ts';
import type { PublishedGatewayState } from './exchange.ts';
import { DEFAULT_GATEWAY_NAMESPACE, readGatewayState } from './kube.ts';

export interface GatewayLinkProviderOptions {
  /** The local cluster (where the gateways publish); a function lets it be wired before it exists. */
  client: KubeClient | (() => KubeClient);
  namespace?: string;
  /** A state older than this means the gateway is not reporting. Default 15 s (three 5 s heartbeats). */
  staleAfterMs?: number;
  now?: () => Date;
}

export const DEFAULT_STALE_AFTER_MS = 15_000;

/** Pure mapping from a published gateway state to the controller's StepReport. */
export function linkReport(siteName: string, state: PublishedGatewayState | undefined, now: Date, staleAfterMs = DEFAULT_STALE_AFTER_MS): StepReport {
  if (!state?.link) {
    return { state: 'Unavailable', reason: 'GatewayNotReporting', message: `no link state published for site ${siteName} yet (ConfigMap cloudnet-gateway-${siteName}); is the gateway running?` };
  }
  const age = now.getTime() - Date.parse(state.updatedAt);
  if (!(age <= staleAfterMs)) {
    return { state: 'Unavailable', reason: 'GatewayNotReporting', message: `the gateway's last link report for site ${siteName} is ${Math.round(age / 1000)} s old (last: ${state.link.reason})` };
  }
  const l = state.link;
  if (l.ready) return { state: 'Ready', reason: l.reason, message: l.message };
  if (l.reason === 'Connecting' || l.reason === 'PeerKeyMissing') return { state: 'Progressing', reason: l.reason, message: l.message };
  return { state: 'Failed', reason: l.reason, message: l.message };
}

export function linkMeasurements(state: PublishedGatewayState | undefined): LinkMeasurements {
  const l = state?.link;
  if (!l) return {};
  return {
    ...(l.rttMs !== undefined ? { rttMs: l.rttMs } : {}),
    ...(l.bandwidthBps !== undefined ? { bandwidthBps: l.bandwidthBps } : {}),
    ...(l.lossRatio !== undefined ? { lossRatio: l.lossRatio } : {}),
  };
}

export class GatewayLinkProvider implements LinkProvider {
  readonly #o: GatewayLinkProviderOptions;
  constructor(o: GatewayLinkProviderOptions) { this.#o = o; }

  #read(site: Site, signal: AbortSignal): Promise<PublishedGatewayState | undefined> {
    const client = typeof this.#o.client === 'function' ? this.#o.client() : this.#o.client;
    return readGatewayState(client, this.#o.namespace ?? DEFAULT_GATEWAY_NAMESPACE, site.metadata.name ?? '', signal);
  }

  async ensure(req: LinkRequest, signal: AbortSignal): Promise<StepReport> {
    const name = req.site.metadata.name ?? '';
    return linkReport(name, await this.#read(req.site, signal), this.#o.now?.() ?? new Date(), this.#o.staleAfterMs);
  }

  async probe(site: Site, signal: AbortSignal): Promise<LinkMeasurements> {
    const state = await this.#read(site, signal);
    const report = linkReport(site.metadata.name ?? '', state, this.#o.now?.() ?? new Date(), this.#o.staleAfterMs);
    return report.state === 'Unavailable' ? {} : linkMeasurements(state);
  }
}
