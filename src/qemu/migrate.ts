// QEMU -> QEMU live migration driven over QMP, with the numbers the CloudNet evaluation reports:
// total time, downtime, setup time, bytes, rounds (ram.dirty-sync-count) and dirty rate.
// The two ends may sit in different network namespaces: the caller passes the destination's
// listen URI and the URI the source connects to (possibly a relay or WAN address in between).
import { stat } from 'node:fs/promises';
import { performance } from 'node:perf_hooks';
import { setTimeout as delay } from 'node:timers/promises';
import { logger } from '../util/log.ts';
import { holdDestination } from './memory-check.ts';
import type { QmpClient } from './qmp.ts';
import type {
  MigrationCapabilityName, MigrationInfo, MigrationParameters, MigrationStatus, RunState, XbzrleCacheStats,
} from './qmp-types.ts';

const log = logger('qemu-migrate');

export interface MigrationTuning {
  /** Set on both ends (multifd, for one, must match). */
  capabilities?: Partial<Record<MigrationCapabilityName, boolean>>;
  /** Set on both ends; e.g. max-bandwidth (QEMU's default is only 128 MiB/s), downtime-limit. */
  parameters?: MigrationParameters;
}

export interface MigrateOptions extends MigrationTuning {
  source: QmpClient;
  /** A QEMU started with `-incoming defer`; omit when the stream goes elsewhere (file, recorder). */
  destination?: QmpClient;
  /** Given to the destination's migrate-incoming, e.g. `tcp:0.0.0.0:4444`. */
  incomingUri?: string;
  /** Given to the source's migrate, e.g. `tcp:198.51.100.2:4444` or `exec:cat > file`. */
  uri: string;
  pollMs?: number;
  timeoutMs?: number;
  onSample?: (s: MigrationSample) => void;
  /** Runs at switch-over of a completed migration while both ends are paused: the destination is
   *  held after the load (memory-check.ts), the hook runs (e.g. compares RAM), then it continues. */
  atSwitchover?: () => Promise<void>;
}

export interface MigrationSample {
  /** ms since the migrate command was issued (host clock). */
  t: number;
  status: MigrationStatus | undefined;
  transferred: number;
  remaining: number;
  rounds: number;
  dirtyPagesRate: number;
  mbps: number;
}

export interface MigrationResult {
  status: MigrationStatus;
  error?: string;
  /** QEMU's figures (ms). */
  totalTimeMs: number;
  downtimeMs: number;
  setupTimeMs: number;
  /** Host-measured time from the migrate command until completion was observed. */
  wallTimeMs: number;
  /** RAM bytes QEMU sent (ram.transferred): pages, zero-page records and headers, not device state.
   *  With multifd compression this counts pages before compression: see multifdBytes, or count
   *  the bytes on the wire (stream-tee.ts, the WAN emulator's counters). */
  ramTransferredBytes: number;
  ramTotalBytes: number;
  duplicatePages: number;
  normalPages: number;
  normalBytes: number;
  /** ram.dirty-sync-count: dirty-bitmap syncs, i.e. pre-copy rounds (including the final one). */
  rounds: number;
  /** Largest sampled dirty rate, bytes/s. */
  dirtyRateMaxBps: number;
  pageSize: number;
  precopyBytes?: number;
  downtimeBytes?: number;
  multifdBytes?: number;
  xbzrle?: XbzrleCacheStats;
  /** The destination's run state once the source reported completion. */
  destinationStatus?: RunState;
  samples: MigrationSample[];
  info: MigrationInfo;
}

const FINAL: ReadonlySet<MigrationStatus> = new Set(['completed', 'failed', 'cancelled']);

export async function applyTuning(qmp: QmpClient, t: MigrationTuning): Promise<void> {
  const caps = Object.entries(t.capabilities ?? {}).map(([capability, state]) => ({
    capability: capability as MigrationCapabilityName,
    state: Boolean(state),
  }));
  if (caps.length) await qmp.execute('migrate-set-capabilities', { capabilities: caps });
  if (t.parameters && Object.keys(t.parameters).length) await qmp.execute('migrate-set-parameters', t.parameters);
}

/** Runs one migration to completion (or failure) and returns its figures. Throws on timeout. */
export async function migrate(o: MigrateOptions): Promise<MigrationResult> {
  if (o.destination) {
    if (!o.incomingUri) throw new Error('migrate: a destination needs incomingUri');
    await applyTuning(o.destination, o);
    if (o.atSwitchover) await holdDestination(o.destination);
    await o.destination.execute('migrate-incoming', { uri: o.incomingUri });
  }
  await applyTuning(o.source, o);
  const pollMs = o.pollMs ?? 100;
  const timeoutMs = o.timeoutMs ?? 300_000;
  const t0 = performance.now();
  await o.source.execute('migrate', { uri: o.uri });
  log.info('migration started', { uri: o.uri });

  const samples: MigrationSample[] = [];
  let info: MigrationInfo;
  for (;;) {
    info = await o.source.execute('query-migrate');
    const ram = info.ram;
    const sample: MigrationSample = {
      t: performance.now() - t0,
      status: info.status,
      transferred: ram?.transferred ?? 0,
      remaining: ram?.remaining ?? 0,
      rounds: ram?.['dirty-sync-count'] ?? 0,
      dirtyPagesRate: ram?.['dirty-pages-rate'] ?? 0,
      mbps: ram?.mbps ?? 0,
    };
    samples.push(sample);
    o.onSample?.(sample);
    if (info.status && FINAL.has(info.status)) break;
    if (sample.t > timeoutMs) {
      await o.source.execute('migrate_cancel').catch(() => undefined);
      throw new Error(`migration to ${o.uri} did not finish within ${timeoutMs} ms (last: ${JSON.stringify(sample)})`);
    }
    await delay(pollMs);
  }
  const wallTimeMs = performance.now() - t0;
  const result = toResult(info, samples, wallTimeMs);
  if (result.status === 'completed' && o.destination) {
    if (o.atSwitchover) {
      const held = await waitStatus(o.destination, 'paused', 30_000);
      if (held !== 'paused') throw new Error(`destination is ${held}, not paused, after the migration completed`);
      // A hook that throws leaves the destination paused: its caller discards it.
      await o.atSwitchover();
      await o.destination.execute('cont');
    }
    result.destinationStatus = await waitRunning(o.destination, 10_000);
  }
  log.info('migration finished', { status: result.status, totalTimeMs: result.totalTimeMs, downtimeMs: result.downtimeMs });
  return result;
}

/** Migrates into a file through `exec:` (QEMU 7.2 has no `file:` URI): records the raw stream.
 *  The source ends paused (run state postmigrate). */
export async function migrateToFile(
  source: QmpClient,
  path: string,
  tuning: MigrationTuning = {},
): Promise<MigrationResult & { fileBytes: number }> {
  const quoted = `'${path.replace(/'/g, `'\\''`)}'`;
  const r = await migrate({ ...tuning, source, uri: `exec:cat > ${quoted}` });
  return { ...r, fileBytes: (await stat(path)).size };
}

function waitRunning(qmp: QmpClient, timeoutMs: number): Promise<RunState> {
  return waitStatus(qmp, 'running', timeoutMs);
}

async function waitStatus(qmp: QmpClient, want: RunState, timeoutMs: number): Promise<RunState> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const s = await qmp.execute('query-status');
    if (s.status === want || performance.now() > deadline) return s.status;
    await delay(20);
  }
}

function toResult(info: MigrationInfo, samples: MigrationSample[], wallTimeMs: number): MigrationResult {
  const ram = info.ram;
  const pageSize = ram?.['page-size'] ?? 4096;
  return {
    status: info.status ?? 'none',
    error: info['error-desc'],
    totalTimeMs: info['total-time'] ?? 0,
    downtimeMs: info.downtime ?? 0,
    setupTimeMs: info['setup-time'] ?? 0,
    wallTimeMs,
    ramTransferredBytes: ram?.transferred ?? 0,
    ramTotalBytes: ram?.total ?? 0,
    duplicatePages: ram?.duplicate ?? 0,
    normalPages: ram?.normal ?? 0,
    normalBytes: ram?.['normal-bytes'] ?? 0,
    rounds: ram?.['dirty-sync-count'] ?? 0,
    dirtyRateMaxBps: Math.max(0, ...samples.map((s) => s.dirtyPagesRate)) * pageSize,
    pageSize,
    precopyBytes: ram?.['precopy-bytes'],
    downtimeBytes: ram?.['downtime-bytes'],
    multifdBytes: ram?.['multifd-bytes'],
    xbzrle: info['xbzrle-cache'],
    samples,
    info,
  };
}

/** One line for logs and test output. */
export function formatMigration(r: MigrationResult, wireBytes?: number): string {
  const mb = (b: number) => `${(b / 1e6).toFixed(1)} MB`;
  const parts = [
    `status=${r.status}`,
    `total=${r.totalTimeMs} ms`,
    `downtime=${r.downtimeMs} ms`,
    `setup=${r.setupTimeMs} ms`,
    `ram.transferred=${mb(r.ramTransferredBytes)}`,
    `ram.total=${mb(r.ramTotalBytes)}`,
    `rounds=${r.rounds}`,
    `normal=${r.normalPages} zero=${r.duplicatePages}`,
    `dirty-rate-max=${mb(r.dirtyRateMaxBps)}/s`,
  ];
  if (r.multifdBytes) parts.push(`multifd=${mb(r.multifdBytes)}`);
  if (r.xbzrle?.pages) parts.push(`xbzrle-pages=${r.xbzrle.pages} xbzrle-bytes=${mb(r.xbzrle.bytes)}`);
  if (wireBytes !== undefined) parts.push(`wire=${mb(wireBytes)}`);
  if (r.error) parts.push(`error=${r.error}`);
  return parts.join(' ');
}
