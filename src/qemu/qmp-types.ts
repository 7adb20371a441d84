// The slice of the QMP schema (QEMU 7.2, qapi/migration.json and qapi/run-state.json) that
// CloudNet uses. Fields QEMU may omit are optional; names are QEMU's own so that objects can be
// passed to QMP unchanged.

export type MigrationStatus =
  | 'none' | 'setup' | 'cancelling' | 'cancelled' | 'active' | 'postcopy-active' | 'postcopy-paused'
  | 'postcopy-recover' | 'completed' | 'failed' | 'colo' | 'pre-switchover' | 'device' | 'wait-unplug';

export interface MigrationRamStats {
  transferred: number;
  remaining: number;
  total: number;
  duplicate: number;
  skipped?: number;
  normal: number;
  'normal-bytes': number;
  'dirty-pages-rate': number;
  mbps: number;
  'dirty-sync-count': number;
  'postcopy-requests'?: number;
  'page-size': number;
  'multifd-bytes'?: number;
  'pages-per-second'?: number;
  'precopy-bytes'?: number;
  'downtime-bytes'?: number;
  'postcopy-bytes'?: number;
}

export interface XbzrleCacheStats {
  'cache-size': number;
  bytes: number;
  pages: number;
  'cache-miss': number;
  'cache-miss-rate': number;
  'encoding-rate'?: number;
  overflow: number;
}

export interface MigrationInfo {
  status?: MigrationStatus;
  ram?: MigrationRamStats;
  'xbzrle-cache'?: XbzrleCacheStats;
  'total-time'?: number;
  'expected-downtime'?: number;
  downtime?: number;
  'setup-time'?: number;
  'cpu-throttle-percentage'?: number;
  'error-desc'?: string;
  'dirty-limit-throttle-time-per-round'?: number;
}

/** Capability names accepted by migrate-set-capabilities in QEMU 7.2. */
export type MigrationCapabilityName =
  | 'xbzrle' | 'rdma-pin-all' | 'auto-converge' | 'zero-blocks' | 'compress' | 'events' | 'postcopy-ram'
  | 'x-colo' | 'release-ram' | 'block' | 'return-path' | 'pause-before-switchover' | 'multifd'
  | 'dirty-bitmaps' | 'postcopy-blocktime' | 'late-block-activate' | 'x-ignore-shared'
  | 'validate-uuid' | 'background-snapshot' | 'zero-copy-send' | 'postcopy-preempt';

export interface MigrationCapabilityStatus {
  capability: MigrationCapabilityName;
  state: boolean;
}

export interface MigrationParameters {
  'announce-initial'?: number;
  'compress-level'?: number;
  'compress-threads'?: number;
  'throttle-trigger-threshold'?: number;
  'cpu-throttle-initial'?: number;
  'cpu-throttle-increment'?: number;
  'cpu-throttle-tailslow'?: boolean;
  'max-cpu-throttle'?: number;
  /** Bytes per second; QEMU's default is 128 MiB/s. */
  'max-bandwidth'?: number;
  /** Milliseconds; QEMU's default is 300. */
  'downtime-limit'?: number;
  'x-checkpoint-delay'?: number;
  'block-incremental'?: boolean;
  'multifd-channels'?: number;
  'xbzrle-cache-size'?: number;
  'max-postcopy-bandwidth'?: number;
  'multifd-compression'?: 'none' | 'zlib' | 'zstd';
  'multifd-zlib-level'?: number;
  'multifd-zstd-level'?: number;
}

export type RunState =
  | 'debug' | 'inmigrate' | 'internal-error' | 'io-error' | 'paused' | 'postmigrate' | 'prelaunch'
  | 'finish-migrate' | 'restore-vm' | 'running' | 'save-vm' | 'shutdown' | 'suspended' | 'watchdog'
  | 'guest-panicked' | 'colo';

export interface StatusInfo {
  running: boolean;
  singlestep?: boolean;
  status: RunState;
}

export interface QmpVersion {
  qemu: { major: number; minor: number; micro: number };
  package: string;
}

type NoArgs = Record<string, never> | undefined;

/** Typed commands: `execute(name, args)` checks the arguments and types the result. */
export interface QmpCommandMap {
  'qmp_capabilities': { args: NoArgs; ret: Record<string, never> };
  'query-version': { args: NoArgs; ret: QmpVersion };
  'query-status': { args: NoArgs; ret: StatusInfo };
  'query-migrate': { args: NoArgs; ret: MigrationInfo };
  'query-migrate-capabilities': { args: NoArgs; ret: MigrationCapabilityStatus[] };
  'query-migrate-parameters': { args: NoArgs; ret: MigrationParameters };
  'migrate-set-capabilities': { args: { capabilities: MigrationCapabilityStatus[] }; ret: Record<string, never> };
  'migrate-set-parameters': { args: MigrationParameters; ret: Record<string, never> };
  'migrate': { args: { uri: string; detach?: boolean; resume?: boolean }; ret: Record<string, never> };
  'migrate-incoming': { args: { uri: string }; ret: Record<string, never> };
  'migrate_cancel': { args: NoArgs; ret: Record<string, never> };
  'cont': { args: NoArgs; ret: Record<string, never> };
  'stop': { args: NoArgs; ret: Record<string, never> };
  'quit': { args: NoArgs; ret: Record<string, never> };
  'system_powerdown': { args: NoArgs; ret: Record<string, never> };
  'human-monitor-command': { args: { 'command-line': string; 'cpu-index'?: number }; ret: string };
}

export type QmpCommandName = keyof QmpCommandMap;
