// Fewer Events for the same story: a reconcile that passes straight through SyncingStorage
// (storage.mode KubeVirt) or AwaitingCutover (an open cutover gate) records no Event of its own
// for it; its message is folded into the Event of the phase that follows, in the same reconcile.
// The start, PreparingTarget, MigratingMemory, CuttingOver, the outcome and every Warning keep
// their own Event. Pure.
import { Phases, type Phase } from '../../api/wanmigration.ts';
import type { EventRecord } from './actions.ts';

const PASS_THROUGH: ReadonlySet<string> = new Set<Phase>([Phases.SyncingStorage, Phases.AwaitingCutover]);

export function foldPassThroughEvents(events: readonly EventRecord[]): EventRecord[] {
  const out: EventRecord[] = [];
  let carried: string[] = [];
  for (const [i, e] of events.entries()) {
    const next = events[i + 1];
    if (e.type === 'Normal' && PASS_THROUGH.has(e.reason) && next?.type === 'Normal') {
      carried.push(`${e.reason}: ${e.message}`);
      continue;
    }
    out.push(carried.length ? { ...e, message: `${e.message} (passed through ${carried.join('; ')})` } : e);
    carried = [];
  }
  return out;
}
