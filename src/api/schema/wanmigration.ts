// WanMigration spec and status: the one source of the WanMigration CRD schema and of the
// WanMigration* TypeScript types (src/api/generated/wanmigration.ts). The phases and defaults live
// here because the schema's enum and defaults are built from them.
import { conditionsField } from './condition.ts';
import { DNS1123_LABEL, DNS1123_SUBDOMAIN, immutable, type ApiField, type ApiSchema } from './api-schema.ts';
import type { Phase, TimeoutsSpec } from '../generated/wanmigration.ts';
import { METADATA_COPY_RULE } from '../tenancy.ts';

/** The phases, one per CloudNet step plus the terminal ones; `satisfies` keeps them equal to the generated Phase. */
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
} as const satisfies { [P in Phase]: P };
export const ALL_PHASES: readonly Phase[] = Object.values(Phases);

/** Fixed defaults. storageSeconds and memorySeconds have none: unset, they are derived from the
 *  VM's memory and disk sizes and the Site's bandwidth when the migration starts (status.deadlines). */
export const DEFAULT_TIMEOUTS: Required<Omit<TimeoutsSpec, 'storageSeconds' | 'memorySeconds'>> = {
  linkSeconds: 300,
  targetPreparedSeconds: 600,
  cutoverSeconds: 600,
};

const timeout = (def: number, step: string): ApiField => ({
  type: 'integer', minimum: 1, maximum: 7 * 24 * 3600, default: def, description: `Deadline of ${step}, seconds.`,
});
const derivedTimeout = (step: string): ApiField => ({
  type: 'integer', minimum: 1, maximum: 30 * 24 * 3600,
  description: `Deadline of ${step}, seconds. Unset: derived from the VM's memory and disk sizes and the Site's bandwidth when the migration starts (at least KubeVirt's 150 s per GiB; shown in status.deadlines).`,
});

export const wanMigrationSpecSchema: ApiSchema = {
  tsName: 'WanMigrationSpec',
  type: 'object',
  description: `Which VM moves where, and how: disks, WAN relay, cutover, deadlines and what happens to the source. ${METADATA_COPY_RULE}`,
  required: ['vmName', 'targetSite', 'targetNamespace'],
  properties: {
    vmName: { type: 'string', minLength: 1, maxLength: 63, pattern: DNS1123_LABEL, description: 'VirtualMachine in this namespace to migrate.', 'x-kubernetes-validations': immutable('vmName') },
    targetSite: { type: 'string', minLength: 1, maxLength: 253, pattern: DNS1123_SUBDOMAIN, description: 'Name of the Site to migrate to.', 'x-kubernetes-validations': immutable('targetSite') },
    targetNamespace: { type: 'string', minLength: 1, maxLength: 63, pattern: DNS1123_LABEL, description: "Namespace on the target site (must exist). It must be allowed by the target Site's spec.allowedNamespaces (and, when set, by this namespace's entry in its spec.allowedNamespacesBySource); by default only this WanMigration's own namespace is (reason TargetNamespaceNotAllowed otherwise).", 'x-kubernetes-validations': immutable('targetNamespace') },
    storage: {
      tsName: 'StorageSpec',
      type: 'object',
      default: {},
      description: 'How the disks move: KubeVirt copies them during the live migration, or CloudNet pre-copies them first.',
      properties: {
        mode: {
          tsName: 'StorageMode', type: 'string', enum: ['KubeVirt', 'CloudNetPreCopy'], default: 'KubeVirt',
          description: 'KubeVirt: KubeVirt copies the disks during the live migration. CloudNetPreCopy: CloudNet pre-copies them before the memory migration starts.',
          'x-kubernetes-validations': immutable('storage.mode'),
        },
        storageClassMap: { type: 'object', additionalProperties: { type: 'string' }, description: 'Source StorageClass name to target StorageClass name.' },
        defaultStorageClass: {
          type: 'string',
          description: 'Target StorageClass for classes missing from storageClassMap (unset: keep the source class name; a volume without a class gets the target\'s default class).',
        },
      },
    },
    relay: {
      tsName: 'RelaySpec',
      type: 'object',
      default: {},
      description: 'CloudNet WAN relay for the migration stream (compression, deduplication, page deltas).',
      properties: {
        enabled: { type: 'boolean', default: false, description: 'Send the migration stream through the CloudNet relay; without a relay in this operator, a RelayUnavailable Warning is raised.' },
        compression: { tsName: 'Compression', type: 'string', enum: ['None', 'Zstd'], default: 'Zstd', description: 'Compression of the relayed stream: None or Zstd.' },
        dedup: { type: 'boolean', default: true, description: 'Replace pages the receiving relay already holds by hash references.' },
        deltaPages: { type: 'boolean', default: true, description: 'Send a changed page as an XOR+RLE delta against its previous copy.' },
        cacheSizeMiB: { type: 'integer', minimum: 0, maximum: 65536, default: 256, description: 'Page cache of each relay for deduplication and deltas, MiB.' },
      },
    },
    cutover: {
      tsName: 'CutoverSpec',
      type: 'object',
      default: {},
      description: 'When the memory migration (and with it the switchover) may start: Auto, Manual (approved: true) or inside window.',
      properties: {
        mode: {
          tsName: 'CutoverMode', type: 'string', enum: ['Auto', 'Manual', 'Window'], default: 'Auto',
          description: 'Auto: as soon as the target is prepared. Manual: once approved is true. Window: only between window.start and window.end.',
        },
        approved: { type: 'boolean', default: false, description: 'For Manual: set to true to let the memory migration (and with it the switchover) start.' },
        window: {
          tsName: 'CutoverWindow',
          type: 'object',
          description: 'For Window: the interval in which the memory migration may start; once it has passed, the migration is Stalled.',
          required: ['start', 'end'],
          properties: {
            start: { type: 'string', format: 'date-time', maxLength: 64, description: 'Start of the window (RFC 3339).' },
            end: { type: 'string', format: 'date-time', maxLength: 64, description: 'End of the window (RFC 3339), after start.' },
          },
          'x-kubernetes-validations': [{ rule: 'timestamp(self.start) < timestamp(self.end)', message: 'window.start must be before window.end' }],
        },
      },
      'x-kubernetes-validations': [{ rule: "!has(self.mode) || self.mode != 'Window' || has(self.window)", message: 'cutover.window is required when cutover.mode is Window' }],
    },
    timeouts: {
      tsName: 'TimeoutsSpec',
      type: 'object',
      default: {},
      description: 'Deadline per step, seconds. KubeVirt can hang (e.g. in WaitingForSync); a passed deadline sets Stalled and, with onDeadline Rollback, rolls back.',
      properties: {
        linkSeconds: timeout(DEFAULT_TIMEOUTS.linkSeconds, 'ConnectingLink (the link to the target site)'),
        storageSeconds: derivedTimeout('SyncingStorage (the disk pre-copy)'),
        targetPreparedSeconds: timeout(DEFAULT_TIMEOUTS.targetPreparedSeconds, 'PreparingTarget (target VM, volumes and receiving VMIM)'),
        memorySeconds: derivedTimeout('MigratingMemory (the live migration, which with storage.mode KubeVirt also copies the disks)'),
        cutoverSeconds: timeout(DEFAULT_TIMEOUTS.cutoverSeconds, 'CuttingOver (memory moved; waiting for the target VMI to run)'),
      },
    },
    onDeadline: {
      tsName: 'DeadlinePolicy', type: 'string', enum: ['Rollback', 'Wait'], default: 'Rollback',
      description: 'Rollback: a passed deadline rolls the migration back (never once memory has moved). Wait: only mark Stalled.',
    },
    sourceAfterCutover: {
      tsName: 'SourceAfterCutover', type: 'string', enum: ['Stop', 'Delete', 'Keep'], default: 'Stop',
      description: 'What happens to the source VM once the target VMI runs.',
    },
    abort: { type: 'boolean', default: false, description: 'Set to true to roll back: both VMIMs and everything created on the target are deleted; the source keeps running. Ignored once memory has moved.' },
  },
};

const counter = (description: string): ApiField => ({ type: 'integer', format: 'int64', minimum: 0, description });

export const wanMigrationStatusSchema: ApiSchema = {
  tsName: 'WanMigrationStatus',
  type: 'object',
  description: 'Observed state of the migration: phase, conditions (kstatus and one per step) and progress.',
  properties: {
    phase: {
      tsName: 'Phase', type: 'string', enum: [...ALL_PHASES],
      description: 'The current step: Pending, ConnectingLink, SyncingStorage, PreparingTarget, AwaitingCutover, MigratingMemory, CuttingOver, RollingBack, or the final Succeeded, Failed, Aborted.',
    },
    conditions: conditionsField('Ready, Reconciling and Stalled (kstatus), plus LinkReady, StorageSynced, TargetPrepared, MemoryMigrated and CutoverComplete.'),
    observedGeneration: { type: 'integer', description: 'metadata.generation of the spec this status describes.' },
    progress: {
      tsName: 'MigrationProgress',
      type: 'object',
      description: 'How far the data has moved. Byte counters come from the storage pre-copy or the relay; without them only percent moves, by phase.',
      properties: {
        bytesTotal: counter('Bytes to move in the current step (disk size, or guest memory when known).'),
        bytesSent: counter('Raw bytes sent so far in the current step.'),
        bytesOverWan: counter('Bytes that crossed the WAN for them, after deduplication, deltas and compression.'),
        rounds: counter('Copy rounds so far (pre-copy passes over the dirty data).'),
        dirtyRateBps: counter('Rate at which the guest dirties data, bytes/s.'),
        etaSeconds: counter('Estimated seconds until the current step has copied everything.'),
        reductionRatio: { type: 'number', description: 'bytesOverWan / bytesSent: the share of the raw bytes that crossed the WAN.' },
        percent: { type: 'integer', minimum: 0, maximum: 100, description: 'Overall progress of the migration, percent.' },
      },
    },
    targetVMRef: {
      tsName: 'TargetVMRef',
      type: 'object',
      description: 'The VM this migration creates on the target site (set once the target is being prepared).',
      required: ['site', 'namespace', 'name'],
      properties: {
        site: { type: 'string', description: 'Site of the target VM.' },
        namespace: { type: 'string', description: 'Namespace of the target VM on that site.' },
        name: { type: 'string', description: 'Name of the target VM.' },
      },
    },
    migrationID: { type: 'string', description: 'ID shared by the source and target VMIMs (the WanMigration UID); set when the migration starts.' },
    deadlines: {
      tsName: 'DerivedDeadlines',
      type: 'object',
      description: 'The deadlines of SyncingStorage and MigratingMemory in force, fixed when the migration starts: from spec.timeouts, or derived from the data.',
      properties: {
        storageSeconds: { type: 'integer', description: 'Deadline of SyncingStorage, seconds.' },
        memorySeconds: { type: 'integer', description: 'Deadline of MigratingMemory, seconds.' },
        basis: { type: 'string', description: 'How they were reached: sizes, bandwidth and the rule that set each.' },
      },
    },
    phaseDeadline: { type: 'string', format: 'date-time', description: 'When the current phase passes its deadline (unset in phases without one).' },
    startTime: { type: 'string', format: 'date-time', description: 'When the migration started (left Pending).' },
    completionTime: { type: 'string', format: 'date-time', description: 'When the migration reached Succeeded, Failed or Aborted.' },
    phaseStartTime: { type: 'string', format: 'date-time', description: 'When the current phase began: the clock for its deadline.' },
    failureReason: { type: 'string', description: 'CamelCase reason of the rollback or failure (also the reason of Ready and of the Event).' },
    failureMessage: { type: 'string', description: 'Human-readable details of the rollback or failure.' },
    startedSpecHash: { type: 'string', description: 'Hash of the spec fields that cannot change once started (storage, relay): a change is reported, not applied.' },
    startedWith: {
      type: 'object',
      description: 'The storage and relay settings the migration started with, defaults filled in: the running migration keeps applying these, whatever spec.storage and spec.relay say later (a change is reported with reason SpecChangeIgnored).',
      properties: {
        storage: wanMigrationSpecSchema.properties!.storage!,
        relay: wanMigrationSpecSchema.properties!.relay!,
      },
    },
    vmims: {
      type: 'object',
      description: 'Names of the VMIMs this migration created (set once created; a VMIM missing later means it was cancelled).',
      properties: {
        source: { type: 'string', description: 'The sending VirtualMachineInstanceMigration on this cluster.' },
        target: { type: 'string', description: 'The receiving VirtualMachineInstanceMigration on the target site.' },
      },
    },
  },
};
