// What the operator accepts from a source agent's reply. A reply is data from a Pod, not text to
// pass on: it is parsed into fresh objects field by field, numbers must be finite and
// non-negative, enums must be known values, a reason outside the agents' own list becomes
// `AgentReported`, and free text (the agent's `message`, error strings) is dropped. What reaches
// conditions and Events is written by the operator from these fields (provider.ts).
import type { SourcePhase, SourceStatus, Verification } from './status.ts';

export class AgentReplyError extends Error {}

/** Every reason a source agent sets (source.ts); anything else is reported as AgentReported. */
export const SOURCE_REASONS = new Set([
  'Starting', 'Copying', 'NoSynchronousMode', 'CatchingUp', 'Synced', 'TargetUnreachable', 'ChecksumsMatch',
  'ChecksumMismatch', 'TargetWriteFailed', 'ReplicationFailed', 'Released',
]);
const PHASES: readonly SourcePhase[] = ['Starting', 'Copying', 'Converged', 'Synchronous', 'Verified', 'Failed', 'Released'];
const SHA256 = /^[0-9a-f]{64}$/;

type Obj = Record<string, unknown>;

function obj(v: unknown, what: string): Obj {
  if (!v || typeof v !== 'object' || Array.isArray(v)) throw new AgentReplyError(`${what} is not an object`);
  return v as Obj;
}

function count(o: Obj, k: string): number {
  const v = o[k] ?? 0;
  if (typeof v !== 'number' || !Number.isFinite(v) || v < 0 || v > Number.MAX_SAFE_INTEGER) throw new AgentReplyError(`${k} is not a count`);
  return Math.floor(v);
}

function oneOf<T extends string>(o: Obj, k: string, allowed: readonly T[]): T {
  const v = o[k];
  if (typeof v !== 'string' || !(allowed as readonly string[]).includes(v)) throw new AgentReplyError(`${k} is not one of ${allowed.join(', ')}`);
  return v as T;
}

function flag(o: Obj, k: string): boolean {
  if (typeof o[k] !== 'boolean') throw new AgentReplyError(`${k} is not a boolean`);
  return o[k] as boolean;
}

function safeTime(v: unknown): string {
  return typeof v === 'string' && v.length <= 40 && Number.isFinite(Date.parse(v)) ? new Date(Date.parse(v)).toISOString() : '';
}

/** The parts of GET /status the operator uses; `message` is always empty (never the agent's text). */
export function parseSourceStatus(raw: unknown): SourceStatus {
  const o = obj(raw, 'status');
  const link = obj(o.link ?? {}, 'link');
  const reason = typeof o.reason === 'string' && SOURCE_REASONS.has(o.reason) ? o.reason : 'AgentReported';
  const passes = Array.isArray(o.passes) ? o.passes.slice(-64).map((p) => {
    const x = obj(p, 'pass');
    return { pass: count(x, 'pass'), dirtyBytes: count(x, 'dirtyBytes'), sentBytes: count(x, 'sentBytes'), wireBytes: count(x, 'wireBytes'), ms: count(x, 'ms') };
  }) : [];
  return {
    role: 'source',
    phase: oneOf(o, 'phase', PHASES),
    mode: oneOf(o, 'mode', ['async', 'sync'] as const),
    synced: flag(o, 'synced'),
    reason,
    message: '',
    changeSource: oneOf(o, 'changeSource', ['qemu-dirty-bitmap', 'hash-scan'] as const),
    codec: oneOf(o, 'codec', ['relay', 'none'] as const),
    bytesTotal: count(o, 'bytesTotal'),
    bytesSent: count(o, 'bytesSent'),
    bytesOverWan: count(o, 'bytesOverWan'),
    pass: count(o, 'pass'),
    remainingDirtyBytes: count(o, 'remainingDirtyBytes'),
    passes,
    link: {
      up: link.up === true, reconnects: count(link, 'reconnects'), resentBytes: count(link, 'resentBytes'),
      resumeSkippedBytes: count(link, 'resumeSkippedBytes'), unconfirmedBytes: count(link, 'unconfirmedBytes'),
    },
    writeLatency: {},
    startedAt: safeTime(o.startedAt),
  };
}

/** POST /verify: two SHA-256 digests and flags, nothing else. */
export function parseVerification(raw: unknown): Verification {
  const o = obj(raw, 'verification');
  const digest = (k: string): string => {
    if (typeof o[k] !== 'string' || !SHA256.test(o[k] as string)) throw new AgentReplyError(`${k} is not a SHA-256 digest`);
    return o[k] as string;
  };
  const sourceSha256 = digest('sourceSha256');
  const targetSha256 = digest('targetSha256');
  return { sourceSha256, targetSha256, match: sourceSha256 === targetSha256, at: safeTime(o.at), quiesced: flag(o, 'quiesced') };
}

/** Parses a JSON body, mapping any syntax error to an AgentReplyError without echoing the body. */
export function parseJson(body: Buffer): unknown {
  try {
    return JSON.parse(body.toString('utf8'));
  } catch {
    throw new AgentReplyError('the reply is not JSON');
  }
}
