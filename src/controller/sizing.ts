// What the derived deadlines (phases/deadlines.ts) are computed from, read once before the
// migration starts: the VM's guest memory, the capacities of its disk claims, and the target Site's
// bandwidth (status.bandwidthBps measured by the link provider, else spec.wan.bandwidthMbps).
import type { V1VirtualMachine } from '@kubevirt-ui-ext/kubevirt-api/kubevirt';
import type { KubeClient } from '../kube/client.ts';
import type { KubeObject } from '../kube/rest.ts';
import { Res } from '../api/resources.ts';
import type { Site } from '../api/site.ts';
import { quantityBytes, type Sizing } from './phases/deadlines.ts';
import { volumeRefs } from './target-objects.ts';

type PVC = KubeObject & { spec?: { resources?: { requests?: { storage?: string } } }; status?: { capacity?: { storage?: string } } };

export async function readSizing(local: KubeClient, ns: string, vm: V1VirtualMachine | undefined, site: Site | undefined, signal: AbortSignal): Promise<Sizing> {
  const out: Sizing = {};
  const dom = vm?.spec.template.spec?.domain;
  const mem = quantityBytes(dom?.memory?.guest ?? (dom?.resources?.requests as Record<string, string> | undefined)?.memory);
  if (mem) out.memoryBytes = mem;
  if (vm) {
    let disks = 0;
    for (const d of volumeRefs(vm).disks) {
      const pvc = await local.tryGet<PVC>(Res.pvc, ns, d.name, signal);
      disks += quantityBytes(pvc?.status?.capacity?.storage ?? pvc?.spec?.resources?.requests?.storage) ?? 0;
    }
    out.diskBytes = disks;
  }
  if (site?.status?.bandwidthBps) {
    out.bandwidthBps = site.status.bandwidthBps;
    out.bandwidthSource = 'measured';
  } else if (site?.spec.wan?.bandwidthMbps) {
    out.bandwidthBps = site.spec.wan.bandwidthMbps * 1e6 / 8;
    out.bandwidthSource = 'provisioned';
  }
  return out;
}
