// The node stand-in's storage: a provisioner that binds every PersistentVolumeClaim of its
// cluster to local storage, like a local-path provisioner.
//  - volumeMode Filesystem: a directory (what the kubelet would mount);
//  - volumeMode Block: a file of the claim's size attached to a loop device (a real block device,
//    so `blockdev --getsize64` and O_DIRECT behave as on a node).
// The claim then reads Bound with its capacity. A deleted claim loses its storage once no Pod uses
// it (the kubernetes.io/pvc-protection finalizer is not modelled: deletion is immediate).
import { execFileSync } from 'node:child_process';
import { closeSync, ftruncateSync, mkdirSync, openSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { KubeClient } from '../../src/kube/client.ts';
import type { KubeObject } from '../../src/kube/rest.ts';
import { Res } from '../../src/api/resources.ts';

export interface PVC extends KubeObject {
  spec?: { volumeMode?: string; accessModes?: string[]; resources?: { requests?: { storage?: string } } };
  status?: { phase?: string; capacity?: { storage?: string } };
}

export interface Backing {
  mode: 'Filesystem' | 'Block';
  /** Filesystem: the directory. Block: the loop device. */
  path: string;
  /** Block: the file behind the loop device. */
  file?: string;
  bytes: number;
}

const UNITS: Record<string, number> = { '': 1, k: 1e3, M: 1e6, G: 1e9, T: 1e12, Ki: 1024, Mi: 1024 ** 2, Gi: 1024 ** 3, Ti: 1024 ** 4 };

/** A Kubernetes quantity of bytes ("1Gi", "512Mi", "1000000"). */
export function quantityBytes(q: string): number {
  const m = /^(\d+(?:\.\d+)?)(Ki|Mi|Gi|Ti|k|M|G|T)?$/.exec(q.trim());
  if (!m) throw new Error(`unsupported quantity ${q}`);
  return Math.ceil(Number(m[1]) * UNITS[m[2] ?? '']);
}

export class VolumeStore {
  private readonly dir: string;
  private readonly client: KubeClient;
  private readonly backings = new Map<string, Backing>();

  constructor(client: KubeClient, dir: string) {
    this.client = client;
    this.dir = dir;
  }

  /** The storage of claim ns/name, once bound. */
  get(namespace: string, claim: string): Backing | undefined {
    return this.backings.get(`${namespace}/${claim}`);
  }

  /** The disk image KubeVirt would use: disk.img in a filesystem volume, the device of a block volume. */
  diskImage(namespace: string, claim: string): string | undefined {
    const b = this.get(namespace, claim);
    if (!b) return undefined;
    return b.mode === 'Block' ? b.path : join(b.path, 'disk.img');
  }

  /** Binds new claims, forgets deleted ones. */
  async sync(signal?: AbortSignal): Promise<void> {
    const pvcs = (await this.client.list<PVC>(Res.pvc, undefined, {}, signal)).items;
    const seen = new Set<string>();
    for (const p of pvcs) {
      const k = `${p.metadata?.namespace}/${p.metadata?.name}`;
      seen.add(k);
      if (this.backings.has(k) || p.metadata?.deletionTimestamp) continue;
      const bytes = quantityBytes(p.spec?.resources?.requests?.storage ?? '1Gi');
      const b = this.provision(p, bytes);
      this.backings.set(k, b);
      await this.client.patchStatus(Res.pvc, p.metadata?.namespace, p.metadata?.name ?? '', {
        phase: 'Bound', accessModes: p.spec?.accessModes ?? ['ReadWriteOnce'], capacity: { storage: p.spec?.resources?.requests?.storage ?? '1Gi' },
      }, signal);
    }
    for (const [k, b] of this.backings) {
      if (seen.has(k)) continue;
      this.release(b);
      this.backings.delete(k);
    }
  }

  private provision(p: PVC, bytes: number): Backing {
    const base = join(this.dir, p.metadata?.namespace ?? '', p.metadata?.name ?? '');
    if (p.spec?.volumeMode !== 'Block') {
      mkdirSync(base, { recursive: true });
      return { mode: 'Filesystem', path: base, bytes };
    }
    mkdirSync(this.dir, { recursive: true });
    const file = `${base}.blk`;
    mkdirSync(join(this.dir, p.metadata?.namespace ?? ''), { recursive: true });
    const fd = openSync(file, 'w');
    ftruncateSync(fd, bytes);
    closeSync(fd);
    const dev = execFileSync('losetup', ['--find', '--show', file], { encoding: 'utf8' }).trim();
    return { mode: 'Block', path: dev, file, bytes };
  }

  private release(b: Backing): void {
    // Only the loop device this store attached: never a blanket detach.
    if (b.mode === 'Block') execFileSync('losetup', ['--detach', b.path], { stdio: 'ignore' });
    rmSync(b.file ?? b.path, { recursive: true, force: true });
  }

  /** Detaches every loop device this store attached. */
  close(): void {
    for (const b of this.backings.values()) {
      try { this.release(b); } catch { /* already gone */ }
    }
    this.backings.clear();
  }
}
