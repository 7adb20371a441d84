// Deterministic names and labels derived from the WanMigration UID: a restarted operator finds
// the objects it created instead of creating a second migration.
import { GROUP } from '../api/meta.ts';
import { LABEL_VALUE_MAX, truncateName } from '../api/names.ts';
import type { WanMigration } from '../api/wanmigration.ts';

export const FINALIZER = `${GROUP}/wanmigration-cleanup`;
/** On every Site: its deletion waits until no started, unfinished WanMigration needs it. */
export const SITE_FINALIZER = `${GROUP}/site-in-use`;
/** Set on every object this operator creates on the target (and on its VMIMs): value = migration UID. */
export const MIGRATION_LABEL = `${GROUP}/migration-uid`;
export const MANAGED_BY_LABEL = 'app.kubernetes.io/managed-by';
export const MANAGED_BY = 'cloudnet';
/** On a WanMigration: roll back / delete without cleaning the target (it is gone for good). */
export const SKIP_TARGET_CLEANUP = `${GROUP}/skip-target-cleanup`;
/** KubeVirt's annotation naming the run strategy a WaitAsReceiver VM switches to after the migration. */
export const RESTORE_RUN_STRATEGY = 'kubevirt.io/restore-run-strategy';

export interface MigrationNames {
  migrationID: string;
  sourceVMIM: string;
  targetVMIM: string;
}

/**
 * The VMIM names: a readable prefix of the WanMigration's name, the direction and 10 characters of
 * its UID (which alone keeps them unique). At most 63 characters, because KubeVirt copies a VMIM's
 * name into the label kubevirt.io/migration-name of the objects it creates for the migration
 * (virtv1.MigrationNameLabel: the migration PodDisruptionBudget, backend-storage PVCs).
 */
export function migrationNames(wm: WanMigration): MigrationNames {
  const uid = wm.metadata.uid ?? '';
  const short = uid.replace(/-/g, '').slice(0, 10);
  const base = truncateName(wm.metadata.name ?? 'wm', LABEL_VALUE_MAX - '-send-'.length - short.length) || 'wm';
  return { migrationID: uid, sourceVMIM: `${base}-send-${short}`, targetVMIM: `${base}-recv-${short}` };
}
