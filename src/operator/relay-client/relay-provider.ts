// The operator's MigrationRelay (src/api/ports.ts), on the sender relays' registration API:
//  - register: PUT the migration's flows (target node address and migration ports) and its relay
//    settings; the relay answers once the gateway redirects them;
//  - progress: the sender's stats, sessions attributed by registration (each session names the
//    WanMigration that registered its flow), into WanMigration.status.progress;
//  - release: DELETE the registration once memory moved or the migration rolled back.
// A relay that is down, slow or refuses says so in the report; progress then stays phase-based.
import type { MigrationRelay, RelayFlowRequest, RelayRequest, StepReport } from '../../api/ports.ts';
import { effectiveSpec, type MigrationProgress, type WanMigration } from '../../api/wanmigration.ts';
import { logger } from '../../util/log.ts';
import { migrationProgress, parseSenderStats } from '../../relay/transport/index.ts';
import { RelayApiClient, RelayApiError } from './api-client.ts';
import { relayFor, type RelayConfig } from './relay-config.ts';

const log = logger('relay-provider');

export interface RelayProviderOptions extends RelayConfig {
  /** Guest memory of the migrating VM (progress total, first-round ETA). */
  memoryBytes?(m: WanMigration, signal: AbortSignal): Promise<number | undefined>;
  /** Bound on one API request. Default 2 s. */
  timeoutMs?: number;
}

const errText = (e: unknown): string => (e instanceof Error ? e.message : String(e));

export class RelayApiProvider implements MigrationRelay {
  private readonly o: RelayProviderOptions;
  private readonly clients = new Map<string, RelayApiClient>();
  private readonly memory = new Map<string, number>();
  private readonly relayFor: (site: string) => string | undefined;

  constructor(o: RelayProviderOptions) {
    this.o = o;
    this.relayFor = relayFor(o.setting);
  }

  private client(site: string): RelayApiClient | undefined {
    const url = this.relayFor(site);
    if (!url) return undefined;
    let c = this.clients.get(url);
    if (!c) this.clients.set(url, (c = new RelayApiClient({ url, token: this.o.token, timeoutMs: this.o.timeoutMs ?? 2000, ...(this.o.ca ? { ca: this.o.ca } : {}) })));
    return c;
  }

  async register(req: RelayFlowRequest, signal: AbortSignal): Promise<StepReport> {
    const m = req.migration;
    const id = m.status?.migrationID;
    const site = req.site.metadata.name ?? '';
    const c = this.client(site);
    if (!c) return { state: 'Unavailable', reason: 'NoRelayForSite', message: `no sender relay is configured for Site ${site}` };
    if (!id) return { state: 'Progressing', reason: 'NotStarted', message: 'the migration has no ID yet' };
    const r = effectiveSpec(m).relay;
    try {
      const st = await c.register(id, {
        namespace: m.metadata.namespace ?? '', name: m.metadata.name ?? '', destinations: req.destinations,
        settings: { compression: r.compression, dedup: r.dedup, deltaPages: r.deltaPages, cacheSizeMiB: r.cacheSizeMiB, opaque: req.encrypted },
      }, signal);
      const flows = st.flows.map((f) => f.destination).join(', ');
      // The relay judged the link faster than it can carry a stream: the gateway leaves the flows
      // alone and the migration runs as a plain one (RelayOptimizing=False says why).
      if (st.bypass) return { state: 'Unavailable', reason: 'LinkFasterThanRelay', message: `${flows}: ${st.bypass}` };
      const cache = st.effective.cacheSizeMiB < r.cacheSizeMiB ? `; the relay's cache holds ${st.effective.cacheSizeMiB} MiB, less than the ${r.cacheSizeMiB} MiB asked for` : '';
      return { state: 'Ready', reason: 'FlowsIntercepted', message: `the site gateway redirects ${flows} to the relay (compression ${r.compression}, dedup ${r.dedup}, deltaPages ${r.deltaPages}, cache ${st.effective.cacheSizeMiB} MiB)${cache}` };
    } catch (e) {
      if (signal.aborted) throw e;
      if (e instanceof RelayApiError && e.status >= 400 && e.status < 500) {
        return { state: 'Unavailable', reason: e.status === 409 ? 'FlowConflict' : 'RelayRefused', message: errText(e) };
      }
      return { state: 'Progressing', reason: 'RelayUnreachable', message: `sender relay ${c.url}: ${errText(e)}` };
    }
  }

  /**
   * Best effort: a relay that is gone took its registrations with it (they live in its memory),
   * and one that is unreachable must not hold a finished migration or its rollback hostage; a
   * registration left behind only names ports of a migration that is over.
   */
  async release(req: RelayRequest, signal: AbortSignal): Promise<void> {
    const id = req.migration.status?.migrationID;
    const c = this.client(req.site.metadata.name ?? '');
    this.memory.delete(id ?? '');
    if (!c || !id) return;
    try {
      await c.release(id, signal);
    } catch (e) {
      if (signal.aborted) throw e;
      log.warn('could not release the migration\'s relay flows; going on', { relay: c.url, migrationID: id, error: errText(e) });
    }
  }

  async progress(req: RelayRequest, signal: AbortSignal): Promise<MigrationProgress | undefined> {
    const m = req.migration;
    const id = m.status?.migrationID;
    const c = this.client(req.site.metadata.name ?? '');
    if (!id || !c) return undefined;
    let stats: unknown;
    try {
      stats = await c.stats(signal);
    } catch (e) {
      if (signal.aborted) throw e;
      log.debug('relay stats unavailable; progress stays phase-based', { relay: c.url, migrationID: id, error: errText(e) });
      return undefined;
    }
    const mine = parseSenderStats(stats).sessions.filter((s) => s.owner?.migrationID === id);
    if (!mine.length) return undefined;
    return migrationProgress(mine, { nowMs: Date.now(), ...(await this.memoryOf(id, m, signal)) });
  }

  private async memoryOf(id: string, m: WanMigration, signal: AbortSignal): Promise<{ memoryBytes?: number }> {
    if (!this.o.memoryBytes) return {};
    if (!this.memory.has(id)) {
      try {
        const b = await this.o.memoryBytes(m, signal);
        if (b === undefined) return {}; // maybe later (the VM not yet readable): not cached
        this.memory.set(id, b);
      } catch (err) {
        log.debug('guest memory unknown', { migrationID: id, error: errText(err) });
        return {};
      }
    }
    return { memoryBytes: this.memory.get(id) };
  }
}
