// The planner's first half, pure like plan.ts: from the facts observe() read, which provider calls
// this reconcile needs (a link is set up only while connecting, storage synced only while its copy
// matters, the relay read only while memory moves, peers listed only before the start), and what
// their answers, or their absence, mean for the Observed that plan() decides on.
import type { StepReport } from '../../api/ports.ts';
import {
  Phases, TERMINAL_PHASES, effectiveSpec, type MigrationProgress, type Phase, type WanMigration,
} from '../../api/wanmigration.ts';
import type { StepAction } from './actions.ts';
import type { Facts, Observed } from './observed.ts';

/** What the executor brings back from the step actions (execute.ts runSteps). */
export interface StepResults {
  /** The WanMigrations in the same namespace (ListPeerMigrations). */
  peers?: readonly WanMigration[];
  link?: StepReport;
  storage?: StepReport;
  relayRegistration?: StepReport;
  relayProgress?: MigrationProgress;
}

/** Phases in which the storage pre-copy is followed (it keeps running until the memory moves). */
const STORAGE_PHASES: readonly Phase[] = [Phases.SyncingStorage, Phases.PreparingTarget, Phases.AwaitingCutover, Phases.MigratingMemory];

export function planSteps(wm: WanMigration, f: Facts): StepAction[] {
  const spec = effectiveSpec(wm);
  const phase = wm.status?.phase ?? Phases.Pending;
  const steps: StepAction[] = [];
  // Only a migration that has not started can lose to another one (plan.ts preflight).
  if (phase === Phases.Pending) steps.push({ type: 'ListPeerMigrations' });
  // A migration being deleted or aborted only rolls back (or finishes): nothing is set up for it,
  // and a provider that fails cannot stand in the way of that.
  if (f.deleting || spec.abort) return steps;
  // The link provider is asked only once the migration runs: a blocked migration sets nothing up.
  if (f.providers.link && f.siteExists && phase === Phases.ConnectingLink) steps.push({ type: 'EnsureLink' });
  if (spec.storage.mode === 'CloudNetPreCopy' && f.providers.storage && STORAGE_PHASES.includes(phase) && f.targetCluster.ok && f.source.vmExists) {
    steps.push({ type: 'SyncStorage' });
  }
  // The relay intercepts exactly the flows the target's migration proxy published, registered as
  // soon as they are known (before the source connects, or the flow passes unoptimized).
  const relayed = f.providers.relay && f.siteExists && spec.relay.enabled && phase === Phases.MigratingMemory;
  if (relayed && f.target?.migrationEndpoint) steps.push({ type: 'RegisterRelayFlows' });
  if (relayed) steps.push({ type: 'ReadRelayProgress' });
  return steps;
}

/** Another non-terminal WanMigration for the same VM that was started first, or created first. */
export function conflictWith(wm: WanMigration, peers: readonly WanMigration[]): string | undefined {
  const mine = { started: !!wm.status?.migrationID, created: wm.metadata.creationTimestamp ?? '', name: wm.metadata.name ?? '' };
  for (const o of peers) {
    if (o.metadata.uid === wm.metadata.uid || o.spec.vmName !== wm.spec.vmName) continue;
    const phase = o.status?.phase;
    if (phase && TERMINAL_PHASES.includes(phase)) continue;
    if (o.metadata.deletionTimestamp) continue;
    const started = !!o.status?.migrationID;
    const created = o.metadata.creationTimestamp ?? '';
    const earlier = created < mine.created || (created === mine.created && (o.metadata.name ?? '') < mine.name);
    if ((started && !mine.started) || (started === mine.started && earlier)) return o.metadata.name;
  }
  return undefined;
}

/** The link step as plan() sees it when the provider was not asked (or there is none). */
function linkWithoutStep(f: Facts): StepReport {
  if (f.providers.link) return { state: 'Progressing', reason: 'LinkNotStarted', message: 'the WAN link is set up once the migration starts' };
  if (!f.targetCluster.ok) return { state: 'Progressing', reason: f.targetCluster.reason, message: f.targetCluster.message };
  return {
    state: 'Ready',
    reason: 'ClusterAPIReachable',
    message: `no link provider configured: only checked that the target cluster API (${f.targetServer ?? '?'}) answers; no WAN data-plane link was set up or verified`,
  };
}

function storageWithoutStep(f: Facts): StepReport {
  if (!f.providers.storage) {
    return { state: 'Unavailable', reason: 'StoragePreCopyUnavailable', message: 'storage.mode is CloudNetPreCopy but this operator has no storage pre-copy provider; use storage.mode KubeVirt or abort' };
  }
  return { state: 'Progressing', reason: 'NotStarted', message: 'waiting for the link and the target cluster' };
}

/** Facts plus the steps' answers: what plan() decides on. */
export function withStepResults(wm: WanMigration, f: Facts, r: StepResults): Observed {
  const { providers, siteExists: _siteExists, targetServer: _targetServer, ...facts } = f;
  const conflict = r.peers ? conflictWith(wm, r.peers) : undefined;
  return {
    ...facts,
    ...(conflict ? { conflictWith: conflict } : {}),
    link: r.link ?? linkWithoutStep(f),
    ...(effectiveSpec(wm).storage.mode === 'CloudNetPreCopy' ? { storage: r.storage ?? storageWithoutStep(f) } : {}),
    relayAvailable: providers.relay,
    ...(r.relayRegistration ? { relayRegistration: r.relayRegistration } : {}),
    ...(r.relayProgress ? { relayProgress: r.relayProgress } : {}),
  };
}
