// WanMigration: move one KubeVirt VM to a peer Site over the WAN. The phases mirror the CloudNet
// steps (link, storage pre-copy, target preparation, memory migration, cutover); the conditions
// follow kstatus (Ready / Reconciling / Stalled) plus one condition per step. The spec and status
// types are generated from the schema in src/api/schema/wanmigration.ts, their one source.
import type { ObjectMeta } from './meta.ts';
import type {
  CutoverMode, CutoverWindow, DeadlinePolicy, Phase, RelaySpec, SourceAfterCutover, StorageMode, TimeoutsSpec, WanMigrationSpec, WanMigrationStatus,
} from './generated/wanmigration.ts';
import { DEFAULT_TIMEOUTS, Phases } from './schema/wanmigration.ts';

export type {
  Compression, CutoverMode, CutoverSpec, CutoverWindow, DeadlinePolicy, DerivedDeadlines, MigrationProgress, Phase, RelaySpec, SourceAfterCutover, StorageMode,
  StorageSpec, TargetVMRef, TimeoutsSpec, WanMigrationSpec, WanMigrationStatus,
} from './generated/wanmigration.ts';
export {
  ALL_PHASES, DEFAULT_TIMEOUTS, Phases, wanMigrationSpecSchema, wanMigrationStatusSchema,
} from './schema/wanmigration.ts';

export const WANMIGRATION_KIND = 'WanMigration';
export const WANMIGRATION_PLURAL = 'wanmigrations';

export const TERMINAL_PHASES: readonly Phase[] = [Phases.Succeeded, Phases.Failed, Phases.Aborted];

export const ConditionTypes = {
  Ready: 'Ready',
  Reconciling: 'Reconciling',
  Stalled: 'Stalled',
  LinkReady: 'LinkReady',
  StorageSynced: 'StorageSynced',
  TargetPrepared: 'TargetPrepared',
  MemoryMigrated: 'MemoryMigrated',
  CutoverComplete: 'CutoverComplete',
  /** spec.relay.enabled: whether the relay intercepts and optimizes the migration's stream. */
  RelayOptimizing: 'RelayOptimizing',
} as const;
export type ConditionType = (typeof ConditionTypes)[keyof typeof ConditionTypes];

export interface WanMigration {
  apiVersion?: string;
  kind?: string;
  metadata: ObjectMeta;
  spec: WanMigrationSpec;
  status?: WanMigrationStatus;
}

/** The spec with every defaulted field filled in, as the API server would (also for unit tests). */
export interface ResolvedSpec {
  vmName: string;
  targetSite: string;
  targetNamespace: string;
  storage: { mode: StorageMode; storageClassMap: Record<string, string>; defaultStorageClass?: string };
  relay: Required<RelaySpec>;
  cutover: { mode: CutoverMode; approved: boolean; window?: CutoverWindow };
  /** storageSeconds and memorySeconds stay undefined when unset: they are derived (status.deadlines). */
  timeouts: typeof DEFAULT_TIMEOUTS & Pick<TimeoutsSpec, 'storageSeconds' | 'memorySeconds'>;
  onDeadline: DeadlinePolicy;
  sourceAfterCutover: SourceAfterCutover;
  abort: boolean;
}

/**
 * The spec a migration runs with: the live spec, except storage and relay, which keep the values
 * the migration started with (status.startedWith) once it has started.
 */
export function effectiveSpec(wm: { spec: WanMigrationSpec; status?: { startedWith?: Pick<WanMigrationSpec, 'storage' | 'relay'> } }): ResolvedSpec {
  return resolveSpec({ ...wm.spec, ...wm.status?.startedWith });
}

export function resolveSpec(s: WanMigrationSpec): ResolvedSpec {
  return {
    vmName: s.vmName,
    targetSite: s.targetSite,
    targetNamespace: s.targetNamespace,
    storage: {
      mode: s.storage?.mode ?? 'KubeVirt',
      storageClassMap: s.storage?.storageClassMap ?? {},
      ...(s.storage?.defaultStorageClass ? { defaultStorageClass: s.storage.defaultStorageClass } : {}),
    },
    relay: {
      enabled: s.relay?.enabled ?? false,
      compression: s.relay?.compression ?? 'Zstd',
      dedup: s.relay?.dedup ?? true,
      deltaPages: s.relay?.deltaPages ?? true,
      cacheSizeMiB: s.relay?.cacheSizeMiB ?? 256,
    },
    cutover: {
      mode: s.cutover?.mode ?? 'Auto',
      approved: s.cutover?.approved ?? false,
      ...(s.cutover?.window ? { window: s.cutover.window } : {}),
    },
    timeouts: { ...DEFAULT_TIMEOUTS, ...(s.timeouts ?? {}) },
    onDeadline: s.onDeadline ?? 'Rollback',
    sourceAfterCutover: s.sourceAfterCutover ?? 'Stop',
    abort: s.abort ?? false,
  };
}
