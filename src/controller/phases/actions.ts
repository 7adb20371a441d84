// Side effects the planner asks for. The reconciler executes them in order; each is idempotent
// (create tolerates AlreadyExists, delete tolerates NotFound), so a crash between two actions
// is repaired by the next reconcile.
import type { SourceAfterCutover } from '../../api/wanmigration.ts';

export type Action =
  | { type: 'AddFinalizer' }
  | { type: 'RemoveFinalizer' }
  | { type: 'EnsureCATrust' }
  | { type: 'EnsureTargetObjects' }
  | { type: 'CreateTargetVMIM' }
  | { type: 'CreateSourceVMIM'; connectURL: string }
  | { type: 'DeleteSourceVMIM' }
  | { type: 'DeleteTargetVMIM' }
  | { type: 'DeleteTargetObjects' }
  | { type: 'ReleaseStorage'; rolledBack: boolean }
  | { type: 'ReleaseRelayFlows' }
  | { type: 'FinishSource'; mode: SourceAfterCutover };

/**
 * Provider calls the planner asks for before it decides the phase (steps.ts): their answers are
 * part of what it decides on, so they run first and feed `plan()` in the same reconcile.
 */
export type StepAction =
  | { type: 'ListPeerMigrations' }
  | { type: 'EnsureLink' }
  | { type: 'SyncStorage' }
  | { type: 'RegisterRelayFlows' }
  | { type: 'ReadRelayProgress' };

export interface EventRecord {
  type: 'Normal' | 'Warning';
  reason: string;
  message: string;
}
