// Kubernetes resource quantities (`256Mi`, `1G`, `1.5Gi`, `2e9`) in bytes, for the sizes the
// operator reads from VMs and claims (guest memory, disk requests and capacities).

const BINARY: Record<string, number> = { Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, Ti: 2 ** 40, Pi: 2 ** 50, Ei: 2 ** 60 };
const DECIMAL: Record<string, number> = { '': 1, k: 1e3, M: 1e6, G: 1e9, T: 1e12, P: 1e15, E: 1e18 };

/** A quantity in bytes, rounded up as Kubernetes does (Quantity.Value); undefined if malformed. */
export function quantityBytes(q: unknown): number | undefined {
  if (typeof q === 'number') return Number.isFinite(q) && q >= 0 ? Math.ceil(q) : undefined;
  if (typeof q !== 'string') return undefined;
  const m = /^(\d+(?:\.\d+)?)(?:([KMGTPE]i|[kMGTPE])?|[eE](\d+))$/.exec(q.trim());
  if (!m) return undefined;
  const n = Number(m[1]);
  if (m[3] !== undefined) return Math.ceil(n * 10 ** Number(m[3]));
  const unit = m[2] ?? '';
  return Math.ceil(n * (BINARY[unit] ?? DECIMAL[unit]));
}
