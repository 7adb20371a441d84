// Guest memory of a KubeVirt VirtualMachine in bytes: the first pre-copy round sends about that
// much, so it is the progress total and the basis of the first-round ETA.
import type { KubeObjectShape } from '../../api/resources.ts';

const BINARY: Record<string, number> = { Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, Ti: 2 ** 40, Pi: 2 ** 50, Ei: 2 ** 60 };
const DECIMAL: Record<string, number> = { '': 1, k: 1e3, M: 1e6, G: 1e9, T: 1e12, P: 1e15, E: 1e18 };

/** A Kubernetes resource quantity (`256Mi`, `1G`, `1.5Gi`, `2e9`) in bytes; undefined if malformed. */
export function quantityBytes(q: unknown): number | undefined {
  if (typeof q === 'number') return Number.isFinite(q) && q >= 0 ? q : undefined;
  if (typeof q !== 'string') return undefined;
  const m = /^(\d+(?:\.\d+)?)(?:([KMGTPE]i|[kMGTPE])?|[eE](\d+))$/.exec(q.trim());
  if (!m) return undefined;
  const n = Number(m[1]);
  if (m[3] !== undefined) return Math.round(n * 10 ** Number(m[3]));
  const unit = m[2] ?? '';
  return Math.round(n * (BINARY[unit] ?? DECIMAL[unit]));
}

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
