// Deadlines that scale with the data (issue 13). A fixed 30 min for the memory migration would
// roll back a VM whose 50 GiB disk KubeVirt mirrors over 100 Mbit/s (about 70 min), and KubeVirt
// itself allows 150 s per GiB of memory plus migrated volumes (completionTimeoutPerGiB). When the
// spec sets no deadline for SyncingStorage or MigratingMemory, the planner derives one when the
// migration starts, from the VM's memory and disk sizes and the Site's bandwidth (measured by the
// link provider, else the provisioned figure), keeps it in status.deadlines with how it was
// reached, and never goes below the former fixed defaults. Pure: observe.ts reads the sizes.
import type { ResolvedSpec } from '../../api/wanmigration.ts';

/** KubeVirt's MigrationConfiguration.completionTimeoutPerGiB default. */
export const KUBEVIRT_SECONDS_PER_GIB = 150;
/** The floors: the fixed defaults these deadlines had before they were derived. */
export const DEADLINE_FLOORS = { storageSeconds: 3600, memorySeconds: 1800 } as const;

const GiB = 1024 ** 3;

export interface Sizing {
  /** Guest memory of the VM (spec.template.spec.domain.memory.guest, else resources.requests.memory). */
  memoryBytes?: number;
  /** Sum of the capacities of the VM's disk claims. */
  diskBytes?: number;
  /** WAN bandwidth to the target Site, bytes/s. */
  bandwidthBps?: number;
  bandwidthSource?: 'measured' | 'provisioned';
}

export interface DerivedDeadlines {
  storageSeconds: number;
  memorySeconds: number;
  /** How they were reached, for status.deadlines.basis. */
  basis: string;
}

const mib = (b: number) => `${Math.round(b / 2 ** 20)} MiB`;

/**
 * SyncingStorage: the first pass moves the disks, later passes the rewritten part; three times the
 * disks' WAN time plus 5 min covers a few passes. MigratingMemory: KubeVirt's own allowance for
 * memory plus every migrated volume (its mirror reads every block, pre-copied or not), or twice the
 * WAN time of what crosses (memory, plus the disks unless the pre-copy and the relay keep them off
 * the WAN) plus 2 min, whichever is longer.
 */
export function deriveDeadlines(spec: ResolvedSpec, s: Sizing): DerivedDeadlines {
  const mem = s.memoryBytes ?? 0;
  const disks = s.diskBytes ?? 0;
  const bw = s.bandwidthBps && s.bandwidthBps > 0 ? s.bandwidthBps : undefined;
  const preCopied = spec.storage.mode === 'CloudNetPreCopy' && spec.relay.enabled;
  const wanBytes = mem + (preCopied ? 0 : disks);
  const kubevirt = Math.ceil(KUBEVIRT_SECONDS_PER_GIB * (mem + disks) / GiB);
  const memWan = bw ? Math.ceil(2 * wanBytes / bw) + 120 : 0;
  const storWan = bw ? Math.ceil(3 * disks / bw) + 300 : 0;
  const storKv = Math.ceil(KUBEVIRT_SECONDS_PER_GIB * disks / GiB);
  const storageSeconds = spec.storage.mode === 'CloudNetPreCopy' ? Math.max(DEADLINE_FLOORS.storageSeconds, storKv, storWan) : DEADLINE_FLOORS.storageSeconds;
  const memorySeconds = Math.max(DEADLINE_FLOORS.memorySeconds, kubevirt, memWan);
  const bwText = bw ? `${(bw * 8 / 1e6).toFixed(1)} Mbit/s ${s.bandwidthSource ?? 'measured'}` : 'no bandwidth known for the Site';
  const basis = `memory ${mib(mem)}, disks ${mib(disks)}, ${bwText}; memory step: KubeVirt's ${KUBEVIRT_SECONDS_PER_GIB} s/GiB → ${kubevirt} s`
    + `${bw ? `, 2× WAN time of ${mib(wanBytes)}${preCopied ? ' (disks pre-copied, relayed as references)' : ''} + 120 s → ${memWan} s` : ''}`
    + `; pre-copy: ${spec.storage.mode === 'CloudNetPreCopy' ? `${KUBEVIRT_SECONDS_PER_GIB} s/GiB → ${storKv} s${bw ? `, 3× WAN time of the disks + 300 s → ${storWan} s` : ''}` : 'delegated to KubeVirt'}`
    + `; at least ${DEADLINE_FLOORS.memorySeconds} s and ${DEADLINE_FLOORS.storageSeconds} s`;
  return { storageSeconds, memorySeconds, basis };
}
