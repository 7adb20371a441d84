// Is DecentralizedLiveMigration on in a KubeVirt CR? KubeVirt's rule (kubevirt/kubevirt
// pkg/virt-config/featuregate/feature-gates.go `IsEnabled`): explicitly enabled wins, then
// explicitly disabled (`developerConfiguration.disabledFeatureGates`, newer releases only), then a
// Beta gate is on by default. The gate is Alpha (off unless listed) up to v1.9 and registered as
// Beta on the main branch (v1.10 development, 2026-08); the version threshold below is therefore
// our reading of the main branch, not of a release.
import { DECENTRALIZED_FEATURE_GATE } from './resources.ts';

export interface KubeVirtGateView {
  featureGates?: string[];
  disabledFeatureGates?: string[];
  /** status.observedKubeVirtVersion (or targetKubeVirtVersion), e.g. "v1.7.0". */
  version?: string;
}

/** First KubeVirt minor version in which DecentralizedLiveMigration is Beta (on by default). */
export const BETA_SINCE: [number, number] = [1, 10];

function parseVersion(v: string | undefined): [number, number] | undefined {
  const m = /^v?(\d+)\.(\d+)/.exec(v ?? '');
  return m ? [Number(m[1]), Number(m[2])] : undefined;
}

export type GateState = { enabled: true; how: 'listed' | 'beta-default' } | { enabled: false; how: 'disabled' | 'not-listed' };

export function decentralizedGate(kv: KubeVirtGateView): GateState {
  if (kv.featureGates?.includes(DECENTRALIZED_FEATURE_GATE)) return { enabled: true, how: 'listed' };
  if (kv.disabledFeatureGates?.includes(DECENTRALIZED_FEATURE_GATE)) return { enabled: false, how: 'disabled' };
  const v = parseVersion(kv.version);
  if (v && (v[0] > BETA_SINCE[0] || (v[0] === BETA_SINCE[0] && v[1] >= BETA_SINCE[1]))) return { enabled: true, how: 'beta-default' };
  return { enabled: false, how: 'not-listed' };
}

/** What to tell the user when the gate is off on `where` (a cluster name) for KubeVirt CR ns/name. */
export function gateOffMessage(where: string, cr: string, how: 'disabled' | 'not-listed', version: string | undefined): string {
  const fix = `add ${DECENTRALIZED_FEATURE_GATE} to spec.configuration.developerConfiguration.featureGates of KubeVirt ${cr}`;
  if (how === 'disabled') return `KubeVirt ${cr} on the ${where} cluster lists ${DECENTRALIZED_FEATURE_GATE} in developerConfiguration.disabledFeatureGates; remove it there and ${fix}`;
  return `the ${DECENTRALIZED_FEATURE_GATE} feature gate is not enabled in KubeVirt ${cr} on the ${where} cluster (version ${version ?? 'unknown'}); ${fix}`;
}
