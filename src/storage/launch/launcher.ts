// The AgentLauncher the operator runs (provider.ts): creates, watches and removes what pre-copies a
// migration's disks (objects.ts), on both clusters, idempotently: every call re-reads the objects
// and creates only what is missing, so a restarted operator carries on where it was.
//
// Order per disk: the target volume (PVC, and a DataVolume adopting it) first, then the target
// agent Pod writing it; once that Pod has an IP, the source agent Pod on the VMI's node reading the
// VM's PVC read-only and sending to that IP. When the copy is done (finish), the source agents are
// released, which ends the target agents (the volume is then durable and final) before anything
// else may open the target volumes; the Pods and agent Secrets go, the volumes stay. release()
// removes everything; the target volumes only when the controller says the migration rolled back
// (after a migration they are the VM's disks, whatever phase the caller last saw).
import type { KubeClient, Ref } from '../../kube/client.ts';
import { KubeApiError, isAlreadyExists, type KubeObject } from '../../kube/rest.ts';
import type { StepReport, StorageRelease, StorageRequest } from '../../api/ports.ts';
import { API_VERSION, GROUP } from '../../api/meta.ts';
import { Res } from '../../api/resources.ts';
import type { Site } from '../../api/site.ts';
import { effectiveSpec, type WanMigration } from '../../api/wanmigration.ts';
import { logger } from '../../util/log.ts';
import { issueMigrationCredentials, type AgentCredentials } from '../agent-auth.ts';
import { callAgent } from '../http.ts';
import type { AgentLauncher, LaunchState, SourceAgentEndpoint } from '../provider.ts';
import { SourceDiskError, sourceDisks, vmiNode } from './disks.ts';
import {
  HTTP_PORT, LABELS, STATE_ANNOTATION, TARGET_ANNOTATION, agentSecret, credentialsFromSecret, names, operatorSecret, ownerOf,
  sourceAgentPod, targetAgentPod, targetDataVolume, targetPVC, type AgentImage, type Disk, type LaunchPhase,
} from './objects.ts';

const log = logger('storage-launcher');

export const POD: Ref = { group: '', version: 'v1', plural: 'pods', kind: 'Pod' };
/** A crash-looping agent is a failure, not progress. */
const MAX_RESTARTS = 5;

export interface TargetClusters {
  forSite(site: Site, signal?: AbortSignal): Promise<KubeClient>;
}

export interface KubeAgentLauncherOptions {
  /** The cluster the operator runs in (WanMigrations, source VMs, the operator's Secret). */
  local: KubeClient;
  clusters: TargetClusters;
  /** The operator's namespace: where it keeps the migrations' credentials. */
  namespace: string;
  image: AgentImage;
  /** The seed intake (host:port) of the receiver relay at a target Site (operator configuration,
   *  CLOUDNET_RELAY_SEED_ADDR), for migrations with relay.enabled. */
  seedRelay?: (site: string) => string | undefined;
}

interface PodObj extends KubeObject {
  status?: { phase?: string; podIP?: string; containerStatuses?: Array<{ restartCount?: number }> };
}

interface SecretObj extends KubeObject {
  data?: Record<string, string>;
}

interface PodView {
  phase: string;
  ip?: string;
  restarts: number;
}

function view(p: PodObj | undefined): PodView | undefined {
  if (!p || p.metadata?.deletionTimestamp) return undefined;
  return { phase: p.status?.phase ?? 'Pending', ...(p.status?.podIP ? { ip: p.status.podIP } : {}), restarts: Math.max(0, ...(p.status?.containerStatuses ?? []).map((c) => c.restartCount ?? 0)) };
}

const serving = (v: PodView | undefined): v is PodView & { ip: string } => v?.phase === 'Running' && !!v.ip;

/** A Pod that ended or keeps crashing before the copy finished: the step's failure. */
function podProblem(v: PodView | undefined, role: string, disk: string, pod: string): StepReport | undefined {
  if (!v) return undefined;
  if (v.phase === 'Failed' || v.phase === 'Succeeded') {
    return { state: 'Failed', reason: role === 'target' ? 'TargetAgentFailed' : 'SourceAgentFailed', message: `disk ${disk}: the ${role} agent Pod ${pod} ended (${v.phase}) before the copy was done` };
  }
  if (v.restarts > MAX_RESTARTS) {
    return { state: 'Failed', reason: role === 'target' ? 'TargetAgentCrashLooping' : 'SourceAgentCrashLooping', message: `disk ${disk}: the ${role} agent Pod ${pod} restarted ${v.restarts} times` };
  }
  return undefined;
}

const selector = (wm: WanMigration, extra = '') => ({ labelSelector: `${LABELS.migrationUID}=${wm.metadata.uid}${extra}` });

export class KubeAgentLauncher implements AgentLauncher {
  readonly #o: KubeAgentLauncherOptions;
  constructor(o: KubeAgentLauncherOptions) {
    this.#o = o;
  }

  async #create(c: KubeClient, ref: Ref, obj: KubeObject, signal: AbortSignal): Promise<void> {
    try {
      await c.create(ref, obj, { signal });
    } catch (e) {
      if (!isAlreadyExists(e)) throw e;
    }
  }

  async #target(wm: WanMigration, signal: AbortSignal): Promise<KubeClient | undefined> {
    const site = await this.#o.local.tryGet<KubeObject>(Res.site, undefined, wm.spec.targetSite, signal) as unknown as Site | undefined;
    return site ? this.#o.clusters.forSite(site, signal) : undefined;
  }

  /** The migration's credentials, issued once and kept in the operator's namespace. */
  async #credentials(wm: WanMigration, signal: AbortSignal): Promise<{ secret: SecretObj; all: Record<'source' | 'target' | 'operator', AgentCredentials> }> {
    const ns = this.#o.namespace;
    let secret = await this.#o.local.tryGet<SecretObj>(Res.secret, ns, names.operatorSecret(wm), signal);
    if (!secret) {
      await this.#create(this.#o.local, Res.secret, operatorSecret(wm, ns, issueMigrationCredentials(wm.metadata.uid ?? '')), signal);
      secret = await this.#o.local.get<SecretObj>(Res.secret, ns, names.operatorSecret(wm), signal);
    }
    const source = credentialsFromSecret(secret.data, 'source');
    const target = credentialsFromSecret(secret.data, 'target');
    const operator = credentialsFromSecret(secret.data, 'operator');
    if (!source || !target || !operator) throw new Error(`Secret ${ns}/${names.operatorSecret(wm)} lacks agent credentials`);
    return { secret, all: { source, target, operator } };
  }

  async #setPhase(secret: SecretObj, phase: LaunchPhase, signal: AbortSignal): Promise<void> {
    if (secret.metadata?.annotations?.[STATE_ANNOTATION] === phase) return;
    await this.#o.local.patchMerge(Res.secret, secret.metadata?.namespace, secret.metadata?.name ?? '', { metadata: { resourceVersion: secret.metadata?.resourceVersion, annotations: { [STATE_ANNOTATION]: phase } } }, signal);
  }

  async ensure(req: StorageRequest, signal: AbortSignal): Promise<LaunchState> {
    const wm = req.migration;
    const ns = wm.metadata.namespace ?? '';
    const existing = await this.#o.local.tryGet<SecretObj>(Res.secret, this.#o.namespace, names.operatorSecret(wm), signal);
    const phase = existing?.metadata?.annotations?.[STATE_ANNOTATION] as LaunchPhase | undefined;
    if (phase === 'Finished') return { agents: [], report: { state: 'Ready', reason: 'Converged', message: 'disks pre-copied; the agents are done and gone' } };
    if (phase === 'Finishing') return { agents: [], finishing: true };
    const target = await this.#target(wm, signal);
    if (!target) return { agents: [], report: { state: 'Progressing', reason: 'WaitingForSite', message: `Site ${wm.spec.targetSite} not found` } };
    let disks: Disk[];
    try {
      disks = await sourceDisks(this.#o.local, ns, req.sourceVM, signal);
    } catch (e) {
      if (e instanceof SourceDiskError) return { agents: [], report: { state: 'Failed', reason: e.reason, message: e.message } };
      throw e;
    }
    if (disks.length === 0) return { agents: [], report: { state: 'Ready', reason: 'NoDisks', message: 'the VM has no PVC-backed disk to pre-copy' } };
    const node = await vmiNode(this.#o.local, ns, wm.spec.vmName, signal);
    if (!node) return { agents: [], report: { state: 'Progressing', reason: 'WaitingForSourceVMI', message: `VMI ${ns}/${wm.spec.vmName} is not running on a node` } };
    try {
      return await this.#launch(wm, target, disks, node, signal);
    } catch (e) {
      // The API server refused an object (a bad storage class name, a quota, a policy): the
      // migration cannot go on as specified. Its message is the API server's, not an agent's.
      if (e instanceof KubeApiError && e.code >= 400 && e.code < 500 && e.code !== 409) {
        return { agents: [], report: { state: 'Failed', reason: 'AgentLaunchRejected', message: e.message.slice(0, 512) } };
      }
      throw e;
    }
  }

  async #launch(wm: WanMigration, target: KubeClient, disks: Disk[], node: string, signal: AbortSignal): Promise<LaunchState> {
    const ns = wm.metadata.namespace ?? '';
    const tns = wm.spec.targetNamespace;
    const { all } = await this.#credentials(wm, signal);
    const wmOwner = ownerOf({ apiVersion: API_VERSION, kind: 'WanMigration', metadata: wm.metadata });
    await this.#create(this.#o.local, Res.secret, agentSecret(wm, 'source', ns, all.source, wmOwner), signal);
    await this.#create(target, Res.secret, agentSecret(wm, 'target', tns, all.target), signal);
    const agents: SourceAgentEndpoint[] = [];
    const waiting: string[] = [];
    for (const d of disks) {
      // The target volume first: it is what everything else writes into.
      await this.#create(target, Res.pvc, targetPVC(wm, tns, d), signal);
      await this.#create(target, Res.dataVolume, targetDataVolume(wm, tns, d), signal);
      const dv = await target.get(Res.dataVolume, tns, d.claim, signal);
      const tName = names.agentPod(wm, 'target', d);
      let tPod = view(await target.tryGet<PodObj>(POD, tns, tName, signal));
      if (!tPod) {
        const seed = effectiveSpec(wm).relay.enabled ? this.#o.seedRelay?.(wm.spec.targetSite) : undefined;
        await this.#create(target, POD, targetAgentPod(wm, tns, d, this.#o.image, ownerOf({ apiVersion: 'cdi.kubevirt.io/v1beta1', kind: 'DataVolume', metadata: dv.metadata }), seed), signal);
        tPod = { phase: 'Pending', restarts: 0 };
      }
      const tProblem = podProblem(tPod, 'target', d.claim, `${tns}/${tName}`);
      if (tProblem) return { agents: [], report: tProblem };
      if (!serving(tPod)) { waiting.push(`target agent of disk ${d.claim}`); continue; }
      const sName = names.agentPod(wm, 'source', d);
      const sObj = await this.#o.local.tryGet<PodObj>(POD, ns, sName, signal);
      if (sObj && !sObj.metadata?.deletionTimestamp && sObj.metadata?.annotations?.[TARGET_ANNOTATION] !== tPod.ip) {
        // The target agent came back at another address: a new source agent resumes from its index.
        log.info('target agent moved; replacing the source agent', { pod: `${ns}/${sName}`, target: tPod.ip });
        await this.#o.local.delete(POD, ns, sName, { ...(sObj.metadata?.uid ? { uid: sObj.metadata.uid } : {}) }, signal);
        waiting.push(`source agent of disk ${d.claim} (target agent moved)`);
        continue;
      }
      let sPod = view(sObj);
      if (!sObj) {
        await this.#create(this.#o.local, POD, sourceAgentPod(wm, ns, d, this.#o.image, wmOwner, node, tPod.ip), signal);
        sPod = { phase: 'Pending', restarts: 0 };
      }
      const sProblem = podProblem(sPod, 'source', d.claim, `${ns}/${sName}`);
      if (sProblem) return { agents: [], report: sProblem };
      if (!serving(sPod)) { waiting.push(`source agent of disk ${d.claim}`); continue; }
      agents.push({ disk: d.claim, base: `https://${sPod.ip}:${HTTP_PORT}`, pod: `${ns}/${sName}` });
    }
    if (waiting.length) return { agents, report: { state: 'Progressing', reason: 'StartingAgents', message: `waiting for: ${waiting.join(', ')}` } };
    return { agents, credentials: all.operator };
  }

  async finish(req: StorageRequest, signal: AbortSignal): Promise<StepReport | undefined> {
    const wm = req.migration;
    const ns = wm.metadata.namespace ?? '';
    const { secret, all } = await this.#credentials(wm, signal);
    await this.#setPhase(secret, 'Finishing', signal);
    const target = await this.#target(wm, signal);
    if (!target) return { state: 'Progressing', reason: 'WaitingForSite', message: `Site ${wm.spec.targetSite} not found` };
    const sources = (await this.#o.local.list<PodObj>(POD, ns, selector(wm, `,${LABELS.component}=storage-agent-source`), signal)).items;
    const targets = (await target.list<PodObj>(POD, wm.spec.targetNamespace, selector(wm, `,${LABELS.component}=storage-agent-target`), signal)).items;
    // Released, a source agent flushes, tells its target it is done, and both exit.
    for (const p of sources) {
      const v = view(p);
      if (serving(v)) await callAgent(all.operator, 'source', `https://${v.ip}:${HTTP_PORT}`, '/release', { method: 'POST', signal }).catch((e: unknown) => log.debug('release', { pod: p.metadata?.name, error: String(e) }));
    }
    const pods = [...sources.map((p) => ({ p, role: 'source' })), ...targets.map((p) => ({ p, role: 'target' }))];
    const failed = pods.find(({ p }) => view(p)?.phase === 'Failed');
    if (failed) {
      return { state: 'Failed', reason: 'AgentFailedAtFinish', message: `the ${failed.role} agent Pod ${failed.p.metadata?.namespace}/${failed.p.metadata?.name} failed while finishing` };
    }
    const running = pods.filter(({ p }) => view(p) && view(p)?.phase !== 'Succeeded');
    if (running.length) return { state: 'Progressing', reason: 'FinishingAgents', message: `waiting for ${running.length} agent Pod(s) to finish` };
    for (const p of sources) await this.#o.local.delete(POD, ns, p.metadata?.name ?? '', {}, signal);
    for (const p of targets) await target.delete(POD, wm.spec.targetNamespace, p.metadata?.name ?? '', {}, signal);
    await this.#o.local.delete(Res.secret, ns, names.agentSecret(wm, 'source'), {}, signal);
    await target.delete(Res.secret, wm.spec.targetNamespace, names.agentSecret(wm, 'target'), {}, signal);
    await this.#setPhase(await this.#o.local.get<SecretObj>(Res.secret, this.#o.namespace, names.operatorSecret(wm), signal), 'Finished', signal);
    return undefined;
  }

  async release(req: StorageRequest, how: StorageRelease, signal: AbortSignal): Promise<void> {
    const wm = req.migration;
    const ns = wm.metadata.namespace ?? '';
    const local = this.#o.local;
    for (const p of (await local.list<PodObj>(POD, ns, selector(wm), signal)).items) await local.delete(POD, ns, p.metadata?.name ?? '', {}, signal);
    await local.delete(Res.secret, ns, names.agentSecret(wm, 'source'), {}, signal);
    // The controller's escape hatch for a target that is gone for good (controller/names.ts).
    const skipTarget = wm.metadata.annotations?.[`${GROUP}/skip-target-cleanup`] === 'true';
    const target = await this.#target(wm, signal).catch((e: unknown) => {
      if (skipTarget) return undefined;
      throw e;
    });
    if (target) {
      const tns = wm.spec.targetNamespace;
      try {
        for (const p of (await target.list<PodObj>(POD, tns, selector(wm), signal)).items) await target.delete(POD, tns, p.metadata?.name ?? '', {}, signal);
        await target.delete(Res.secret, tns, names.agentSecret(wm, 'target'), {}, signal);
        // Only a rollback removes the volumes: after a migration they are the VM's disks.
        if (how.rolledBack) {
          for (const ref of [Res.dataVolume, Res.pvc]) {
            for (const o of (await target.list(ref, tns, selector(wm, `,${LABELS.disk}`), signal)).items) {
              await target.delete(ref, tns, o.metadata?.name ?? '', { ...(o.metadata?.uid ? { uid: o.metadata.uid } : {}) }, signal);
            }
          }
        }
      } catch (e) {
        if (!skipTarget) throw e;
      }
    }
    await local.delete(Res.secret, this.#o.namespace, names.operatorSecret(wm), {}, signal);
  }
}
