// SiteClusters over the runtime's ClusterClients: the Site names the kubeconfig Secret.
import type { ClusterClients } from '../kube/clusters.ts';
import type { KubeClient } from '../kube/client.ts';
import type { Site } from '../api/site.ts';
import { kubeconfigSecretOf } from '../api/site-kubeconfig.ts';
import type { SiteClusters } from './deps.ts';

export function siteClustersFrom(clients: ClusterClients): SiteClusters {
  return {
    forSite(site: Site, signal?: AbortSignal): Promise<KubeClient> {
      return clients.forSecret(kubeconfigSecretOf(site), site.metadata.name, signal);
    },
  };
}
