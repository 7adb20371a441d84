// Gathers the facts for one WanMigration from both clusters. Read-only: which providers to call
// (link, storage pre-copy, relay) and when to look for a competing migration is the planner's
// decision (phases/steps.ts), carried out by the executor (execute.ts runSteps).
// Reads go through MigrationReads: informer caches of stripped objects (cache/shapes.ts) in the
// normal case, the API server when the reconciler re-reads before a destructive step. The few
// objects no cache holds (Secrets/ConfigMaps a VM uses) are read only in the phases that need them.
import { createHash } from 'node:crypto';
import type {
  V1VirtualMachine, V1VirtualMachineInstance, V1VirtualMachineInstanceMigration, V1KubeVirtStatus,
} from '@kubevirt-ui-ext/kubevirt-api/kubevirt';
import type { KubeClient, Ref } from '../kube/client.ts';
import type { ObjectReader } from '../kube/cached-reader.ts';
import { ClusterClientError } from '../kube/clusters.ts';
import { KubeApiError, isNotFound, type KubeObject } from '../kube/rest.ts';
import { describeRequestError } from '../kube/request-errors.ts';
import { DEFAULT_KUBEVIRT_NAMESPACE, type Site } from '../api/site.ts';
import { Phases, resolveSpec, type Phase, type ResolvedSpec, type WanMigration } from '../api/wanmigration.ts';
import type { Check, Facts, TargetView, VmimView } from './phases/observed.ts';
import type { MigrationReads, WanMigrationDeps } from './deps.ts';
import { Res } from '../api/resources.ts';
import { CA_BUNDLE_KEY, KUBEVIRT_CA, KUBEVIRT_EXTERNAL_CA } from './resources.ts';
import { decentralizedGate, gateOffMessage } from './feature-gate.ts';
import { bundleProblem, missingTrust } from './ca-bundle.ts';
import { FINALIZER, MIGRATION_LABEL, SKIP_TARGET_CLEANUP, migrationNames } from './names.ts';
import { sameContent, volumeRefs } from './target-objects.ts';
import { tenancyCheck } from './phases/tenancy.ts';
import { readSizing, type Remember } from './sizing.ts';
import { sourceAccessChecks } from './source-access.ts';
import { describeVerbOn, targetNamespaceAccessChecks } from '../api/peer-permissions.ts';
import { deniedAccess, type AccessQuestion } from './site/permissions.ts';

type VM = V1VirtualMachine & KubeObject;
type VMI = V1VirtualMachineInstance & KubeObject;
type VMIM = V1VirtualMachineInstanceMigration & KubeObject;
/** The generated V1KubeVirtSpec names `configuration` `_configuration`; this is the wire shape. */
type KubeVirtCR = KubeObject & {
  spec?: { configuration?: {
    developerConfiguration?: { featureGates?: string[]; disabledFeatureGates?: string[] };
    migrations?: { disableTLS?: boolean };
  } };
  status?: V1KubeVirtStatus;
};
type DataObj = KubeObject & { data?: Record<string, string> };

/** Everything the executor needs besides the plan: clients and the objects already read. */
export interface World {
  wm: WanMigration;
  spec: ResolvedSpec;
  local: KubeClient;
  target?: KubeClient;
  site?: Site;
  /** As cached: stripped to what observe reads (cache/shapes.ts); actions that copy it read it live. */
  sourceVM?: VM;
  localKubevirtNs: string;
  targetKubevirtNs: string;
  now?: Date;
  /** The readers of both clusters this reconcile used (cache or API). */
  localReader?: ObjectReader;
  targetReader?: ObjectReader;
  /** The Site pair's CA bundles as read: `key` names the pair, `version` their resourceVersions. */
  caPair?: { key: string; version: string };
  /** Read from the receiver VMI (TargetView.migrationEndpoint), for the relay registration. */
  migrationEndpoint?: { address: string; ports: number[] };
  /** KubeVirt's node-to-node migration TLS is on (source KubeVirt CR). */
  migrationTLS: boolean;
  /** Results shared across reconciles (MigrationReads.remember), e.g. disk claims. */
  remember?: Remember;
}

const ok: Check = { ok: true };
const fail = (reason: string, message: string): Check => ({ ok: false, reason, message });

export function specHash(spec: ResolvedSpec): string {
  const frozen = { storage: spec.storage, relay: spec.relay };
  return createHash('sha256').update(JSON.stringify(frozen)).digest('hex').slice(0, 16);
}

const errText = describeRequestError;

const CLIENT_ERROR_REASON: Record<string, string> = {
  SecretNotFound: 'KubeconfigSecretNotFound',
  KubeconfigMissing: 'KubeconfigSecretKeyMissing',
  KubeconfigInvalid: 'KubeconfigInvalid',
  SecretUnreadable: 'KubeconfigSecretUnreadable',
  SecretNamespaceNotAllowed: 'KubeconfigSecretNamespaceNotAllowed',
};

export async function resolveTarget(deps: WanMigrationDeps, reads: MigrationReads, siteName: string, signal: AbortSignal): Promise<{ site?: Site; client?: KubeClient; check: Check }> {
  const site = await reads.local.get(Res.site, undefined, siteName, signal) as unknown as Site | undefined;
  if (!site) return { check: fail('SiteNotFound', `Site ${siteName} not found`) };
  try {
    return { site, client: await deps.clusters.forSite(site, signal), check: ok };
  } catch (e) {
    if (e instanceof ClusterClientError) return { site, check: fail(CLIENT_ERROR_REASON[e.reason] ?? e.reason, `Site ${siteName}: ${e.message}`) };
    throw e;
  }
}

/** Reads the target namespace with a short timeout: tells reachability and existence in one call. */
async function checkTarget(deps: WanMigrationDeps, client: KubeClient, ns: string, signal: AbortSignal): Promise<{ cluster: Check; namespace: Check }> {
  const s = AbortSignal.any([signal, AbortSignal.timeout(deps.remoteTimeoutMs ?? 5000)]);
  try {
    await client.get(Res.namespace, undefined, ns, s);
    return { cluster: ok, namespace: ok };
  } catch (e) {
    if (signal.aborted) throw e;
    if (isNotFound(e)) return { cluster: ok, namespace: fail('TargetNamespaceNotFound', `namespace ${ns} does not exist on ${client.clusterName}`) };
    if (e instanceof KubeApiError && (e.code === 401 || e.code === 403)) {
      return { cluster: fail('TargetClusterUnauthorized', `${client.clusterName} (${client.rest.server}) refused the credentials: ${errText(e)}`), namespace: ok };
    }
    if (e instanceof KubeApiError && e.code < 500) throw e;
    return { cluster: fail('TargetClusterUnreachable', `cannot reach ${client.clusterName} at ${client.rest.server}: ${errText(e)}`), namespace: ok };
  }
}

async function kubevirtCheck(reader: ObjectReader, ns: string, where: string, signal: AbortSignal): Promise<{ check: Check; syncAddress?: string; migrationTLS?: boolean }> {
  const items = await reader.list<KubeVirtCR>(Res.kubevirt, ns, undefined, signal).catch((e: unknown) => {
    if (isNotFound(e)) return [] as KubeVirtCR[]; // CRD not installed
    throw e;
  });
  const kv = items[0];
  if (!kv) return { check: fail('KubeVirtNotFound', `no KubeVirt CR in namespace ${ns} on the ${where} cluster`) };
  const dev = kv.spec?.configuration?.developerConfiguration;
  const version = kv.status?.observedKubeVirtVersion ?? kv.status?.targetKubeVirtVersion;
  const gate = decentralizedGate({ featureGates: dev?.featureGates, disabledFeatureGates: dev?.disabledFeatureGates, version });
  if (!gate.enabled) {
    return { check: fail('DecentralizedLiveMigrationDisabled', gateOffMessage(where, `${ns}/${kv.metadata?.name ?? '?'}`, gate.how, version)) };
  }
  // KubeVirt's default: virt-handlers speak TLS to each other unless migrations.disableTLS is true.
  return { check: ok, syncAddress: kv.status?.synchronizationAddresses?.[0], migrationTLS: kv.spec?.configuration?.migrations?.disableTLS !== true };
}

function vmimView(o: VMIM | undefined, uid: string | undefined): VmimView | undefined {
  if (!o) return undefined;
  const blocked = o.status?.conditions?.find((c) => c.type === 'decentralizedMigrationBlocked' && c.status === 'True');
  const v: VmimView = { name: o.metadata?.name ?? '', phase: o.status?.phase ?? '' };
  if (o.metadata?.labels?.[MIGRATION_LABEL] !== uid) v.foreign = true;
  if (o.metadata?.deletionTimestamp) v.deleting = true;
  if (o.metadata?.uid) v.uid = o.metadata.uid;
  if (blocked) v.blocked = blocked.message || blocked.reason || 'decentralizedMigrationBlocked';
  const fr = o.status?.migrationState?.failureReason;
  if (fr) v.failureReason = fr;
  const addr = o.status?.synchronizationAddresses?.[0];
  if (addr) v.synchronizationAddress = addr;
  return v;
}

async function getData(c: ObjectReader, ns: string, name: string, signal: AbortSignal): Promise<DataObj | undefined> {
  return c.get<DataObj>(Res.configMap, ns, name, signal);
}

export interface CATrust {
  trusted: boolean;
  problem?: { reason: string; message: string };
}

/**
 * Each cluster's kubevirt-ca certificates (valid now) are in the other's kubevirt-ca or waiting in
 * its kubevirt-external-ca (virt-operator moves them from the latter to the former; see ca-bundle.ts).
 */
export async function caTrusted(source: ObjectReader, sourceNs: string, target: ObjectReader, targetNs: string, signal: AbortSignal, now = new Date()): Promise<CATrust & { version: string }> {
  const [sCA, tExt, tCA, sExt] = await Promise.all([
    getData(source, sourceNs, KUBEVIRT_CA, signal), getData(target, targetNs, KUBEVIRT_EXTERNAL_CA, signal),
    getData(target, targetNs, KUBEVIRT_CA, signal), getData(source, sourceNs, KUBEVIRT_EXTERNAL_CA, signal),
  ]);
  const version = [sCA, tExt, tCA, sExt].map((o) => o?.metadata?.resourceVersion ?? '-').join(',');
  return { ...trustOf(sCA, tExt, tCA, sExt, sourceNs, targetNs, now), version };
}

function trustOf(sCA: DataObj | undefined, tExt: DataObj | undefined, tCA: DataObj | undefined, sExt: DataObj | undefined, sourceNs: string, targetNs: string, now: Date): CATrust {
  const sb = sCA?.data?.[CA_BUNDLE_KEY];
  const tb = tCA?.data?.[CA_BUNDLE_KEY];
  const problem = bundleProblem('source', sourceNs, sb, !!sCA && sb !== undefined, now) ?? bundleProblem('target', targetNs, tb, !!tCA && tb !== undefined, now);
  if (problem) return { trusted: false, problem };
  const ok = missingTrust(sb, tb, tExt?.data?.[CA_BUNDLE_KEY], now).length === 0 && missingTrust(tb, sb, sExt?.data?.[CA_BUNDLE_KEY], now).length === 0;
  return { trusted: ok };
}

/** How long a verdict on the same CA bundles (same resourceVersions) is reused: certificates expire. */
const CA_VERDICT_TTL_MS = 60_000;

/** caTrusted, parsed once per state of the four bundles rather than once per reconcile of every migration. */
async function caTrustedOnce(reads: MigrationReads, source: ObjectReader, sourceNs: string, target: ObjectReader, targetNs: string, signal: AbortSignal, now = new Date()): Promise<CATrust & { version: string }> {
  const [sCA, tExt, tCA, sExt] = await Promise.all([
    getData(source, sourceNs, KUBEVIRT_CA, signal), getData(target, targetNs, KUBEVIRT_EXTERNAL_CA, signal),
    getData(target, targetNs, KUBEVIRT_CA, signal), getData(source, sourceNs, KUBEVIRT_EXTERNAL_CA, signal),
  ]);
  const uids = [sCA, tExt, tCA, sExt].map((o) => `${o?.metadata?.uid ?? '-'}@${o?.metadata?.resourceVersion ?? '-'}`);
  const version = [sCA, tExt, tCA, sExt].map((o) => o?.metadata?.resourceVersion ?? '-').join(',');
  const verdict = await reads.remember(`ca-verdict:${sourceNs}|${targetNs}|${uids.join(',')}`, CA_VERDICT_TTL_MS, () => true,
    async () => trustOf(sCA, tExt, tCA, sExt, sourceNs, targetNs, now));
  return { ...verdict, version };
}

type Aux = KubeObject & { data?: unknown; binaryData?: unknown; type?: unknown };

/** Phases in which the Secrets/ConfigMaps the VM uses are still to be copied (or checked for collisions). */
const AUX_PHASES: readonly Phase[] = [Phases.Pending, Phases.ConnectingLink, Phases.SyncingStorage, Phases.PreparingTarget];

async function targetView(w: World, reads: MigrationReads, target: ObjectReader, kubevirtSyncAddress: string | undefined, signal: AbortSignal): Promise<TargetView> {
  const { spec, wm } = w;
  const ns = spec.targetNamespace;
  const sel = `${MIGRATION_LABEL}=${wm.metadata.uid}`;
  const local = reads.local;
  const phase = wm.status?.phase ?? Phases.Pending;
  // No cache holds Secrets/ConfigMaps (RBAC keeps them out of watches): our copies are counted
  // from the API only while rolling back, and on the re-read before any destructive step.
  const countAux = reads.live || phase === Phases.RollingBack;
  const [vm, vmi, vms, dvs, secrets, cms, trusted] = await Promise.all([
    target.get<VM>(Res.vm, ns, spec.vmName, signal),
    target.get<VMI>(Res.vmi, ns, spec.vmName, signal),
    target.list(Res.vm, ns, sel, signal),
    target.list(Res.dataVolume, ns, sel, signal),
    countAux ? target.list(Res.secret, ns, sel, signal) : [],
    countAux ? target.list(Res.configMap, ns, sel, signal) : [],
    caTrustedOnce(reads, local, w.localKubevirtNs, target, w.targetKubevirtNs, signal, w.now),
  ]);
  w.caPair = { key: `${w.localKubevirtNs}|${w.site?.metadata.name ?? ''}/${w.targetKubevirtNs}`, version: trusted.version };
  const vmOwned = vm?.metadata?.labels?.[MIGRATION_LABEL] === wm.metadata.uid;
  let complete = !!vm;
  const foreignDisks: string[] = [];
  const foreignAux: string[] = [];
  if (w.sourceVM) {
    const refs = volumeRefs(w.sourceVM);
    const disks = await Promise.all(refs.disks.map((d) => target.get(Res.dataVolume, ns, d.name, signal)));
    disks.forEach((d, i) => { if (d && d.metadata?.labels?.[MIGRATION_LABEL] !== wm.metadata.uid) foreignDisks.push(refs.disks[i].name); });
    // A claim with a disk's name but no DataVolume: CDI could bind or adopt it for our blank
    // DataVolume, and the migration would then write someone else's disk. Looked up while no
    // DataVolume of that name exists yet (ours, once created, owns the claim of its name).
    if (AUX_PHASES.includes(phase)) {
      const missing = refs.disks.filter((_, i) => !disks[i]);
      const claims = await Promise.all(missing.map((d) => target.get(Res.pvc, ns, d.name, signal)));
      claims.forEach((p, i) => { if (p && p.metadata?.labels?.[MIGRATION_LABEL] !== wm.metadata.uid) foreignDisks.push(`${missing[i].name} (a PersistentVolumeClaim)`); });
    }
    const wanted = [...refs.secrets.map((n) => ({ ref: Res.secret, n })), ...refs.configMaps.map((n) => ({ ref: Res.configMap, n }))];
    // Our receiver VM is created last, after the Secrets/ConfigMaps: once it exists they were in
    // place, and names are unique, so no foreign one can appear. Before that (and on every live
    // re-read) they are looked up by name.
    const checkAux = AUX_PHASES.includes(phase) && (reads.live || !vmOwned);
    const aux = checkAux ? await Promise.all(wanted.map(({ ref, n }) => target.get<Aux>(ref, ns, n, signal))) : [];
    // A Secret/ConfigMap we did not create is used only if its content is the source's, byte for byte.
    await Promise.all(aux.map(async (t, i) => {
      if (!t || t.metadata?.labels?.[MIGRATION_LABEL] === wm.metadata.uid) return;
      const { ref, n } = wanted[i];
      const s = await local.get<Aux>(ref, wm.metadata.namespace, n, signal);
      if (!s || !sameContent(s, t)) foreignAux.push(`${ref.kind} ${n}`);
    }));
    foreignAux.sort();
    complete = complete && disks.every(Boolean) && (!checkAux || aux.every(Boolean));
  }
  const v: TargetView = {
    vmExists: !!vm,
    vmOwned,
    objectsComplete: complete,
    ownedObjects: vms.length + dvs.length + secrets.length + cms.length,
    caTrusted: trusted.trusted,
    ...(trusted.problem ? { caProblem: trusted.problem } : {}),
    ...(foreignDisks.length ? { foreignDisks } : {}),
    ...(foreignAux.length ? { foreignAux } : {}),
  };
  if (vm) v.vmRunStrategy = vm.spec.runStrategy ?? (vm.spec.running ? 'Always' : 'Halted');
  if (vmi) v.vmiPhase = vmi.status?.phase ?? '';
  const ep = vmi ? migrationEndpoint(vmi, wm.status?.migrationID) : undefined;
  if (ep) v.migrationEndpoint = ep;
  if (kubevirtSyncAddress) v.kubevirtSyncAddress = kubevirtSyncAddress;
  return v;
}

/**
 * The receiver's migration proxy as virt-handler publishes it on the target VMI: the node address
 * and its node ports (keys of targetDirectMigrationNodePorts; the values name the libvirt port each
 * one stands for: 49152 memory, 49153 disks, 0 the libvirt connection). Only for this migration.
 */
export function migrationEndpoint(vmi: VMI, migrationID: string | undefined): { address: string; ports: number[] } | undefined {
  const ms = vmi.status?.migrationState;
  if (!ms?.targetNodeAddress || !migrationID || (ms.migrationUid !== undefined && ms.migrationUid !== migrationID)) return undefined;
  const ports = Object.keys(ms.targetDirectMigrationNodePorts ?? {}).map(Number).filter((p) => Number.isInteger(p) && p > 0 && p < 65536).sort((a, b) => a - b);
  return ports.length ? { address: ms.targetNodeAddress, ports } : undefined;
}

function sourceHandled(spec: ResolvedSpec, vm: VM | undefined, vmi: VMI | undefined): boolean {
  switch (spec.sourceAfterCutover) {
    case 'Keep': return true;
    case 'Delete': return !vm;
    case 'Stop': return !vm || (vm.spec.runStrategy === 'Halted' && (!vmi || vmi.status?.phase !== 'Running'));
  }
}

export interface Observation {
  facts: Facts;
  world: World;
}

/** An error of a read on this (the source) cluster, among reads of the target's. */
class LocalReadError extends Error {
  constructor(cause: unknown) {
    super('a read on the local cluster failed', { cause });
  }
}

function taggedReader(r: ObjectReader): ObjectReader {
  const tag = (e: unknown): never => { throw new LocalReadError(e); };
  return {
    get: <T extends KubeObject = KubeObject>(ref: Ref, namespace: string | undefined, name: string, signal?: AbortSignal) => r.get<T>(ref, namespace, name, signal).catch(tag),
    list: <T extends KubeObject = KubeObject>(ref: Ref, namespace: string | undefined, labelSelector?: string, signal?: AbortSignal) => r.list<T>(ref, namespace, labelSelector, signal).catch(tag),
  };
}

/** Bound on each SelfSubjectAccessReview of the pre-start permission checks. */
const REVIEW_TIMEOUT_MS = 5000;

/**
 * The `checks` that `client` may not pass (SelfSubjectAccessReviews; a result with none denied is
 * remembered under `key`). Reviews that cannot be made deny nothing: the migration then meets the
 * API's own answer.
 */
async function deniedRemembered(reads: MigrationReads, key: string, client: KubeClient, checks: readonly AccessQuestion[], timeoutMs: number, signal: AbortSignal): Promise<AccessQuestion[]> {
  try {
    return await reads.remember(key, NAMESPACE_CHECK_TTL_MS, (d: AccessQuestion[]) => d.length === 0, () => deniedAccess(client, checks, signal, timeoutMs));
  } catch (e) {
    if (signal.aborted) throw e;
    return [];
  }
}

/**
 * Whether the Site's credentials hold the target-namespace rights (api/peer-permissions.ts) in
 * `ns`: a namespace the peer's chart does not cover stops here, before anything is created there,
 * instead of at the first 403 half-way. The Site checks its allowedNamespaces too, but its Ready
 * does not gate migrations, and a Site that lists none leaves each migration's namespace to it.
 */
async function targetAccess(deps: WanMigrationDeps, target: KubeClient, site: Site, ns: string, signal: AbortSignal, reads: MigrationReads): Promise<Check> {
  const denied = await deniedRemembered(reads, `target-access:${target.clusterName}@${target.rest.server}/${ns}`, target, targetNamespaceAccessChecks(ns),
    deps.remoteTimeoutMs ?? REVIEW_TIMEOUT_MS, signal);
  if (!denied.length) return ok;
  return fail('TargetPermissionsMissing', `the credentials of Site ${site.metadata.name ?? ''} may not ${denied.map(describeVerbOn).join(', ')} in namespace ${ns} on ${target.clusterName}, `
    + 'which the migration needs (the target\'s chart grants them to its peer identity in the namespaces of rbac.vmDataNamespaces)');
}

/** Whether this operator may create the sending VMIM and finish the source VM in `ns` (source-access.ts). */
async function sourceAccess(deps: WanMigrationDeps, ns: string, spec: ResolvedSpec, signal: AbortSignal, reads: MigrationReads): Promise<Check> {
  const denied = await deniedRemembered(reads, `source-access:${ns}:${spec.sourceAfterCutover}`, deps.local, sourceAccessChecks(ns, spec.sourceAfterCutover),
    REVIEW_TIMEOUT_MS, signal);
  if (!denied.length) return ok;
  return fail('SourcePermissionsMissing', `this operator may not ${denied.map(describeVerbOn).join(', ')} in namespace ${ns}, which the migration needs `
    + '(the chart grants them in the namespaces of rbac.vmDataNamespaces)');
}

/** How long a target namespace that answered counts as reachable and existing without asking again. */
const NAMESPACE_CHECK_TTL_MS = 30_000;

export async function observe(deps: WanMigrationDeps, wm: WanMigration, spec: ResolvedSpec, now: Date, signal: AbortSignal, reads: MigrationReads): Promise<Observation> {
  const ns = wm.metadata.namespace ?? '';
  const names = migrationNames(wm);
  const localKubevirtNs = deps.localKubevirtNamespace ?? DEFAULT_KUBEVIRT_NAMESPACE;
  const { site, client: target, check: siteCheck } = await resolveTarget(deps, reads, spec.targetSite, signal);
  const world: World = { wm, spec, local: deps.local, site, localKubevirtNs, targetKubevirtNs: site?.spec.kubevirtNamespace ?? DEFAULT_KUBEVIRT_NAMESPACE, now, localReader: reads.local, migrationTLS: true, remember: reads.remember };
  const [vm, vmi, srcVmim] = await Promise.all([
    reads.local.get<VM>(Res.vm, ns, spec.vmName, signal),
    reads.local.get<VMI>(Res.vmi, ns, spec.vmName, signal),
    reads.local.get<VMIM>(Res.vmim, ns, names.sourceVMIM, signal),
  ]);
  world.sourceVM = vm;
  const tenancy = site ? tenancyCheck(site, ns, spec.targetNamespace) : ok;
  let targetCluster: Check = siteCheck.ok ? ok : fail('TargetClusterUnknown', 'no client for the target cluster');
  let targetNamespace: Check = ok;
  let kubevirt: Check = ok;
  let tView: TargetView | undefined;
  let tgtVmim: VMIM | undefined;
  let targetAccessCheck: Check | undefined;
  if (target) {
    const t = await reads.remember(`namespace:${target.clusterName}@${target.rest.server}/${spec.targetNamespace}`, NAMESPACE_CHECK_TTL_MS,
      (r) => r.cluster.ok && r.namespace.ok, () => checkTarget(deps, target, spec.targetNamespace, signal));
    targetCluster = t.cluster;
    targetNamespace = t.namespace;
    if (t.cluster.ok) {
      world.target = target;
      const started = !!wm.status?.migrationID;
      if (!started && site && t.namespace.ok && tenancy.ok) {
        targetAccessCheck = await targetAccess(deps, target, site, spec.targetNamespace, signal, reads);
      }
      // Before the start, nothing is read in a target namespace the Site refuses or the credentials
      // may not use (preflight stops there). No cache starts in such a namespace either: a started
      // migration's reads there go to the API.
      const readable = tenancy.ok && (targetAccessCheck?.ok ?? true);
      // This cluster's reads in here are tagged, so that an error of theirs is not blamed on the target.
      const mixed: MigrationReads = { ...reads, local: taggedReader(reads.local) };
      try {
        const tr = reads.target(site!, target, readable ? spec.targetNamespace : undefined);
        world.targetReader = tr;
        const [lkv, tkv] = await Promise.all([
          kubevirtCheck(mixed.local, localKubevirtNs, 'source', signal),
          kubevirtCheck(tr, world.targetKubevirtNs, 'target', signal),
        ]);
        kubevirt = !lkv.check.ok ? lkv.check : tkv.check;
        world.migrationTLS = lkv.migrationTLS ?? true;
        if (t.namespace.ok && (readable || started)) {
          [tView, tgtVmim] = await Promise.all([
            targetView(world, mixed, tr, tkv.syncAddress, signal),
            tr.get<VMIM>(Res.vmim, spec.targetNamespace, names.targetVMIM, signal),
          ]);
        }
      } catch (e) {
        // A read the target refuses (missing rights) or never answers stalls this migration only,
        // with the reason, instead of failing every reconcile without a status.
        if (signal.aborted) throw e;
        // A read of this cluster failed: that fails the reconcile (retried with backoff), as the
        // source reads above do; it says nothing about the target.
        if (e instanceof LocalReadError) throw e.cause;
        world.target = undefined;
        targetCluster = e instanceof KubeApiError && (e.code === 401 || e.code === 403)
          ? fail('TargetClusterUnauthorized', `a read on ${target.clusterName} was refused: ${errText(e)} (Site ${spec.targetSite} reports the rights it lacks; the target's chart grants them with rbac.peer and rbac.vmDataNamespaces)`)
          : fail('TargetClusterUnreachable', `a read on ${target.clusterName} (${target.rest.server}) failed: ${errText(e)}`);
      }
    }
  }
  const lm = vmi?.status?.conditions?.find((c) => c.type === 'LiveMigratable');
  const serviceAccounts = vm ? volumeRefs(vm).serviceAccounts : [];
  const facts: Facts = {
    now,
    deleting: !!wm.metadata.deletionTimestamp,
    hasFinalizer: wm.metadata.finalizers?.includes(FINALIZER) ?? false,
    providers: { link: !!deps.link, storage: !!deps.storage, relay: !!deps.relay },
    siteExists: !!site,
    ...(world.target ? { targetServer: world.target.rest.server } : {}),
    site: siteCheck,
    tenancy,
    ...(site?.metadata.deletionTimestamp ? { siteDeleting: true } : {}),
    targetCluster,
    kubevirt,
    targetNamespace,
    source: {
      vmExists: !!vm,
      ...(vm ? { runStrategy: vm.spec.runStrategy ?? (vm.spec.running ? 'Always' : 'Halted') } : {}),
      ...(vmi ? { vmiPhase: vmi.status?.phase ?? '' } : {}),
      ...(lm ? { liveMigratable: { status: lm.status, reason: lm.reason, message: lm.message } } : {}),
      handled: sourceHandled(spec, vm, vmi),
      ...(serviceAccounts.length ? { serviceAccounts } : {}),
    },
    ...(tView ? { target: tView } : {}),
    ...(srcVmim ? { sourceVMIM: vmimView(srcVmim, wm.metadata.uid) } : {}),
    ...(tgtVmim ? { targetVMIM: vmimView(tgtVmim, wm.metadata.uid) } : {}),
    skipTargetCleanup: wm.metadata.annotations?.[SKIP_TARGET_CLEANUP] === 'true',
    // The live spec's, not the effective one's (which keeps the started values): a change shows.
    specHash: specHash(resolveSpec(wm.spec)),
    // Deadlines are fixed at the start: sizes are read only until then.
    ...(!wm.status?.deadlines ? { sizing: await readSizing(deps.local, ns, vm, site, signal, reads.remember) } : {}),
    ...(!wm.status?.migrationID && vm ? { sourceAccess: await sourceAccess(deps, ns, spec, signal, reads) } : {}),
    ...(targetAccessCheck ? { targetAccess: targetAccessCheck } : {}),
    migrationTLS: world.migrationTLS,
  };
  if (tView?.migrationEndpoint) world.migrationEndpoint = tView.migrationEndpoint;
  return { facts, world };
}
