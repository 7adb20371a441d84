// The operator's MigrationRelay (src/api/ports.ts): reads the sender relay's per-session
// stats (`cloudnet relay send --stats HOST:PORT` → GET /stats, or a `--stats-file` as a file: URL),
// finds the sessions that carry the migration (src/relay/transport/session-owners.ts) and turns them into
// WanMigration.status.progress (src/relay/transport/progress.ts). A relay that is down, slow or not yet carrying the
// stream yields undefined: progress then stays phase-based, and the reconcile goes on.
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import type { MigrationRelay, RelayRequest } from '../../api/ports.ts';
import { Phases, type MigrationProgress, type WanMigration } from '../../api/wanmigration.ts';
import { logger } from '../../util/log.ts';
import { migrationProgress, parseSenderStats, type RelaySession } from '../../relay/transport/progress.ts';
import { attributeSessions, DEFAULT_CLOCK_SLACK_MS, type Claimant } from '../../relay/transport/session-owners.ts';

const log = logger('relay-progress');

export interface RelayProgressReaderOptions {
  /** The stats URL of the sender relay that carries migrations to this Site; undefined: none. */
  relayFor(siteName: string): string | undefined;
  /**
   * Every migration that may be streaming now (e.g. the WanMigration informer's cache), so that a
   * session is never given to one migration while another could own it. Default: the migrations
   * this reader was asked about in the last minute.
   */
  migrations?(): readonly WanMigration[];
  /** Guest memory of the migrating VM (progress total, first-round ETA); cached per migration. */
  memoryBytes?(m: WanMigration, signal: AbortSignal): Promise<number | undefined>;
  /** Relay listeners this migration's streams use, when something routes each migration to its own. */
  listeners?(m: WanMigration): readonly string[] | undefined;
  fetchStats?(url: string, signal: AbortSignal): Promise<unknown>;
  /** Bound on one stats request. Default 2 s. */
  timeoutMs?: number;
  slackMs?: number;
  now?(): number;
}

const RECENT_MS = 60_000;

/** GET <url>/stats for http(s) URLs (a URL already ending in /stats is kept); file: URLs are read. */
export async function fetchRelayStats(url: string, signal: AbortSignal): Promise<unknown> {
  const u = new URL(url);
  if (u.protocol === 'file:') return JSON.parse(await readFile(fileURLToPath(u), { encoding: 'utf8', signal })) as unknown;
  const res = await fetch(new URL('stats', u.href.endsWith('/') || u.pathname.endsWith('/stats') ? u : `${u.href}/`), { signal, headers: { accept: 'application/json' } });
  if (!res.ok) throw new Error(`HTTP ${res.status} from ${url}`);
  return (await res.json()) as unknown;
}

function memoryStartMs(m: WanMigration): number | undefined {
  if (m.status?.phase !== Phases.MigratingMemory || !m.status.phaseStartTime) return undefined;
  const t = Date.parse(m.status.phaseStartTime);
  return Number.isNaN(t) ? undefined : t;
}

export class RelayProgressReader implements MigrationRelay {
  private readonly o: RelayProgressReaderOptions;
  /** Per relay URL: session key → migration ID. */
  private readonly owners = new Map<string, Map<string, string>>();
  private readonly recent = new Map<string, { m: WanMigration; at: number }>();
  private readonly memory = new Map<string, number | undefined>();

  constructor(o: RelayProgressReaderOptions) {
    this.o = o;
  }

  async progress(req: RelayRequest, signal: AbortSignal): Promise<MigrationProgress | undefined> {
    const m = req.migration;
    const id = m.status?.migrationID;
    const relay = this.o.relayFor(req.site.metadata.name ?? '');
    if (!id || !relay) return undefined;
    const now = this.o.now?.() ?? Date.now();
    this.remember(id, m, now);
    let sessions: RelaySession[];
    try {
      const raw = await (this.o.fetchStats ?? fetchRelayStats)(relay, AbortSignal.any([signal, AbortSignal.timeout(this.o.timeoutMs ?? 2000)]));
      sessions = parseSenderStats(raw).sessions;
    } catch (err) {
      log.debug('relay stats unavailable; progress stays phase-based', { relay, migrationID: id, error: err instanceof Error ? err.message : String(err) });
      return undefined;
    }
    const key = (s: RelaySession) => `${s.id}@${s.startedMs}`;
    let owners = this.owners.get(relay);
    if (!owners) this.owners.set(relay, (owners = new Map()));
    attributeSessions(sessions.map((s) => ({ key: key(s), listener: s.target, startedMs: s.startedMs })), this.claimants(relay, m), owners, this.o.slackMs ?? DEFAULT_CLOCK_SLACK_MS);
    const mine = sessions.filter((s) => owners.get(key(s)) === id);
    if (!mine.length) {
      log.debug('no relay session attributed to the migration yet', { relay, migrationID: id, sessions: String(sessions.length) });
      return undefined;
    }
    return migrationProgress(mine, { nowMs: now, ...(await this.memoryOf(id, m, signal)) });
  }

  private remember(id: string, m: WanMigration, now: number): void {
    this.recent.set(id, { m, at: now });
    for (const [k, v] of this.recent) {
      if (now - v.at > RECENT_MS) { this.recent.delete(k); this.memory.delete(k); }
    }
  }

  /** Migrations in MigratingMemory whose stream may go through this relay. */
  private claimants(relay: string, asking: WanMigration): Claimant[] {
    const all = this.o.migrations ? [...this.o.migrations()] : [...this.recent.values()].map((r) => r.m);
    const byID = new Map<string, WanMigration>();
    // relay.enabled=false migrations count too: if the relay sits in their path anyway, their
    // sessions must not be mistaken for a relayed migration's.
    for (const m of all) if (m.status?.migrationID) byID.set(m.status.migrationID, m);
    byID.set(asking.status!.migrationID!, asking); // the informer's copy may lag this one
    const out: Claimant[] = [];
    for (const [migrationID, m] of byID) {
      const start = memoryStartMs(m);
      if (start === undefined || this.o.relayFor(m.spec.targetSite) !== relay) continue;
      const listeners = this.o.listeners?.(m);
      out.push({ migrationID, memoryStartMs: start, ...(listeners ? { listeners } : {}) });
    }
    return out;
  }

  private async memoryOf(id: string, m: WanMigration, signal: AbortSignal): Promise<{ memoryBytes?: number }> {
    if (!this.o.memoryBytes) return {};
    if (!this.memory.has(id)) {
      try {
        const b = await this.o.memoryBytes(m, signal);
        if (b === undefined) return {}; // maybe later (e.g. the VM not yet readable): do not cache
        this.memory.set(id, b);
      } catch (err) {
        log.debug('guest memory unknown', { migrationID: id, error: err instanceof Error ? err.message : String(err) });
        return {};
      }
    }
    const b = this.memory.get(id);
    return b === undefined ? {} : { memoryBytes: b };
  }
}
