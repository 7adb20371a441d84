// Where a Site's kubeconfig is: the Secret key its spec names, with the API default filled in.
// The operator (SiteClusters) and the gateway agent (src/link) both reach a peer cluster this way.
import { DEFAULT_KUBECONFIG_KEY, type Site } from './site.ts';

export interface KubeconfigSecret {
  namespace: string;
  name: string;
  key: string;
}

export function kubeconfigSecretOf(site: Site): KubeconfigSecret {
  const ref = site.spec.kubeconfigSecretRef;
  return { namespace: ref.namespace, name: ref.name, key: ref.key ?? DEFAULT_KUBECONFIG_KEY };
}
