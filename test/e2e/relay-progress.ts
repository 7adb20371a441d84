// A MigrationRelay provider (src/controller/deps.ts) that reads the sender relay's JSON stats file
// (`cloudnet relay send --stats-file`) and turns the migration's relay session into
// WanMigration.status.progress: stream bytes, bytes over the WAN, pre-copy rounds, reduction ratio
// and an ETA. `sessionTarget` names the relay target (listener) the migration's stream uses.
import { readFileSync } from 'node:fs';
import type { MigrationRelay, RelayRequest } from '../../src/controller/deps.ts';
import type { MigrationProgress } from '../../src/api/wanmigration.ts';

interface RoundJson { rawBytes: number; startMs: number; endMs: number }
interface SessionJson {
  target: string; state: string; startedAt: string; bytesIn: number; wireBytes: number; rounds: RoundJson[];
}

export interface RelayStatsProgressOptions {
  statsFile: string;
  /** Relay target (e.g. mem0) carrying this migration's stream, once known. */
  sessionTarget(migrationID: string): string | undefined;
  /** Guest memory in bytes, for the first-round ETA. */
  memoryBytes(migrationID: string): number;
}

export class RelayStatsProgress implements MigrationRelay {
  private readonly o: RelayStatsProgressOptions;

  constructor(o: RelayStatsProgressOptions) {
    this.o = o;
  }

  async progress(req: RelayRequest): Promise<MigrationProgress | undefined> {
    const id = req.migration.status?.migrationID;
    const target = id ? this.o.sessionTarget(id) : undefined;
    if (!target) return undefined;
    let stats: { sessions?: SessionJson[] };
    try {
      stats = JSON.parse(readFileSync(this.o.statsFile, 'utf8')) as { sessions?: SessionJson[] };
    } catch {
      return undefined; // not written yet
    }
    const s = (stats.sessions ?? []).filter((x) => x.target === target && x.state === 'open').at(-1);
    if (!s) return undefined;
    const elapsedS = Math.max(0.001, (Date.now() - Date.parse(s.startedAt)) / 1000);
    const rateIn = s.bytesIn / elapsedS;
    const total = this.o.memoryBytes(id!);
    // First pass: what is left of memory; later passes: about the size of the last round again.
    const left = s.rounds.length <= 1 ? Math.max(0, total - s.bytesIn) : (s.rounds.at(-2)?.rawBytes ?? 0);
    return {
      bytesTotal: total,
      bytesSent: s.bytesIn,
      bytesOverWan: s.wireBytes,
      rounds: s.rounds.length,
      // The CRD's Ratio column: WAN bytes / raw stream bytes.
      ...(s.bytesIn > 0 ? { reductionRatio: Math.round((s.wireBytes / s.bytesIn) * 1000) / 1000 } : {}),
      ...(rateIn > 0 ? { etaSeconds: Math.round(left / rateIn) } : {}),
    };
  }
}
