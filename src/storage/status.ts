// What a source agent reports (GET /status), and its mapping to the controller's MigrationProgress.
import type { MigrationProgress } from '../api/wanmigration.ts';

export type SourcePhase = 'Starting' | 'Copying' | 'Converged' | 'Synchronous' | 'Verified' | 'Failed' | 'Released';

export interface PassReport {
  pass: number;
  /** Bytes the change source reported for this pass (the whole disk for pass 1). */
  dirtyBytes: number;
  /** Payload bytes queued to the target (pages it did not already hold). */
  sentBytes: number;
  /** Bytes on the wire (encoded) during this pass. */
  wireBytes: number;
  ms: number;
}

export interface WriteLatency {
  /** Guest write latency seen by QEMU's block layer (query-blockstats), average in µs. */
  asyncAvgUs?: number;
  asyncOps?: number;
  syncAvgUs?: number;
  syncOps?: number;
  /** Round trip of a mirrored write through the agent to the target and back (ms). */
  mirrorWriteAvgMs?: number;
  mirrorWriteMaxMs?: number;
}

export interface Verification {
  sourceSha256: string;
  targetSha256: string;
  match: boolean;
  at: string;
  /** The guest was paused (or stopped) while both checksums were taken. */
  quiesced: boolean;
}

export interface SourceStatus {
  role: 'source';
  phase: SourcePhase;
  mode: 'async' | 'sync';
  /** True only while the target is identical to the source up to in-flight synchronous writes. */
  synced: boolean;
  reason: string;
  message: string;
  changeSource: 'qemu-dirty-bitmap' | 'hash-scan';
  codec: 'relay' | 'none';
  bytesTotal: number;
  /** Payload bytes queued to the target (first sends). */
  bytesSent: number;
  /** Bytes that crossed the WAN (encoded stream, including re-sends). */
  bytesOverWan: number;
  pass: number;
  remainingDirtyBytes: number;
  passes: PassReport[];
  link: { up: boolean; reconnects: number; resentBytes: number; resumeSkippedBytes: number; unconfirmedBytes: number };
  writeLatency: WriteLatency;
  verification?: Verification;
  startedAt: string;
  syncedAt?: string;
}

export function toMigrationProgress(s: SourceStatus): MigrationProgress {
  const done = s.bytesTotal > 0 ? Math.max(0, s.bytesTotal - s.remainingDirtyBytes) / s.bytesTotal : 0;
  return {
    bytesTotal: s.bytesTotal,
    bytesSent: s.bytesSent,
    bytesOverWan: s.bytesOverWan,
    rounds: s.pass,
    ...(s.bytesSent > 0 ? { reductionRatio: Number((s.bytesOverWan / Math.max(1, s.bytesSent)).toFixed(3)) } : {}),
    percent: s.synced ? 100 : Math.min(99, Math.floor(done * 100)),
  };
}
