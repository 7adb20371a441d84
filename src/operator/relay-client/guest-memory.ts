// Guest memory of a KubeVirt VirtualMachine in bytes: the first pre-copy round sends about that
// much, so it is the progress total and the basis of the first-round ETA.
import type { KubeObjectShape } from '../../api/resources.ts';
import { quantityBytes } from '../../api/quantity.ts';

type Dict = Record<string, unknown>;
const dict = (v: unknown): Dict => (typeof v === 'object' && v !== null ? (v as Dict) : {});

/** `spec.template.spec.domain.memory.guest`, else the memory request, else the limit (KubeVirt's order). */
export function vmGuestMemoryBytes(vm: KubeObjectShape): number | undefined {
  const domain = dict(dict(dict(dict(vm.spec).template).spec).domain);
  const resources = dict(domain.resources);
  for (const q of [dict(domain.memory).guest, dict(resources.requests).memory, dict(resources.limits).memory]) {
    const b = quantityBytes(q);
    if (b !== undefined) return b;
  }
  return undefined;
}
