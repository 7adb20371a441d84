// KubeVirt names the controllers look for. The kinds themselves (Res) are defined in
// src/api/resources.ts, shared with the providers and the tools.

/** KubeVirt's CA bundle ConfigMaps (both in KubeVirt's namespace, key `ca-bundle`). */
export const KUBEVIRT_CA = 'kubevirt-ca';
export const KUBEVIRT_EXTERNAL_CA = 'kubevirt-external-ca';
export const CA_BUNDLE_KEY = 'ca-bundle';
export const DECENTRALIZED_FEATURE_GATE = 'DecentralizedLiveMigration';
