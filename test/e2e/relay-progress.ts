// The e2e bed's MigrationRelay: the operator's own reader (src/operator/relay-client/progress-reader.ts) on the
// sender relay's `--stats-file` (the sender runs in site A's node namespace, where the in-process
// operator cannot reach its HTTP stats). The QEMU driver knows which relay listener (e.g. mem0)
// each migration's stream uses and the guest's memory, so the bed passes both in.
import { pathToFileURL } from 'node:url';
import type { MigrationRelay, RelayRequest } from '../../src/api/ports.ts';
import type { MigrationProgress } from '../../src/api/wanmigration.ts';
import { RelayProgressReader } from '../../src/operator/relay-client/progress-reader.ts';

export interface RelayStatsProgressOptions {
  statsFile: string;
  /** Relay target (e.g. mem0) carrying this migration's stream, once known. */
  sessionTarget(migrationID: string): string | undefined;
  /** Guest memory in bytes, for the first-round ETA (0: not known yet). */
  memoryBytes(migrationID: string): number;
}

export class RelayStatsProgress implements MigrationRelay {
  private readonly reader: RelayProgressReader;

  constructor(o: RelayStatsProgressOptions) {
    const url = pathToFileURL(o.statsFile).href;
    this.reader = new RelayProgressReader({
      relayFor: () => url,
      listeners: (m) => {
        const target = m.status?.migrationID ? o.sessionTarget(m.status.migrationID) : undefined;
        return target ? [target] : [];
      },
      memoryBytes: async (m) => {
        const b = m.status?.migrationID ? o.memoryBytes(m.status.migrationID) : 0;
        return b > 0 ? b : undefined;
      },
    });
  }

  progress(req: RelayRequest, signal: AbortSignal): Promise<MigrationProgress | undefined> {
    return this.reader.progress(req, signal);
  }
}
