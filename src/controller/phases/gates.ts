// Cutover gate and per-phase deadlines: small pure functions the planner consults.
import { Phases, type DerivedDeadlines, type Phase, type ResolvedSpec } from '../../api/wanmigration.ts';
import { DEADLINE_FLOORS } from './deadlines.ts';

export type Gate =
  | { open: true }
  | { open: false; reason: string; message: string; missed: boolean; retryInMs?: number };

/**
 * KubeVirt's decentralized migration copies memory and switches over in one step, so the cutover
 * gate holds the start of the memory migration: the VM keeps running on the source until then.
 */
export function cutoverGate(spec: ResolvedSpec, now: Date): Gate {
  const c = spec.cutover;
  if (c.mode === 'Auto') return { open: true };
  if (c.mode === 'Manual') {
    return c.approved ? { open: true } : { open: false, reason: 'AwaitingApproval', message: 'cutover.mode is Manual: set spec.cutover.approved=true to start the memory migration and switchover', missed: false };
  }
  const w = c.window;
  if (!w) return { open: false, reason: 'CutoverWindowInvalid', message: 'cutover.mode is Window but cutover.window is not set', missed: true };
  const start = Date.parse(w.start);
  const end = Date.parse(w.end);
  if (!Number.isFinite(start) || !Number.isFinite(end) || start >= end) {
    return { open: false, reason: 'CutoverWindowInvalid', message: `cutover.window ${w.start}..${w.end} is not a valid interval`, missed: true };
  }
  const t = now.getTime();
  if (t < start) return { open: false, reason: 'AwaitingCutoverWindow', message: `cutover window opens at ${w.start}`, missed: false, retryInMs: start - t };
  if (t >= end) return { open: false, reason: 'CutoverWindowMissed', message: `cutover window ${w.start}..${w.end} has passed; set a new window or abort`, missed: true };
  return { open: true };
}

/**
 * Deadline (ms) of a phase, or undefined for phases without one (waiting for input or terminal).
 * SyncingStorage and MigratingMemory: the spec's value, else the one derived at the start
 * (status.deadlines, deadlines.ts), else the floor.
 */
export function phaseDeadlineMs(spec: ResolvedSpec, phase: Phase, derived?: DerivedDeadlines): number | undefined {
  const t = spec.timeouts;
  switch (phase) {
    case Phases.ConnectingLink: return t.linkSeconds * 1000;
    case Phases.SyncingStorage: return (t.storageSeconds ?? derived?.storageSeconds ?? DEADLINE_FLOORS.storageSeconds) * 1000;
    case Phases.PreparingTarget: return t.targetPreparedSeconds * 1000;
    case Phases.MigratingMemory: return (t.memorySeconds ?? derived?.memorySeconds ?? DEADLINE_FLOORS.memorySeconds) * 1000;
    case Phases.CuttingOver: return t.cutoverSeconds * 1000;
    default: return undefined;
  }
}

/**
 * Rough, monotone progress by the sender VMIM's phase (KubeVirt's VMIM exposes no byte counters),
 * in the order KubeVirt really goes: Synchronizing first, then the usual migration phases
 * (kubevirt/kubevirt pkg/virt-controller/watch/migration/migration.go).
 */
const VMIM_PERCENT: Record<string, number> = {
  '': 52, Synchronizing: 54, Pending: 56, Scheduling: 58, Scheduled: 60, PreparingTarget: 62,
  TargetReady: 64, Running: 70, Succeeded: 90,
};

export function phasePercent(phase: Phase, sourceVmimPhase?: string): number {
  switch (phase) {
    case Phases.Pending: return 0;
    case Phases.ConnectingLink: return 5;
    case Phases.SyncingStorage: return 10;
    case Phases.PreparingTarget: return 40;
    case Phases.AwaitingCutover: return 50;
    case Phases.MigratingMemory: return VMIM_PERCENT[sourceVmimPhase ?? ''] ?? 52;
    case Phases.CuttingOver: return 95;
    case Phases.Succeeded: return 100;
    default: return 0;
  }
}
