// The StoragePreCopy port (src/api/ports.ts): the operator's side of the disk pre-copy.
//
// Where the agents are is never read from the WanMigration: no annotation or spec field holds an
// agent address. The agents are Pods the operator itself launched for the migration (the
// AgentLauncher, launch/), and the only addresses this provider ever contacts are those Pods'
// IPs, over mutual TLS with the migration's own CA (agent-auth.ts) and the migration's token. An
// agent's reply is parsed field by field (agent-reply.ts); conditions and Events get messages
// written here from those fields, never text from a reply.
import type { StepReport, StoragePreCopy, StorageRelease, StorageRequest } from '../api/ports.ts';
import type { MigrationProgress } from '../api/wanmigration.ts';
import type { AgentCredentials } from './agent-auth.ts';
import { parseJson, parseSourceStatus, parseVerification } from './agent-reply.ts';
import { AgentHttpError, callAgent } from './http.ts';
import { toMigrationProgress, type SourceStatus, type Verification } from './status.ts';

/** A source agent the launcher started and found serving. */
export interface SourceAgentEndpoint {
  /** The disk (claim name) it copies. */
  disk: string;
  /** https://<pod IP>:<port>, built from a Pod this operator created. */
  base: string;
  /** Namespace/name of the Pod, for messages. */
  pod: string;
}

export interface LaunchState {
  /** Set while the agents are not all serving yet (or cannot be launched): the step's report. */
  report?: StepReport;
  agents: SourceAgentEndpoint[];
  /** The operator's credentials for this migration's agents. */
  credentials?: AgentCredentials;
  /** The copy is done and the agents are being stopped (finish() carries on). */
  finishing?: boolean;
}

/** Launches and cleans up the agents of a migration (Pods, Secrets, target volumes). */
export interface AgentLauncher {
  ensure(req: StorageRequest, signal: AbortSignal): Promise<LaunchState>;
  /** The pre-copy is over (synced or converged): stop the agents, keep the target volumes.
   *  Resolves undefined once they are gone, else the report to show meanwhile. */
  finish(req: StorageRequest, signal: AbortSignal): Promise<StepReport | undefined>;
  /** Removes everything launched for the migration (after success, failure, abort or deletion);
   *  the target volumes only after a rollback. */
  release(req: StorageRequest, how: StorageRelease, signal: AbortSignal): Promise<void>;
}

export interface AgentStorageOptions {
  launcher: AgentLauncher;
  timeoutMs?: number;
}

function describe(s: SourceStatus): string {
  return `${s.mode} pass ${s.pass}, ${s.remainingDirtyBytes} bytes dirty, ${s.bytesOverWan} bytes over the WAN (${s.reason})`;
}

/** Pure: the StepReport for the disks' statuses (every disk must be synced, or converged without QEMU). */
export function storageReport(statuses: ReadonlyArray<{ agent: SourceAgentEndpoint; status: SourceStatus }>): StepReport {
  if (statuses.length === 0) return { state: 'Progressing', reason: 'NoDisks', message: 'the VM has no disk to pre-copy' };
  const progress = sumProgress(statuses.map((s) => toMigrationProgress(s.status)));
  const failed = statuses.find((s) => s.status.phase === 'Failed');
  if (failed) {
    return { state: 'Failed', reason: failed.status.reason, message: `disk ${failed.agent.disk}: the source agent reports ${failed.status.reason} (logs of Pod ${failed.agent.pod})`, progress };
  }
  const released = statuses.find((s) => s.status.phase === 'Released');
  if (released) return { state: 'Failed', reason: 'AgentReleased', message: `disk ${released.agent.disk}: the source agent was released before the disk was copied`, progress };
  if (statuses.every((s) => s.status.synced)) {
    return { state: 'Ready', reason: 'Synced', message: `${statuses.length} disk(s) synchronous: target identical up to in-flight writes`, progress };
  }
  if (statuses.every((s) => s.status.synced || s.status.phase === 'Converged')) {
    const dirty = statuses.reduce((n, s) => n + s.status.remainingDirtyBytes, 0);
    return {
      state: 'Ready', reason: 'Converged', progress,
      message: `${statuses.length} disk(s) pre-copied; ${dirty} bytes changed during the last pass, which KubeVirt's disk mirror carries with the rest as references to what the target holds`,
    };
  }
  const s = statuses.find((x) => !x.status.synced && x.status.phase !== 'Converged')!;
  return { state: 'Progressing', reason: s.status.reason, message: `disk ${s.agent.disk}: ${describe(s.status)}`, progress };
}

function sumProgress(ps: MigrationProgress[]): MigrationProgress {
  const sum = (k: 'bytesTotal' | 'bytesSent' | 'bytesOverWan') => ps.reduce((n, p) => n + (p[k] ?? 0), 0);
  const total = sum('bytesTotal');
  const sent = sum('bytesSent');
  const wan = sum('bytesOverWan');
  const weighted = ps.reduce((n, p) => n + (p.percent ?? 0) * (p.bytesTotal ?? 0), 0);
  return {
    bytesTotal: total, bytesSent: sent, bytesOverWan: wan,
    rounds: Math.max(0, ...ps.map((p) => p.rounds ?? 0)),
    ...(sent > 0 ? { reductionRatio: Number((wan / sent).toFixed(3)) } : {}),
    percent: total > 0 ? Math.floor(weighted / total) : 0,
  };
}

/** Why an agent could not be asked, in the operator's words (no reply text). */
function unreachable(a: SourceAgentEndpoint, err: unknown): StepReport {
  const why = err instanceof AgentHttpError ? `HTTP ${err.status}` : err instanceof Error && err.name === 'AgentReplyError' ? `an invalid reply (${err.message})` : 'no TLS connection';
  return { state: 'Progressing', reason: 'StorageAgentUnreachable', message: `disk ${a.disk}: the source agent (Pod ${a.pod}) gave ${why}; retrying` };
}

export class AgentStoragePreCopy implements StoragePreCopy {
  readonly #o: AgentStorageOptions;
  constructor(o: AgentStorageOptions) {
    this.#o = o;
  }

  async #status(creds: AgentCredentials, a: SourceAgentEndpoint, signal: AbortSignal): Promise<SourceStatus> {
    return parseSourceStatus(parseJson(await callAgent(creds, 'source', a.base, '/status', { signal, timeoutMs: this.#o.timeoutMs })));
  }

  async sync(req: StorageRequest, signal: AbortSignal): Promise<StepReport> {
    const launched = await this.#o.launcher.ensure(req, signal);
    if (launched.finishing) return (await this.#o.launcher.finish(req, signal)) ?? { state: 'Ready', reason: 'Converged', message: 'disks pre-copied; the agents are done and gone' };
    if (launched.report || !launched.credentials) return launched.report ?? { state: 'Progressing', reason: 'LaunchingAgents', message: 'starting the storage agents' };
    const creds = launched.credentials;
    const statuses: Array<{ agent: SourceAgentEndpoint; status: SourceStatus }> = [];
    for (const a of launched.agents) {
      try {
        statuses.push({ agent: a, status: await this.#status(creds, a, signal) });
      } catch (err) {
        if (signal.aborted) throw err;
        return unreachable(a, err);
      }
    }
    const report = storageReport(statuses);
    if (report.state !== 'Ready') return report;
    // Copied: the agents stop (the target agent makes its volume durable) before anything else
    // may open the target volumes.
    const finishing = await this.#o.launcher.finish(req, signal);
    return finishing ? { ...finishing, progress: report.progress } : report;
  }

  release(req: StorageRequest, how: StorageRelease, signal: AbortSignal): Promise<void> {
    return this.#o.launcher.release(req, how, signal);
  }

  /** Per disk, SHA-256 of source and target (source agent POST /verify; ?pause=1 pauses a QEMU guest). */
  async verify(req: StorageRequest, signal: AbortSignal, opts: { pause?: boolean } = {}): Promise<Verification[]> {
    const launched = await this.#o.launcher.ensure(req, signal);
    const creds = launched.credentials;
    if (!creds) throw new Error('the storage agents are not running');
    const path = `/verify${opts.pause ? '?pause=1&resume=1' : ''}`;
    return Promise.all(launched.agents.map(async (a) => parseVerification(parseJson(await callAgent(creds, 'source', a.base, path, { method: 'POST', signal, timeoutMs: 600_000 })))));
  }
}
