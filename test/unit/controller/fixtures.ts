// Builders for planner tests: a healthy baseline that each case bends in one direction.
import type { WanMigration, WanMigrationSpec, WanMigrationStatus, Phase } from '../../../src/api/wanmigration.ts';
import type { Observed, VmimView } from '../../../src/controller/phases/observed.ts';
import { STEP_CONDITIONS } from '../../../src/controller/phases/plan.ts';
import type { Condition } from '../../../src/api/meta.ts';

export const T0 = new Date('2026-11-25T10:00:00Z');
export const UID = '0123abcd-0000-4000-8000-000000000001';

export function wm(spec: Partial<WanMigrationSpec> = {}, status?: WanMigrationStatus, generation = 1): WanMigration {
  return {
    apiVersion: 'cloudnet.io/v1alpha1',
    kind: 'WanMigration',
    metadata: { name: 'mig', namespace: 'default', uid: UID, generation, finalizers: ['cloudnet.io/wanmigration-cleanup'] },
    spec: { vmName: 'vm-a', targetSite: 'site-b', targetNamespace: 'default', ...spec },
    ...(status ? { status } : {}),
  };
}

export function obs(o: Partial<Observed> = {}): Observed {
  return {
    now: T0,
    deleting: false,
    hasFinalizer: true,
    site: { ok: true },
    tenancy: { ok: true },
    targetCluster: { ok: true },
    kubevirt: { ok: true },
    targetNamespace: { ok: true },
    source: { vmExists: true, runStrategy: 'Always', vmiPhase: 'Running', liveMigratable: { status: 'True' }, handled: false },
    target: { vmExists: false, vmOwned: false, objectsComplete: false, ownedObjects: 0, caTrusted: false },
    link: { state: 'Ready', reason: 'ClusterAPIReachable', message: 'target API reachable' },
    specHash: 'h1',
    migrationTLS: false,
    ...o,
  };
}

export const vmim = (name: string, phase: string, extra: Partial<VmimView> = {}): VmimView => ({ name, phase, ...extra });

function conds(step: Record<string, 'True' | 'False' | 'Unknown'>): Condition[] {
  return STEP_CONDITIONS.map((type) => ({ type, status: step[type] ?? 'Unknown', reason: 'X', message: '', lastTransitionTime: T0.toISOString(), observedGeneration: 1 }));
}

/** A status as it would be when `phase` began at `since`. */
export function inPhase(phase: Phase, since = T0, extra: Partial<WanMigrationStatus> = {}): WanMigrationStatus {
  const order: Phase[] = ['ConnectingLink', 'SyncingStorage', 'PreparingTarget', 'AwaitingCutover', 'MigratingMemory', 'CuttingOver', 'Succeeded'];
  const idx = order.indexOf(phase);
  const done: Record<string, 'True'> = {};
  const steps = ['LinkReady', 'StorageSynced', 'TargetPrepared', 'TargetPrepared', 'MemoryMigrated', 'CutoverComplete'];
  for (let i = 0; i < idx && i < steps.length; i++) done[steps[i]] = 'True';
  const reachedTarget = idx >= order.indexOf('PreparingTarget');
  return {
    phase,
    phaseStartTime: since.toISOString(),
    startTime: since.toISOString(),
    migrationID: UID,
    startedSpecHash: 'h1',
    observedGeneration: 1,
    conditions: conds(done),
    ...(reachedTarget ? { targetVMRef: { site: 'site-b', namespace: 'default', name: 'vm-a' } } : {}),
    ...extra,
  };
}

export const preparedTarget = { vmExists: true, vmOwned: true, vmRunStrategy: 'WaitAsReceiver', vmiPhase: 'WaitingForSync', objectsComplete: true, ownedObjects: 2, caTrusted: true };
