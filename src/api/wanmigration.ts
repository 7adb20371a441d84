// WanMigration: move one KubeVirt VM to a peer Site over the WAN. The phases mirror the CloudNet
// steps (link, storage pre-copy, target preparation, memory migration, cutover); the conditions
// follow kstatus (Ready / Reconciling / Stalled) plus one condition per step.
import { conditionsSchema, type Condition, type JSONSchemaProps, type ObjectMeta } from './meta.ts';

export const WANMIGRATION_KIND = 'WanMigration';
export const WANMIGRATION_PLURAL = 'wanmigrations';

export const Phases = {
  Pending: 'Pending',
  ConnectingLink: 'ConnectingLink',
  SyncingStorage: 'SyncingStorage',
  PreparingTarget: 'PreparingTarget',
  AwaitingCutover: 'AwaitingCutover',
  MigratingMemory: 'MigratingMemory',
  CuttingOver: 'CuttingOver',
  RollingBack: 'RollingBack',
  Succeeded: 'Succeeded',
  Failed: 'Failed',
  Aborted: 'Aborted',
} as const;
export type Phase = (typeof Phases)[keyof typeof Phases];
export const ALL_PHASES: readonly Phase[] = Object.values(Phases);
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
} as const;
export type ConditionType = (typeof ConditionTypes)[keyof typeof ConditionTypes];

export type StorageMode = 'KubeVirt' | 'CloudNetPreCopy';
export type CutoverMode = 'Auto' | 'Manual' | 'Window';
export type SourceAfterCutover = 'Stop' | 'Delete' | 'Keep';
export type DeadlinePolicy = 'Rollback' | 'Wait';
export type Compression = 'None' | 'Zstd';

export interface StorageSpec {
  /** `KubeVirt`: KubeVirt copies disks during the live migration. `CloudNetPreCopy`: CloudNet pre-copies them first. */
  mode?: StorageMode;
  /** Source StorageClass name → target StorageClass name. */
  storageClassMap?: Record<string, string>;
  /** Target StorageClass for volumes whose class is not in the map (unset: the target's default class). */
  defaultStorageClass?: string;
}

export interface RelaySpec {
  enabled?: boolean;
  compression?: Compression;
  dedup?: boolean;
  deltaPages?: boolean;
  cacheSizeMiB?: number;
}

export interface CutoverWindow {
  start: string;
  end: string;
}

export interface CutoverSpec {
  mode?: CutoverMode;
  /** For `Manual`: set to true to let the memory migration (and with it the switchover) start. */
  approved?: boolean;
  window?: CutoverWindow;
}

/** Deadlines per step, seconds. Unset values take the defaults below. */
export interface TimeoutsSpec {
  linkSeconds?: number;
  storageSeconds?: number;
  targetPreparedSeconds?: number;
  memorySeconds?: number;
  cutoverSeconds?: number;
}

export interface WanMigrationSpec {
  vmName: string;
  targetSite: string;
  targetNamespace: string;
  storage?: StorageSpec;
  relay?: RelaySpec;
  cutover?: CutoverSpec;
  maxDowntimeMs?: number;
  timeouts?: TimeoutsSpec;
  /** What happens when a step's deadline passes: roll back (default) or keep waiting (Stalled). */
  onDeadline?: DeadlinePolicy;
  sourceAfterCutover?: SourceAfterCutover;
  abort?: boolean;
}

export interface MigrationProgress {
  bytesTotal?: number;
  bytesSent?: number;
  bytesOverWan?: number;
  rounds?: number;
  dirtyRateBps?: number;
  etaSeconds?: number;
  reductionRatio?: number;
  percent?: number;
}

export interface TargetVMRef {
  site: string;
  namespace: string;
  name: string;
}

export interface WanMigrationStatus {
  phase?: Phase;
  conditions?: Condition[];
  observedGeneration?: number;
  progress?: MigrationProgress;
  targetVMRef?: TargetVMRef;
  migrationID?: string;
  startTime?: string;
  completionTime?: string;
  /** When the current phase began: the clock for the per-phase deadline. */
  phaseStartTime?: string;
  failureReason?: string;
  failureMessage?: string;
  /** Hash of the spec fields that cannot change once started (storage, relay, maxDowntimeMs). */
  startedSpecHash?: string;
  /** Names of the VMIMs this migration created (set once created; a VMIM missing later means it was cancelled). */
  vmims?: { source?: string; target?: string };
}

export interface WanMigration {
  apiVersion?: string;
  kind?: string;
  metadata: ObjectMeta;
  spec: WanMigrationSpec;
  status?: WanMigrationStatus;
}

export const DEFAULT_TIMEOUTS: Required<TimeoutsSpec> = {
  linkSeconds: 300,
  storageSeconds: 3600,
  targetPreparedSeconds: 600,
  memorySeconds: 1800,
  cutoverSeconds: 600,
};

export const DEFAULT_MAX_DOWNTIME_MS = 300;

const dns1123Label = '^[a-z0-9]([-a-z0-9]*[a-z0-9])?$';
const dns1123Subdomain = '^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$';
const immutable = (field: string) => [{ rule: 'self == oldSelf', message: `${field} is immutable` }];
const timeout = (def: number): JSONSchemaProps => ({ type: 'integer', minimum: 1, maximum: 7 * 24 * 3600, default: def });

export const wanMigrationSpecSchema: JSONSchemaProps = {
  type: 'object',
  required: ['vmName', 'targetSite', 'targetNamespace'],
  properties: {
    vmName: { type: 'string', minLength: 1, maxLength: 63, pattern: dns1123Label, description: 'VirtualMachine in this namespace to migrate.', 'x-kubernetes-validations': immutable('vmName') },
    targetSite: { type: 'string', minLength: 1, maxLength: 253, pattern: dns1123Subdomain, description: 'Name of the Site to migrate to.', 'x-kubernetes-validations': immutable('targetSite') },
    targetNamespace: { type: 'string', minLength: 1, maxLength: 63, pattern: dns1123Label, description: 'Namespace on the target site (must exist).', 'x-kubernetes-validations': immutable('targetNamespace') },
    storage: {
      type: 'object',
      default: {},
      description: 'How the disks move: KubeVirt copies them during the live migration, or CloudNet pre-copies them first.',
      properties: {
        mode: { type: 'string', enum: ['KubeVirt', 'CloudNetPreCopy'], default: 'KubeVirt', 'x-kubernetes-validations': immutable('storage.mode') },
        storageClassMap: { type: 'object', additionalProperties: { type: 'string' }, description: 'Source StorageClass name to target StorageClass name.' },
        defaultStorageClass: { type: 'string', description: 'Target StorageClass for classes missing from storageClassMap (unset: keep the source class name).' },
      },
    },
    relay: {
      type: 'object',
      default: {},
      description: 'CloudNet WAN relay for the migration stream (compression, deduplication, page deltas).',
      properties: {
        enabled: { type: 'boolean', default: false },
        compression: { type: 'string', enum: ['None', 'Zstd'], default: 'Zstd' },
        dedup: { type: 'boolean', default: true },
        deltaPages: { type: 'boolean', default: true },
        cacheSizeMiB: { type: 'integer', minimum: 0, maximum: 65536, default: 256 },
      },
    },
    cutover: {
      type: 'object',
      default: {},
      description: 'When the memory migration (and with it the switchover) may start: Auto, Manual (approved: true) or inside window.',
      properties: {
        mode: { type: 'string', enum: ['Auto', 'Manual', 'Window'], default: 'Auto' },
        approved: { type: 'boolean', default: false },
        window: {
          type: 'object',
          required: ['start', 'end'],
          properties: { start: { type: 'string', format: 'date-time', maxLength: 64 }, end: { type: 'string', format: 'date-time', maxLength: 64 } },
          'x-kubernetes-validations': [{ rule: 'timestamp(self.start) < timestamp(self.end)', message: 'window.start must be before window.end' }],
        },
      },
      'x-kubernetes-validations': [{ rule: "!has(self.mode) || self.mode != 'Window' || has(self.window)", message: 'cutover.window is required when cutover.mode is Window' }],
    },
    maxDowntimeMs: { type: 'integer', minimum: 1, maximum: 600000, default: DEFAULT_MAX_DOWNTIME_MS, description: 'Largest acceptable stop-and-copy pause, ms.' },
    timeouts: {
      type: 'object',
      default: {},
      description: 'Deadline per step, seconds. KubeVirt can hang (e.g. in WaitingForSync); a passed deadline sets Stalled and, with onDeadline Rollback, rolls back.',
      properties: {
        linkSeconds: timeout(DEFAULT_TIMEOUTS.linkSeconds),
        storageSeconds: timeout(DEFAULT_TIMEOUTS.storageSeconds),
        targetPreparedSeconds: timeout(DEFAULT_TIMEOUTS.targetPreparedSeconds),
        memorySeconds: timeout(DEFAULT_TIMEOUTS.memorySeconds),
        cutoverSeconds: timeout(DEFAULT_TIMEOUTS.cutoverSeconds),
      },
    },
    onDeadline: { type: 'string', enum: ['Rollback', 'Wait'], default: 'Rollback', description: 'Rollback: a passed deadline rolls the migration back (never once memory has moved). Wait: only mark Stalled.' },
    sourceAfterCutover: { type: 'string', enum: ['Stop', 'Delete', 'Keep'], default: 'Stop', description: 'What happens to the source VM once the target VMI runs.' },
    abort: { type: 'boolean', default: false, description: 'Set to true to roll back: both VMIMs and everything created on the target are deleted; the source keeps running. Ignored once memory has moved.' },
  },
};

const int64 = (): JSONSchemaProps => ({ type: 'integer', format: 'int64', minimum: 0 });

export const wanMigrationStatusSchema: JSONSchemaProps = {
  type: 'object',
  properties: {
    phase: { type: 'string', enum: [...ALL_PHASES] },
    conditions: conditionsSchema,
    observedGeneration: { type: 'integer' },
    progress: {
      type: 'object',
      properties: {
        bytesTotal: int64(), bytesSent: int64(), bytesOverWan: int64(), rounds: int64(), dirtyRateBps: int64(), etaSeconds: int64(),
        reductionRatio: { type: 'number' },
        percent: { type: 'integer', minimum: 0, maximum: 100 },
      },
    },
    targetVMRef: {
      type: 'object',
      properties: { site: { type: 'string' }, namespace: { type: 'string' }, name: { type: 'string' } },
    },
    migrationID: { type: 'string' },
    startTime: { type: 'string', format: 'date-time' },
    completionTime: { type: 'string', format: 'date-time' },
    phaseStartTime: { type: 'string', format: 'date-time' },
    failureReason: { type: 'string' },
    failureMessage: { type: 'string' },
    startedSpecHash: { type: 'string' },
    vmims: { type: 'object', properties: { source: { type: 'string' }, target: { type: 'string' } } },
  },
};

/** The spec with every defaulted field filled in, as the API server would (also for unit tests). */
export interface ResolvedSpec {
  vmName: string;
  targetSite: string;
  targetNamespace: string;
  storage: { mode: StorageMode; storageClassMap: Record<string, string>; defaultStorageClass?: string };
  relay: Required<RelaySpec>;
  cutover: { mode: CutoverMode; approved: boolean; window?: CutoverWindow };
  maxDowntimeMs: number;
  timeouts: Required<TimeoutsSpec>;
  onDeadline: DeadlinePolicy;
  sourceAfterCutover: SourceAfterCutover;
  abort: boolean;
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
    maxDowntimeMs: s.maxDowntimeMs ?? DEFAULT_MAX_DOWNTIME_MS,
    timeouts: { ...DEFAULT_TIMEOUTS, ...(s.timeouts ?? {}) },
    onDeadline: s.onDeadline ?? 'Rollback',
    sourceAfterCutover: s.sourceAfterCutover ?? 'Stop',
    abort: s.abort ?? false,
  };
}
