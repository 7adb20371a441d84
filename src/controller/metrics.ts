// Domain metrics of the WanMigration controller, next to controller-runtime's generic ones:
// the current phase per migration (kube-state-metrics style, 1 for the current phase) and the
// duration of finished migrations by outcome.
import { Gauge, Histogram, type Registry } from 'prom-client';
import { ALL_PHASES, type Phase } from '../api/wanmigration.ts';

export class WanMigrationMetrics {
  private readonly phase: Gauge<'namespace' | 'name' | 'phase'>;
  private readonly duration: Histogram<'outcome'>;
  private readonly observedDone = new Set<string>();

  constructor(registry: Registry) {
    const registers = [registry];
    this.phase = new Gauge({ name: 'cloudnet_wanmigration_phase', help: 'Current phase of each WanMigration (1 for the current phase)', labelNames: ['namespace', 'name', 'phase'], registers });
    this.duration = new Histogram({
      name: 'cloudnet_wanmigration_duration_seconds', help: 'Time from start to completion of finished WanMigrations', labelNames: ['outcome'],
      buckets: [1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200], registers,
    });
  }

  record(namespace: string, name: string, uid: string, phase: Phase, startTime?: string, completionTime?: string): void {
    for (const p of ALL_PHASES) this.phase.set({ namespace, name, phase: p }, p === phase ? 1 : 0);
    if (startTime && completionTime && !this.observedDone.has(uid)) {
      this.observedDone.add(uid);
      this.duration.observe({ outcome: phase }, Math.max(0, (Date.parse(completionTime) - Date.parse(startTime)) / 1000));
    }
  }

  forget(namespace: string, name: string): void {
    for (const p of ALL_PHASES) this.phase.remove({ namespace, name, phase: p });
  }
}
