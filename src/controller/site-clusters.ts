// SiteClusters over the runtime's ClusterClients: the Site names the kubeconfig Secret.
import type { ClusterClients } from '../kube/clusters.ts';
import type { KubeClient } from '../kube/client.ts';
import { DEFAULT_KUBECONFIG_KEY, type Site } from '../api/site.ts';
import type { SiteClusters } from './deps.ts';

export function siteClustersFrom(clients: ClusterClients): SiteClusters {
  return {
    forSite(site: Site, signal?: AbortSignal): Promise<KubeClient> {
      const ref = site.spec.kubeconfigSecretRef;
      return clients.forSecret({ namespace: ref.namespace, name: ref.name, key: ref.key ?? DEFAULT_KUBECONFIG_KEY }, site.metadata.name, signal);
    },
  };
}
