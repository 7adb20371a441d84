// Carries out the planner's decisions: the provider steps (runSteps), whose answers feed plan(),
// and the actions plan() returns (execute). Every action is idempotent: creates tolerate
// AlreadyExists, deletes tolerate NotFound, so a crash between actions is repaired by the next
// reconcile; the providers' ensure/sync are idempotent by contract.
import type { V1VirtualMachine } from '@kubevirt-ui-ext/kubevirt-api/kubevirt';
import type { KubeClient, Ref } from '../kube/client.ts';
import { isAlreadyExists, type KubeObject } from '../kube/rest.ts';
import { liveReader } from '../kube/cached-reader.ts';
import { describeRequestError } from '../kube/request-errors.ts';
import type { WanMigration } from '../api/wanmigration.ts';
import type { StepReport } from '../api/ports.ts';
import type { Action, StepAction } from './phases/actions.ts';
import type { StepResults } from './phases/steps.ts';
import type { WanMigrationDeps } from './deps.ts';
import type { World } from './observe.ts';
import { readClaim, type Remember } from './sizing.ts';
import { Res } from '../api/resources.ts';
import { CA_BUNDLE_KEY, KUBEVIRT_CA, KUBEVIRT_EXTERNAL_CA } from './resources.ts';
import { appendCerts, bundleProblem, missingTrust, parseCABundle } from './ca-bundle.ts';
import { FINALIZER, MIGRATION_LABEL, migrationNames } from './names.ts';
import {
  blankDataVolume, copyObject, receiverVM, sourceVMIM, targetVMIM, volumeRefs, type SourceDisk, type VolumeRefs,
} from './target-objects.ts';

type DataObj = KubeObject & { data?: Record<string, string> };

/** An action's failure, with the object it was about and the API server's answer, for the status. */
export class ActionError extends Error {
  constructor(what: string, cause: unknown) {
    super(`${what}: ${describeRequestError(cause)}`, { cause });
    this.name = 'ActionError';
  }
}

async function createIfMissing(c: KubeClient, ref: Ref, obj: KubeObject, signal: AbortSignal): Promise<boolean> {
  try {
    await c.create(ref, obj, { signal });
    return true;
  } catch (e) {
    if (isAlreadyExists(e)) return false;
    if (signal.aborted) throw e;
    throw new ActionError(`cannot create ${ref.kind} ${obj.metadata?.namespace ? `${obj.metadata.namespace}/` : ''}${obj.metadata?.name} on ${c.clusterName}`, e);
  }
}

function need<T>(v: T | undefined, what: string): T {
  if (v === undefined) throw new Error(`${what} is not available for this action`);
  return v;
}

/**
 * Puts `from`'s kubevirt-ca certificates (valid now) that `to` does not trust yet into `to`'s
 * kubevirt-external-ca, creating it if needed. virt-operator then moves them into its kubevirt-ca
 * and empties the inbox (ca-bundle.ts), so "already trusted" looks at both ConfigMaps.
 */
async function trustOneWay(from: KubeClient, fromNs: string, to: KubeClient, toNs: string, now: Date, signal: AbortSignal): Promise<void> {
  const ca = await from.tryGet<DataObj>(Res.configMap, fromNs, KUBEVIRT_CA, signal);
  const bundle = ca?.data?.[CA_BUNDLE_KEY];
  const problem = bundleProblem(from.clusterName, fromNs, bundle, !!ca && bundle !== undefined, now);
  if (problem) throw new Error(`${problem.reason}: ${problem.message}`);
  const [toCA, ext] = await Promise.all([
    to.tryGet<DataObj>(Res.configMap, toNs, KUBEVIRT_CA, signal),
    to.tryGet<DataObj>(Res.configMap, toNs, KUBEVIRT_EXTERNAL_CA, signal),
  ]);
  const missing = missingTrust(bundle, toCA?.data?.[CA_BUNDLE_KEY], ext?.data?.[CA_BUNDLE_KEY], now);
  if (missing.length === 0) return;
  if (!ext) {
    await createIfMissing(to, Res.configMap, { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: KUBEVIRT_EXTERNAL_CA, namespace: toNs }, data: { [CA_BUNDLE_KEY]: appendCerts('', missing) } }, signal);
    return;
  }
  // Only the parseable part of the inbox is kept: a garbage entry there would make virt-operator
  // reject the whole inbox (ParseCertsPEM fails) and import nothing.
  const keep = parseCABundle(ext.data?.[CA_BUNDLE_KEY]).certs;
  // resourceVersion makes a concurrent writer's change fail with 409 instead of being lost.
  await to.patchMerge(Res.configMap, toNs, KUBEVIRT_EXTERNAL_CA, { metadata: { resourceVersion: ext.metadata?.resourceVersion }, data: { [CA_BUNDLE_KEY]: appendCerts(appendCerts('', keep), missing) } }, signal);
}

type StorageStanza = { resources?: { requests?: { storage?: string } }; storageClassName?: string; accessModes?: string[]; volumeMode?: string };

interface SizedObj extends KubeObject {
  spec?: { storage?: StorageStanza; pvc?: StorageStanza };
}

/** Size/class of a source disk, from its claim, else its DataVolume (storage or pvc stanza) or the VM's template for it. */
async function sourceDisk(local: KubeClient, ns: string, vm: V1VirtualMachine, d: { name: string; kind: 'DataVolume' | 'PVC' }, signal: AbortSignal, remember?: Remember): Promise<SourceDisk> {
  const tpl = vm.spec.dataVolumeTemplates?.find((t) => t.metadata?.name === d.name);
  // The claim says what the disk is (CDI filled in its defaults; the derived deadlines read it
  // already); the DataVolume is read only while it has no claim yet.
  const pvc = await readClaim(local, ns, d.name, signal, remember);
  const dv = !pvc && d.kind === 'DataVolume' ? await local.tryGet<SizedObj>(Res.dataVolume, ns, d.name, signal) : undefined;
  const fromClaim: StorageStanza | undefined = pvc ? {
    resources: { requests: { storage: pvc.status?.capacity?.storage ?? pvc.spec?.resources?.requests?.storage } },
    storageClassName: pvc.spec?.storageClassName, accessModes: pvc.spec?.accessModes, volumeMode: pvc.spec?.volumeMode,
  } : undefined;
  const st = fromClaim ?? dv?.spec?.storage ?? dv?.spec?.pvc ?? (tpl?.spec as SizedObj['spec'] | undefined)?.storage ?? (tpl?.spec as SizedObj['spec'] | undefined)?.pvc;
  const storage = st?.resources?.requests?.storage;
  if (!storage) throw new Error(`cannot tell the size of disk ${ns}/${d.name} (no DataVolume/PVC with a storage request)`);
  return {
    name: d.name,
    storage,
    ...(st.storageClassName ? { storageClassName: st.storageClassName } : {}),
    ...(st.accessModes ? { accessModes: st.accessModes } : {}),
    ...(st.volumeMode ? { volumeMode: st.volumeMode } : {}),
  };
}

async function ensureTargetObjects(w: World, signal: AbortSignal): Promise<void> {
  const target = need(w.target, 'target cluster');
  const ns = w.wm.metadata.namespace ?? '';
  // The receiver copies the whole spec: read the VM itself, not its cached outline.
  const vm = await w.local.tryGet<KubeObject & V1VirtualMachine>(Res.vm, ns, w.spec.vmName, signal);
  if (!vm || (w.sourceVM?.metadata?.uid && vm.metadata?.uid !== w.sourceVM.metadata.uid)) throw new Error(`source VM ${ns}/${w.spec.vmName} changed while preparing the target; will look again`);
  const refs = volumeRefs(vm);
  // Auxiliary objects first (side by side), the VM last: KubeVirt starts the receiver as soon as the VM exists.
  const copy = async (ref: typeof Res.secret | typeof Res.configMap, name: string) => {
    const o = await w.local.tryGet(ref, ns, name, signal);
    if (!o) throw new Error(`${ref.kind} ${ns}/${name} used by VM ${vm.metadata?.name} not found on the source`);
    await createIfMissing(target, ref, copyObject({ ...o, apiVersion: 'v1', kind: ref.kind }, w.wm, w.spec), signal);
  };
  const disk = async (d: VolumeRefs['disks'][number]) => {
    if (await (w.targetReader ?? liveReader(target)).get(Res.dataVolume, w.spec.targetNamespace, d.name, signal)) return;
    await createIfMissing(target, Res.dataVolume, blankDataVolume(await sourceDisk(w.local, ns, vm, d, signal, w.remember), w.wm, w.spec), signal);
  };
  await Promise.all([
    ...refs.secrets.map((n) => copy(Res.secret, n)),
    ...refs.configMaps.map((n) => copy(Res.configMap, n)),
    ...refs.disks.map(disk),
  ]);
  await createIfMissing(target, Res.vm, receiverVM(vm, w.wm, w.spec), signal);
}

/** Deletes a VMIM only if it carries our migration label (re-read, uid precondition). */
async function deleteOwnVMIM(c: KubeClient, ns: string, name: string, uid: string | undefined, signal: AbortSignal): Promise<void> {
  const m = await c.tryGet(Res.vmim, ns, name, signal);
  if (!m || !uid || m.metadata?.labels?.[MIGRATION_LABEL] !== uid) return;
  await c.delete(Res.vmim, ns, name, m.metadata?.uid ? { uid: m.metadata.uid } : {}, signal);
}

async function deleteTargetObjects(w: World, signal: AbortSignal): Promise<void> {
  const target = need(w.target, 'target cluster');
  const sel = { labelSelector: `${MIGRATION_LABEL}=${w.wm.metadata.uid}` };
  const ns = w.spec.targetNamespace;
  // The VM first (KubeVirt then removes its receiver VMI), then what it used.
  for (const ref of [Res.vm, Res.dataVolume, Res.secret, Res.configMap]) {
    const list = await target.list(ref, ns, sel, signal);
    for (const o of list.items) {
      if (o.metadata?.labels?.[MIGRATION_LABEL] !== w.wm.metadata.uid) continue; // belt and braces
      await target.delete(ref, ns, o.metadata?.name ?? '', { propagationPolicy: 'Background', ...(o.metadata?.uid ? { uid: o.metadata.uid } : {}) }, signal);
    }
  }
}

/** Runs the provider steps in order; their answers are what plan() then decides on. */
export async function runSteps(deps: WanMigrationDeps, w: World, steps: readonly StepAction[], signal: AbortSignal): Promise<StepResults> {
  const r: StepResults = {};
  for (const s of steps) {
    if (s.type === 'ListPeerMigrations') {
      // A read of our own API: its errors fail the reconcile, which is retried with backoff.
      r.peers = w.localReader
        ? await w.localReader.list<KubeObject & WanMigration>(Res.wanMigration, w.wm.metadata.namespace, undefined, signal)
        : (await w.local.list<KubeObject & WanMigration>(Res.wanMigration, w.wm.metadata.namespace, {}, signal)).items;
      continue;
    }
    try {
      await runProviderStep(deps, w, s, r, signal);
    } catch (e) {
      if (signal.aborted) throw e;
      // A provider that throws (an agent's API down, a gateway state the operator may not read)
      // becomes the step's answer, so that plan() still runs: the condition and Event say what
      // failed, the phase deadline keeps counting, and abort and deletion still work.
      const failed: StepReport = { state: 'Unavailable', reason: 'ProviderError', message: `${s.type}: ${describeRequestError(e)}` };
      if (s.type === 'EnsureLink') r.link = failed;
      else if (s.type === 'SyncStorage') r.storage = failed;
      else if (s.type === 'RegisterRelayFlows') r.relayRegistration = failed;
      // ReadRelayProgress: the progress is only shown; without it the status keeps the last figures.
    }
  }
  return r;
}

async function runProviderStep(deps: WanMigrationDeps, w: World, s: Exclude<StepAction, { type: 'ListPeerMigrations' }>, r: StepResults, signal: AbortSignal): Promise<void> {
  switch (s.type) {
    case 'EnsureLink':
      r.link = await need(deps.link, 'link provider').ensure({ site: need(w.site, 'target Site'), migration: w.wm }, signal);
      break;
    case 'SyncStorage':
      r.storage = await need(deps.storage, 'storage pre-copy provider').sync({ migration: w.wm, sourceVM: need(w.sourceVM, 'source VM') }, signal);
      break;
    case 'RegisterRelayFlows': {
      const ep = need(w.migrationEndpoint, 'migration endpoint');
      r.relayRegistration = await need(deps.relay, 'relay').register({
        migration: w.wm, site: need(w.site, 'target Site'), encrypted: w.migrationTLS,
        destinations: ep.ports.map((port) => ({ host: ep.address, port })),
      }, signal);
      break;
    }
    case 'ReadRelayProgress': {
      const p = await need(deps.relay, 'relay').progress({ migration: w.wm, site: need(w.site, 'target Site') }, signal);
      if (p) r.relayProgress = p;
      break;
    }
  }
}

export async function execute(deps: WanMigrationDeps, w: World, action: Action, signal: AbortSignal): Promise<void> {
  const { wm, spec, local } = w;
  const ns = wm.metadata.namespace ?? '';
  const names = migrationNames(wm);
  const wmObj = wm as unknown as KubeObject;
  switch (action.type) {
    case 'AddFinalizer': {
      const updated = await local.ensureFinalizer(Res.wanMigration, wmObj, FINALIZER, signal);
      wm.metadata.resourceVersion = updated.metadata?.resourceVersion;
      wm.metadata.finalizers = updated.metadata?.finalizers;
      return;
    }
    case 'RemoveFinalizer':
      await local.removeFinalizer(Res.wanMigration, wmObj, FINALIZER, signal);
      return;
    case 'EnsureCATrust': {
      const target = need(w.target, 'target cluster');
      const now = w.now ?? new Date();
      const exchange = async () => {
        await trustOneWay(local, w.localKubevirtNs, target, w.targetKubevirtNs, now, signal);
        await trustOneWay(target, w.targetKubevirtNs, local, w.localKubevirtNs, now, signal);
      };
      // Once per Site pair and state of its bundles, not once per migration waiting for it.
      if (deps.caches && w.caPair) await deps.caches.once(`ca-trust:${w.caPair.key}`, w.caPair.version, exchange);
      else await exchange();
      return;
    }
    case 'EnsureTargetObjects':
      await ensureTargetObjects(w, signal);
      return;
    case 'CreateTargetVMIM':
      await createIfMissing(need(w.target, 'target cluster'), Res.vmim, targetVMIM(wm, spec), signal);
      return;
    case 'CreateSourceVMIM':
      await createIfMissing(local, Res.vmim, sourceVMIM(wm, spec, action.connectURL), signal);
      return;
    case 'DeleteSourceVMIM':
      await deleteOwnVMIM(local, ns, names.sourceVMIM, wm.metadata.uid, signal);
      return;
    case 'DeleteTargetVMIM':
      await deleteOwnVMIM(need(w.target, 'target cluster'), spec.targetNamespace, names.targetVMIM, wm.metadata.uid, signal);
      return;
    case 'DeleteTargetObjects':
      await deleteTargetObjects(w, signal);
      return;
    case 'ReleaseRelayFlows':
      if (deps.relay && w.site) await deps.relay.release({ migration: wm, site: w.site }, signal);
      return;
    case 'ReleaseStorage':
      // Also when the source VM is gone (sourceAfterCutover Delete): the agents go by label.
      if (deps.storage) await deps.storage.release({ migration: wm, sourceVM: w.sourceVM ?? { metadata: { name: spec.vmName, namespace: ns } } }, { rolledBack: action.rolledBack }, signal);
      return;
    case 'FinishSource':
      // Already Halted (by us or by KubeVirt): what is left is KubeVirt stopping the VMI, which is watched.
      if (action.mode === 'Stop' && w.sourceVM?.spec.runStrategy === 'Halted') return;
      if (action.mode === 'Stop') await local.patchMerge(Res.vm, ns, spec.vmName, { spec: { runStrategy: 'Halted', running: null } }, signal);
      // The uid precondition: never delete a VM of the same name that someone created since.
      else if (action.mode === 'Delete') await local.delete(Res.vm, ns, spec.vmName, { propagationPolicy: 'Background', ...(w.sourceVM?.metadata?.uid ? { uid: w.sourceVM.metadata.uid } : {}) }, signal);
      return;
  }
}
