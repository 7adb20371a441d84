// The source side as the launcher needs it: which claims back the VM's disks (in volume order),
// what each source PVC is (capacity, mode, access modes, class), and on which node the VMI runs.
import type { KubeClient } from '../../kube/client.ts';
import type { KubeObject } from '../../kube/rest.ts';
import type { KubeObjectShape } from '../../api/resources.ts';
import { Res } from '../../api/resources.ts';
import type { Disk } from './objects.ts';

interface VMShape {
  spec?: { template?: { spec?: { volumes?: Array<{ dataVolume?: { name?: string }; persistentVolumeClaim?: { claimName?: string } }> } } };
}

interface PVC extends KubeObject {
  spec?: { accessModes?: string[]; volumeMode?: string; storageClassName?: string; resources?: { requests?: { storage?: string } } };
  status?: { phase?: string; capacity?: { storage?: string } };
}

/** Claim names of the VM's disk volumes (a DataVolume's PVC has the DataVolume's name), in order. */
export function diskClaims(vm: KubeObjectShape): string[] {
  const vols = (vm as VMShape).spec?.template?.spec?.volumes ?? [];
  const out: string[] = [];
  for (const v of vols) {
    const claim = v.dataVolume?.name ?? v.persistentVolumeClaim?.claimName;
    if (claim && !out.includes(claim)) out.push(claim);
  }
  return out;
}

export class SourceDiskError extends Error {
  readonly reason: string;
  constructor(reason: string, message: string) {
    super(message);
    this.reason = reason;
  }
}

/** The source PVCs behind the VM's disks. Throws SourceDiskError for disks that cannot be pre-copied. */
export async function sourceDisks(local: KubeClient, namespace: string, vm: KubeObjectShape, signal: AbortSignal): Promise<Disk[]> {
  const out: Disk[] = [];
  for (const [index, claim] of diskClaims(vm).entries()) {
    const pvc = await local.tryGet<PVC>(Res.pvc, namespace, claim, signal);
    if (!pvc) throw new SourceDiskError('SourceVolumeNotFound', `PersistentVolumeClaim ${namespace}/${claim} of the VM's disk does not exist`);
    const accessModes = pvc.spec?.accessModes ?? ['ReadWriteOnce'];
    // Only the VM's own pod may open a ReadWriteOncePod volume: nothing can read it alongside.
    if (accessModes.includes('ReadWriteOncePod')) {
      throw new SourceDiskError('SourceVolumeReadWriteOncePod', `PersistentVolumeClaim ${namespace}/${claim} is ReadWriteOncePod: no agent can read it while the VM runs; use storage.mode KubeVirt`);
    }
    const capacity = pvc.status?.capacity?.storage ?? pvc.spec?.resources?.requests?.storage;
    if (!capacity) throw new SourceDiskError('SourceVolumeNotBound', `PersistentVolumeClaim ${namespace}/${claim} has no size yet`);
    out.push({
      claim, index, capacity, accessModes,
      volumeMode: pvc.spec?.volumeMode === 'Block' ? 'Block' : 'Filesystem',
      ...(pvc.spec?.storageClassName ? { storageClassName: pvc.spec.storageClassName } : {}),
    });
  }
  return out;
}

/** The node the source VMI runs on, if it runs. */
export async function vmiNode(local: KubeClient, namespace: string, name: string, signal: AbortSignal): Promise<string | undefined> {
  const vmi = await local.tryGet<KubeObject & { status?: { phase?: string; nodeName?: string } }>(Res.vmi, namespace, name, signal);
  return vmi?.status?.phase === 'Running' ? vmi.status.nodeName : undefined;
}
