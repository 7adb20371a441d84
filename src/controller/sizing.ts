// What the derived deadlines (phases/deadlines.ts) are computed from, read once before the
// migration starts: the VM's guest memory, the capacities of its disk claims, and the target Site's
// bandwidth (status.bandwidthBps measured by the link provider, else spec.wan.bandwidthMbps).
import type { V1VirtualMachine } from '@kubevirt-ui-ext/kubevirt-api/kubevirt';
import type { KubeClient } from '../kube/client.ts';
import type { KubeObject } from '../kube/rest.ts';
import { Res } from '../api/resources.ts';
import type { Site } from '../api/site.ts';
import { quantityBytes } from '../api/quantity.ts';
import type { Sizing } from './phases/deadlines.ts';
import { volumeRefs } from './target-objects.ts';

export type Claim = KubeObject & {
  spec?: { resources?: { requests?: { storage?: string } }; storageClassName?: string; accessModes?: string[]; volumeMode?: string };
  status?: { capacity?: { storage?: string } };
};

/** How long a disk claim read for the deadlines serves the target's blank DataVolume too. */
const CLAIM_REUSE_MS = 10 * 60_000;

/** Remembers a result for a while (MigrationReads.remember). */
export type Remember = <T>(key: string, ttlMs: number, ok: (v: T) => boolean, fn: () => Promise<T>) => Promise<T>;

/**
 * A source disk claim. Both the derived deadlines (before the start) and the target's blank
 * DataVolume (while preparing it) need it: with `remember`, one read serves both.
 */
export function readClaim(local: KubeClient, ns: string, name: string, signal: AbortSignal, remember?: Remember): Promise<Claim | undefined> {
  const read = () => local.tryGet<Claim>(Res.pvc, ns, name, signal);
  return remember ? remember(`claim:${local.clusterName}/${ns}/${name}`, CLAIM_REUSE_MS, (c) => c !== undefined, read) : read();
}

export async function readSizing(local: KubeClient, ns: string, vm: V1VirtualMachine | undefined, site: Site | undefined, signal: AbortSignal, remember?: Remember): Promise<Sizing> {
  const out: Sizing = {};
  const dom = vm?.spec.template.spec?.domain;
  const mem = quantityBytes(dom?.memory?.guest ?? (dom?.resources?.requests as Record<string, string> | undefined)?.memory);
  if (mem) out.memoryBytes = mem;
  if (vm) {
    let disks = 0;
    for (const d of volumeRefs(vm).disks) {
      const pvc = await readClaim(local, ns, d.name, signal, remember);
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
