// A CDI stand-in, for the DataVolumes a migration's target side uses (containerized-data-importer,
// pkg/controller/datavolume): a DataVolume gets a PersistentVolumeClaim of its name and storage
// spec (owned by it), unless it is `cdi.kubevirt.io/storage.prePopulated` (it then adopts the
// existing claim and imports nothing); a blank source gets an all-zero `disk.img` of the requested
// size in a filesystem claim once it is bound (the node stand-in binds it); the DataVolume then
// reads `Succeeded`. Only blank sources are modelled; filesystem overhead is not.
import { closeSync, existsSync, ftruncateSync, openSync } from 'node:fs';
import { join } from 'node:path';
import type { KubeClient } from '../../src/kube/client.ts';
import { isAlreadyExists, type KubeObject } from '../../src/kube/rest.ts';
import { Res } from '../../src/api/resources.ts';
import { quantityBytes, type VolumeStore } from './node-volumes.ts';

interface DV extends KubeObject {
  spec?: { source?: { blank?: unknown }; storage?: { resources?: { requests?: { storage?: string } }; accessModes?: string[]; volumeMode?: string; storageClassName?: string } };
  status?: { phase?: string };
}

export class CdiStandIn {
  private readonly client: KubeClient;
  private readonly volumes: VolumeStore;
  private readonly abort = new AbortController();
  private loop: Promise<void> | undefined;
  errors = 0;

  constructor(client: KubeClient, volumes: VolumeStore) {
    this.client = client;
    this.volumes = volumes;
  }

  start(): void {
    this.loop = (async () => {
      while (!this.abort.signal.aborted) {
        try { await this.tick(); } catch { if (!this.abort.signal.aborted) this.errors++; }
        await new Promise((r) => setTimeout(r, 200));
      }
    })();
  }

  async stop(): Promise<void> {
    this.abort.abort();
    await this.loop;
  }

  private async tick(): Promise<void> {
    const signal = this.abort.signal;
    for (const dv of (await this.client.list<DV>(Res.dataVolume, undefined, {}, signal)).items) {
      if (dv.metadata?.deletionTimestamp || dv.status?.phase === 'Succeeded') continue;
      const ns = dv.metadata?.namespace ?? '';
      const name = dv.metadata?.name ?? '';
      const prePopulated = dv.metadata?.annotations?.['cdi.kubevirt.io/storage.prePopulated'];
      if (!prePopulated) {
        const st = dv.spec?.storage ?? {};
        try {
          await this.client.create(Res.pvc, {
            metadata: { name, namespace: ns, ownerReferences: [{ apiVersion: 'cdi.kubevirt.io/v1beta1', kind: 'DataVolume', name, uid: dv.metadata?.uid ?? '', controller: true }] },
            spec: { accessModes: st.accessModes ?? ['ReadWriteOnce'], volumeMode: st.volumeMode ?? 'Filesystem', resources: st.resources ?? { requests: { storage: '1Gi' } }, ...(st.storageClassName ? { storageClassName: st.storageClassName } : {}) },
          }, { signal });
        } catch (e) {
          if (!isAlreadyExists(e)) throw e;
        }
      }
      const claim = prePopulated ?? name;
      const b = this.volumes.get(ns, claim);
      if (!b) continue; // not bound yet
      if (!prePopulated && dv.spec?.source?.blank && b.mode === 'Filesystem') {
        const img = join(b.path, 'disk.img');
        if (!existsSync(img)) {
          const fd = openSync(img, 'w');
          ftruncateSync(fd, quantityBytes(dv.spec.storage?.resources?.requests?.storage ?? '1Gi'));
          closeSync(fd);
        }
      }
      await this.client.patchStatus(Res.dataVolume, ns, name, { phase: 'Succeeded', progress: '100.0%', claimName: claim }, signal);
    }
  }
}
