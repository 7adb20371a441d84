// The StoragePreCopy port (src/api/ports.ts), backed by the source agent's HTTP API.
//
// Deployment: per disk, a target agent (`cloudnet agent target`) runs next to the target volume
// and a source agent (`cloudnet agent source --qmp ... --target ... --http ...`) next to the
// source VM's QEMU (in KubeVirt: in the virt-launcher pod's network/mount namespace, which owns
// the QMP socket). The agents start replicating on their own; the provider only observes them:
// sync() maps GET /status to a StepReport (Ready exactly when the agent reports `synced`), and
// release() POSTs /release. verify() POSTs /verify at cutover and returns the checksum result.
//
// Where the agent is: by default the WanMigration's annotation `cloudnet.io/storage-agent`
// (a base URL, e.g. http://10.0.0.5:9470); several disks: a comma-separated list.
import type { StepReport, StoragePreCopy, StorageRequest } from '../api/ports.ts';
import type { MigrationProgress } from '../api/wanmigration.ts';
import { toMigrationProgress, type SourceStatus, type Verification } from './status.ts';

export const AGENT_ANNOTATION = 'cloudnet.io/storage-agent';

export interface AgentStorageOptions {
  /** Base URLs of the source agents for a migration (default: the annotation above). */
  agents?: (req: StorageRequest) => string[];
  timeoutMs?: number;
  fetch?: typeof fetch;
}

export function agentsFromAnnotation(req: StorageRequest): string[] {
  const v = req.migration.metadata?.annotations?.[AGENT_ANNOTATION];
  return v ? v.split(',').map((s) => s.trim().replace(/\/+$/, '')).filter(Boolean) : [];
}

/** Pure: the StepReport for a set of agent statuses (all disks must be synced). */
export function storageReport(statuses: SourceStatus[]): StepReport {
  if (statuses.length === 0) return { state: 'Unavailable', reason: 'NoStorageAgent', message: `no source storage agent configured (annotation ${AGENT_ANNOTATION})` };
  const progress = sumProgress(statuses.map(toMigrationProgress));
  const failed = statuses.find((s) => s.phase === 'Failed');
  if (failed) return { state: 'Failed', reason: failed.reason, message: failed.message, progress };
  const released = statuses.find((s) => s.phase === 'Released');
  if (released) return { state: 'Failed', reason: 'AgentReleased', message: 'a storage agent was released before the disks were synced', progress };
  if (statuses.every((s) => s.synced)) {
    return { state: 'Ready', reason: 'Synced', message: `${statuses.length} disk(s) synchronous: target identical up to in-flight writes`, progress };
  }
  const s = statuses.find((x) => !x.synced)!;
  const msg = `${s.mode} pass ${s.pass}, ${s.remainingDirtyBytes} bytes dirty, ${s.bytesOverWan} bytes over the WAN: ${s.message}`;
  return { state: 'Progressing', reason: s.reason, message: msg, progress };
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

export class AgentStoragePreCopy implements StoragePreCopy {
  readonly #o: AgentStorageOptions;
  constructor(o: AgentStorageOptions = {}) {
    this.#o = o;
  }

  #agents(req: StorageRequest): string[] {
    return (this.#o.agents ?? agentsFromAnnotation)(req);
  }

  async #call<T>(url: string, method: 'GET' | 'POST', signal: AbortSignal): Promise<T> {
    const f = this.#o.fetch ?? fetch;
    const res = await f(url, { method, signal: AbortSignal.any([signal, AbortSignal.timeout(this.#o.timeoutMs ?? 10_000)]) });
    const body = (await res.json()) as T & { error?: string };
    if (!res.ok) throw new Error(`${method} ${url}: ${res.status} ${body.error ?? ''}`);
    return body;
  }

  async sync(req: StorageRequest, signal: AbortSignal): Promise<StepReport> {
    const agents = this.#agents(req);
    try {
      const statuses = await Promise.all(agents.map((a) => this.#call<SourceStatus>(`${a}/status`, 'GET', signal)));
      return storageReport(statuses);
    } catch (err) {
      return { state: 'Unavailable', reason: 'StorageAgentUnreachable', message: err instanceof Error ? err.message : String(err) };
    }
  }

  async release(req: StorageRequest, signal: AbortSignal): Promise<void> {
    await Promise.all(this.#agents(req).map((a) => this.#call(`${a}/release`, 'POST', signal)));
  }

  /** At cutover (source paused or stopped): per disk, SHA-256 of source and target. */
  async verify(req: StorageRequest, signal: AbortSignal, opts: { pause?: boolean } = {}): Promise<Verification[]> {
    return Promise.all(this.#agents(req).map((a) => this.#call<Verification>(`${a}/verify${opts.pause ? '?pause=1&resume=1' : ''}`, 'POST', signal)));
  }
}
