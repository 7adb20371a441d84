// From the sender relay's per-session stats (GET /stats, or the --stats-file JSON, written by
// SenderRelay.stats()) to WanMigration.status.progress: stream bytes, bytes over the WAN, pre-copy
// rounds, reduction ratio and an ETA. Pure functions: the operator's relay provider
// (src/operator/relay-client/relay-provider.ts) fetches them; each session names the migration that
// registered its flow; this file only parses and computes.
import type { MigrationProgress } from '../../api/wanmigration.ts';

/** The part of one sender session's stats that progress needs. */
export interface RelaySession {
  id: number;
  /** The WanMigration that registered the session's flow (none for static listeners). */
  owner?: { namespace: string; name: string; migrationID: string };
  /** The relay listener the stream came in on (`--listen HOST:PORT/TARGET`). */
  target: string;
  label: string;
  state: 'open' | 'fin' | 'closed';
  closeReason?: string;
  startedMs: number;
  /** Stream bytes QEMU (or virt-handler) sent into the relay. */
  bytesIn: number;
  /** Bytes the relay sent over the WAN for this session. */
  wireBytes: number;
  /** Raw stream bytes of each pre-copy round seen so far (the last one may be in progress). */
  roundRawBytes: number[];
}

export interface SenderStats {
  /** Live sessions first, then recently finished ones (the relay keeps the last 100). */
  sessions: RelaySession[];
}

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const num = (v: unknown): number | undefined => (typeof v === 'number' && Number.isFinite(v) && v >= 0 ? v : undefined);
const STATES = ['open', 'fin', 'closed'];

function parseSession(v: unknown, finished: boolean): RelaySession | undefined {
  if (!isObj(v)) return undefined;
  const id = num(v.id);
  const startedMs = typeof v.startedAt === 'string' ? Date.parse(v.startedAt) : NaN;
  const bytesIn = num(v.bytesIn);
  const wireBytes = num(v.wireBytes);
  if (id === undefined || typeof v.target !== 'string' || Number.isNaN(startedMs) || bytesIn === undefined || wireBytes === undefined) return undefined;
  const state = typeof v.state === 'string' && STATES.includes(v.state) ? (v.state as RelaySession['state']) : finished ? 'closed' : 'open';
  const rounds = Array.isArray(v.rounds) ? v.rounds : [];
  const o = v.migration;
  const owner = isObj(o) && typeof o.namespace === 'string' && typeof o.name === 'string' && typeof o.migrationID === 'string'
    ? { namespace: o.namespace, name: o.name, migrationID: o.migrationID } : undefined;
  return {
    id, target: v.target, label: typeof v.label === 'string' ? v.label : '', state, ...(owner ? { owner } : {}),
    ...(typeof v.closeReason === 'string' ? { closeReason: v.closeReason } : {}),
    startedMs, bytesIn, wireBytes,
    roundRawBytes: rounds.map((r) => (isObj(r) ? num(r.rawBytes) ?? 0 : 0)),
  };
}

/** Parses a sender relay's stats JSON; malformed sessions are skipped, a non-sender is an error. */
export function parseSenderStats(json: unknown): SenderStats {
  if (!isObj(json)) throw new Error('relay stats: not a JSON object');
  if (json.role !== undefined && json.role !== 'sender') throw new Error(`relay stats: role ${String(json.role)}, expected the sender relay`);
  const list = (v: unknown, finished: boolean) => (Array.isArray(v) ? v.map((s) => parseSession(s, finished)) : []);
  return { sessions: [...list(json.sessions, false), ...list(json.finished, true)].filter((s): s is RelaySession => s !== undefined) };
}

/** The CRD's Ratio column: WAN bytes per raw stream byte, 3 decimals; undefined before any input. */
export function reductionRatio(wireBytes: number, bytesIn: number): number | undefined {
  return bytesIn > 0 ? Math.round((wireBytes / bytesIn) * 1000) / 1000 : undefined;
}

export interface EtaInput {
  /** Stream bytes of the memory session so far, and how long it has run. */
  bytesIn: number;
  elapsedMs: number;
  /** Raw bytes per pre-copy round (the last may be in progress). */
  roundRawBytes: number[];
  /** Guest memory, when known: the first round sends about all of it. */
  memoryBytes?: number;
}

/**
 * Seconds left at the session's average input rate. In the first pass what is left is the rest
 * of guest memory (unknown without memoryBytes); in later passes each round re-sends about what
 * the last complete round did, so that is the estimate.
 */
export function etaSeconds(e: EtaInput): number | undefined {
  const rate = e.bytesIn / Math.max(0.001, e.elapsedMs / 1000);
  if (!(rate > 0)) return undefined;
  let left: number | undefined;
  if (e.roundRawBytes.length <= 1) left = e.memoryBytes !== undefined ? Math.max(0, e.memoryBytes - e.bytesIn) : undefined;
  else left = e.roundRawBytes[e.roundRawBytes.length - 2];
  return left === undefined ? undefined : Math.round(left / rate);
}

/**
 * Progress of one migration from the relay sessions that carry it (a memory stream, and an NBD
 * disk stream when KubeVirt copies disks). Bytes add up over the sessions; rounds and the ETA come
 * from the session with the most pre-copy rounds (the QEMU memory stream).
 */
export function migrationProgress(sessions: readonly RelaySession[], o: { nowMs: number; memoryBytes?: number }): MigrationProgress | undefined {
  if (!sessions.length) return undefined;
  const bytesIn = sessions.reduce((n, s) => n + s.bytesIn, 0);
  const wire = sessions.reduce((n, s) => n + s.wireBytes, 0);
  const mem = sessions.reduce((a, b) => (b.roundRawBytes.length > a.roundRawBytes.length || (b.roundRawBytes.length === a.roundRawBytes.length && b.startedMs > a.startedMs) ? b : a));
  const ratio = reductionRatio(wire, bytesIn);
  const eta = mem.state === 'closed'
    ? (mem.closeReason === 'ok' ? 0 : undefined) // the stream ended: nothing left, or it failed and no ETA holds
    : etaSeconds({ bytesIn: mem.bytesIn, elapsedMs: o.nowMs - mem.startedMs, roundRawBytes: mem.roundRawBytes, ...(o.memoryBytes !== undefined ? { memoryBytes: o.memoryBytes } : {}) });
  // The step's own percent (the planner maps it into MigratingMemory's band): time so far over
  // time so far plus the ETA, so it moves with the first pass and slows as rounds repeat.
  const elapsedS = Math.max(0, (o.nowMs - mem.startedMs) / 1000);
  const percent = eta === undefined ? undefined : eta === 0 ? 100 : Math.floor((100 * elapsedS) / (elapsedS + eta));
  return {
    ...(o.memoryBytes !== undefined ? { bytesTotal: o.memoryBytes } : {}),
    ...(percent !== undefined ? { percent } : {}),
    bytesSent: bytesIn,
    bytesOverWan: wire,
    rounds: mem.roundRawBytes.length,
    ...(ratio !== undefined ? { reductionRatio: ratio } : {}),
    ...(eta !== undefined ? { etaSeconds: eta } : {}),
  };
}
