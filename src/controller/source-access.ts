// What the operator itself must be allowed to do in the source namespace for a migration to get
// through, asked before it starts (SelfSubjectAccessReviews, which change nothing): the chart
// grants these writes only in rbac.vmDataNamespaces, and a namespace missing there would otherwise
// fail at the sending VMIM, after the target was prepared, with a 403.
import type { SourceAfterCutover } from '../api/wanmigration.ts';
import type { AccessQuestion } from './site/permissions.ts';

export function sourceAccessChecks(namespace: string, sourceAfterCutover: SourceAfterCutover): AccessQuestion[] {
  const vmim = (verb: string): AccessQuestion => ({ group: 'kubevirt.io', resource: 'virtualmachineinstancemigrations', verb, namespace });
  const vm = (verb: string): AccessQuestion => ({ group: 'kubevirt.io', resource: 'virtualmachines', verb, namespace });
  // The sending VMIM (created, deleted on rollback); the source VM after cutover (Stop: a merge
  // patch of its runStrategy; Delete: deleted; Keep: left alone).
  const checks = [vmim('create'), vmim('delete')];
  if (sourceAfterCutover === 'Stop') checks.push(vm('patch'));
  if (sourceAfterCutover === 'Delete') checks.push(vm('delete'));
  return checks;
}
