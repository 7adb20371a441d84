// Prometheus gauges for one link, labelled by local and peer site. The gateway serves them on
// /metrics; tests read them from the same registry.
import { Counter, Gauge, Registry } from 'prom-client';
import type { LinkStatus } from './status.ts';

export class LinkMetrics {
  readonly registry: Registry;
  readonly #labels: { site: string; peer: string };
  readonly #rtt: Gauge<'site' | 'peer'>;
  readonly #loss: Gauge<'site' | 'peer'>;
  readonly #up: Gauge<'site' | 'peer'>;
  readonly #bw: Gauge<'site' | 'peer'>;
  readonly #rotations: Counter<'site' | 'peer'>;

  constructor(site: string, peer: string, registry: Registry = new Registry()) {
    this.registry = registry;
    this.#labels = { site, peer };
    const labelNames = ['site', 'peer'] as const;
    const registers = [registry];
    this.#rtt = new Gauge({ name: 'cloudnet_link_rtt_seconds', help: 'Median round-trip time of UDP echoes through the site tunnel', labelNames, registers });
    this.#loss = new Gauge({ name: 'cloudnet_link_loss_ratio', help: 'Fraction of unanswered tunnel probes in the recent window', labelNames, registers });
    this.#up = new Gauge({ name: 'cloudnet_link_up', help: '1 when LinkReady is True for the site link', labelNames, registers });
    this.#bw = new Gauge({ name: 'cloudnet_link_bandwidth_bytes_per_second', help: 'Achievable throughput estimated from bounded packet trains', labelNames, registers });
    this.#rotations = new Counter({ name: 'cloudnet_link_key_rotations_total', help: 'Completed WireGuard key rotations of this gateway', labelNames, registers });
    this.#up.set(this.#labels, 0);
  }

  update(s: LinkStatus): void {
    this.#up.set(this.#labels, s.ready ? 1 : 0);
    if (s.rttMs !== undefined) this.#rtt.set(this.#labels, s.rttMs / 1000);
    if (s.lossRatio !== undefined) this.#loss.set(this.#labels, s.lossRatio);
    if (s.bandwidthBps !== undefined) this.#bw.set(this.#labels, s.bandwidthBps);
  }

  rotated(): void { this.#rotations.inc(this.#labels); }
}
