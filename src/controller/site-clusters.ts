// SiteClusters over the runtime's ClusterClients: the Site names the kubeconfig Secret, which must
// be in the operator's own namespace. A Site is cluster-scoped and admin-owned, but the Secret
// namespace is a field anyone who may edit Sites controls: without this rule a Site could make
// the operator read (and use) credentials from any namespace its ServiceAccount can see.
import { ClusterClientError, type ClusterClients } from '../kube/clusters.ts';
import type { KubeClient } from '../kube/client.ts';
import type { Site } from '../api/site.ts';
import { kubeconfigSecretOf } from '../api/site-kubeconfig.ts';
import type { SiteClusters } from './deps.ts';

export function siteClustersFrom(clients: ClusterClients, operatorNamespace: string): SiteClusters {
  return {
    async forSite(site: Site, signal?: AbortSignal): Promise<KubeClient> {
      const ref = kubeconfigSecretOf(site);
      if (ref.namespace !== operatorNamespace) {
        throw new ClusterClientError('SecretNamespaceNotAllowed',
          `Secret ${ref.namespace}/${ref.name} is not used: kubeconfig Secrets of Sites must be in the operator's namespace ${operatorNamespace}; move the Secret there and update spec.kubeconfigSecretRef.namespace`);
      }
      return clients.forSecret(ref, site.metadata.name, signal);
    },
  };
}
