// A node stand-in: what the kubelet (and, for a one-node site, the scheduler and a local volume
// provisioner) would do for the Pods of one cluster, on a test bed that has API servers but no
// kubelets. It polls the cluster's Pods and
//  - binds unscheduled Pods to its node (the binding subresource, as the scheduler does);
//  - runs each container of a Pod on its node as a local process (node-process.ts) with exactly
//    the manifest's command, args and env: env values and downward-API fieldRefs (status.podIP,
//    metadata.name, metadata.namespace, spec.nodeName), $(VAR) expansion in command and args;
//    volumes: secret (files with their mode), emptyDir, persistentVolumeClaim (node-volumes.ts;
//    readOnly honoured), mounted at the mountPaths, block claims at their devicePaths;
//  - gives each Pod its own IP from the node's pool (added to the node's namespace when it has one);
//  - writes Pod status as the kubelet does: phase, podIP(s), hostIP, conditions, container states
//    with exit codes and restart counts; restarts per restartPolicy with a back-off;
//  - on deletion, sends SIGTERM, then SIGKILL after the grace period (capped), and removes the Pod.
// Not modelled: init containers, probes, resource limits, image pulls (node-images.ts maps known
// images to local programs), CNI beyond one address per Pod.
import type { ChildProcess } from 'node:child_process';
import { execFileSync } from 'node:child_process';
import { createWriteStream, mkdirSync, rmSync, writeFileSync, chmodSync } from 'node:fs';
import { join } from 'node:path';
import type { KubeClient } from '../../src/kube/client.ts';
import { isNotFound, resourcePath, type KubeObject } from '../../src/kube/rest.ts';
import { Res } from '../../src/api/resources.ts';
import { containerArgv, expand, localImage } from './node-images.ts';
import { startContainerProcess, type Mount } from './node-process.ts';
import { VolumeStore } from './node-volumes.ts';

const POD = { group: '', version: 'v1', plural: 'pods', kind: 'Pod' };

interface EnvVar { name: string; value?: string; valueFrom?: { fieldRef?: { fieldPath?: string }; secretKeyRef?: { name: string; key: string } } }
interface Container {
  name: string; image: string; command?: string[]; args?: string[]; env?: EnvVar[]; workingDir?: string;
  volumeMounts?: Array<{ name: string; mountPath: string; readOnly?: boolean }>;
  volumeDevices?: Array<{ name: string; devicePath: string }>;
}
interface Volume {
  name: string;
  secret?: { secretName: string; defaultMode?: number };
  emptyDir?: Record<string, unknown>;
  persistentVolumeClaim?: { claimName: string; readOnly?: boolean };
}
export interface PodObj extends KubeObject {
  spec: { nodeName?: string; restartPolicy?: string; containers: Container[]; volumes?: Volume[]; terminationGracePeriodSeconds?: number };
  status?: { phase?: string; podIP?: string };
}

export interface NodeStandInOptions {
  client: KubeClient;
  /** The node's name (the KubeVirt stand-in runs VMIs on `<cluster>-node`). */
  nodeName: string;
  /** Scratch space: Pod directories, volumes. */
  workDir: string;
  /** Pod addresses, handed out in order (e.g. 127.0.1.10, 127.0.1.11, …; or the node LAN's spare range). */
  podIPs: string[];
  hostIP: string;
  /** The node's network namespace (processes run there; Pod IPs are added to `podInterface` there). */
  netns?: string;
  podInterface?: string;
  podPrefixLength?: number;
  tickMs?: number;
  /** Container output goes to <workDir>/pods/<ns>_<pod>/<container>.log; echo it too. */
  echo?: boolean;
}

interface Running {
  uid: string;
  ip: string;
  dir: string;
  procs: Map<string, ContainerRun>;
  phase: string;
  startTime: string;
  lastStatus?: string;
  deleting?: boolean;
}

interface ContainerRun {
  mounts: Mount[];
  child?: ChildProcess;
  restarts: number;
  state: Record<string, unknown>;
  startedAt?: string;
  /** Set while waiting out the restart back-off. */
  nextStart?: number;
}

const now = () => new Date().toISOString();

export class NodeStandIn {
  readonly volumes: VolumeStore;
  private readonly o: NodeStandInOptions;
  private readonly pods = new Map<string, Running>();
  private readonly freeIPs: string[];
  private readonly abort = new AbortController();
  private loop: Promise<void> | undefined;
  errors = 0;
  lastError: unknown;

  constructor(o: NodeStandInOptions) {
    this.o = o;
    this.freeIPs = [...o.podIPs];
    this.volumes = new VolumeStore(o.client, join(o.workDir, 'volumes'));
  }

  start(): void {
    this.loop = this.run();
  }

  async stop(): Promise<void> {
    this.abort.abort();
    await this.loop;
    await Promise.all([...this.pods.keys()].map((k) => this.kill(k, 0)));
    this.volumes.close();
  }

  /** The container's log file (for diagnostics in tests). */
  logFile(namespace: string, pod: string, container = 'agent'): string {
    return join(this.o.workDir, 'pods', `${namespace}_${pod}`, `${container}.log`);
  }

  private async run(): Promise<void> {
    const signal = this.abort.signal;
    while (!signal.aborted) {
      try {
        await this.volumes.sync(signal);
        await this.tick(signal);
      } catch (e) {
        if (signal.aborted) break;
        this.errors++;
        this.lastError = e;
        if (process.env.STANDIN_DEBUG) console.error(`[node ${this.o.nodeName}]`, e);
      }
      await new Promise((r) => setTimeout(r, this.o.tickMs ?? 100));
    }
  }

  private async tick(signal: AbortSignal): Promise<void> {
    const c = this.o.client;
    const pods = (await c.list<PodObj>(POD, undefined, {}, signal)).items;
    const seen = new Set<string>();
    for (const p of pods) {
      const k = `${p.metadata?.namespace}/${p.metadata?.name}`;
      if (!p.spec.nodeName) { await this.bind(p, signal); continue; }
      if (p.spec.nodeName !== this.o.nodeName) continue;
      seen.add(k);
      const r = this.pods.get(k);
      if (r && r.uid !== p.metadata?.uid) { await this.kill(k, 0); continue; } // a namesake replaced it
      if (p.metadata?.deletionTimestamp) { await this.terminate(k, p); continue; }
      if (!r) { if (p.status?.phase !== 'Succeeded' && p.status?.phase !== 'Failed') await this.admit(p); continue; }
      await this.supervise(k, p);
    }
    for (const k of [...this.pods.keys()]) if (!seen.has(k)) await this.kill(k, 0); // force-deleted
  }

  /** The scheduler's part for a one-node site: bind the Pod here. */
  private async bind(p: PodObj, signal: AbortSignal): Promise<void> {
    const ns = p.metadata?.namespace ?? '';
    await this.o.client.rest.request('POST', resourcePath(POD, ns, p.metadata?.name, 'binding'), {
      body: { apiVersion: 'v1', kind: 'Binding', metadata: { name: p.metadata?.name, namespace: ns }, target: { apiVersion: 'v1', kind: 'Node', name: this.o.nodeName } }, signal,
    });
  }

  /** Volumes ready? Then set the Pod up and start its containers. */
  private async admit(p: PodObj): Promise<void> {
    const ns = p.metadata?.namespace ?? '';
    const name = p.metadata?.name ?? '';
    const dir = join(this.o.workDir, 'pods', `${ns}_${name}`);
    const mounts = new Map<string, { source: string; kind: 'dir' | 'file'; readOnly: boolean }>();
    for (const v of p.spec.volumes ?? []) {
      if (v.secret) {
        const s = await this.o.client.tryGet<KubeObject & { data?: Record<string, string> }>(Res.secret, ns, v.secret.secretName);
        if (!s) return this.waiting(p, 'ContainerCreating', `secret "${v.secret.secretName}" not found`);
        const d = join(dir, 'volumes', v.name);
        mkdirSync(d, { recursive: true });
        for (const [key, val] of Object.entries(s.data ?? {})) {
          writeFileSync(join(d, key), Buffer.from(val, 'base64'));
          chmodSync(join(d, key), v.secret.defaultMode ?? 0o644);
        }
        mounts.set(v.name, { source: d, kind: 'dir', readOnly: true });
      } else if (v.emptyDir) {
        const d = join(dir, 'volumes', v.name);
        mkdirSync(d, { recursive: true });
        mounts.set(v.name, { source: d, kind: 'dir', readOnly: false });
      } else if (v.persistentVolumeClaim) {
        const b = this.volumes.get(ns, v.persistentVolumeClaim.claimName);
        if (!b) return this.waiting(p, 'ContainerCreating', `persistentvolumeclaim "${v.persistentVolumeClaim.claimName}" not bound yet`);
        mounts.set(v.name, { source: b.path, kind: b.mode === 'Block' ? 'file' : 'dir', readOnly: v.persistentVolumeClaim.readOnly ?? false });
      } else {
        return this.waiting(p, 'ContainerCreating', `volume ${v.name}: kind not supported by the node stand-in`);
      }
    }
    for (const ct of p.spec.containers) if (!localImage(ct.image)) return this.waiting(p, 'ErrImagePull', `image ${ct.image} is not known to the node stand-in`);
    const ip = this.freeIPs.shift();
    if (!ip) return this.waiting(p, 'ContainerCreating', 'no free Pod IP on the node');
    if (this.o.netns && this.o.podInterface) {
      execFileSync('ip', ['netns', 'exec', this.o.netns, 'ip', 'addr', 'add', `${ip}/${this.o.podPrefixLength ?? 32}`, 'dev', this.o.podInterface], { stdio: 'ignore' });
    }
    const r: Running = { uid: p.metadata?.uid ?? '', ip, dir, procs: new Map(), phase: 'Running', startTime: now() };
    this.pods.set(`${ns}/${name}`, r);
    for (const ct of p.spec.containers) {
      const ms: Mount[] = [
        ...(ct.volumeMounts ?? []).map((m) => { const v = mounts.get(m.name)!; return { source: v.source, target: m.mountPath, readOnly: (m.readOnly ?? false) || v.readOnly, kind: v.kind }; }),
        ...(ct.volumeDevices ?? []).map((m) => { const v = mounts.get(m.name)!; return { source: v.source, target: m.devicePath, readOnly: v.readOnly, kind: 'file' as const }; }),
      ];
      r.procs.set(ct.name, { mounts: ms, restarts: 0, state: {} });
      this.startContainer(p, r, ct);
    }
    await this.writeStatus(p, r);
  }

  private containerEnv(p: PodObj, r: Running, ct: Container): Record<string, string> {
    const env: Record<string, string> = {};
    for (const e of ct.env ?? []) {
      const f = e.valueFrom?.fieldRef?.fieldPath;
      if (e.value !== undefined) env[e.name] = expand(e.value, env);
      else if (f === 'status.podIP') env[e.name] = r.ip;
      else if (f === 'status.hostIP') env[e.name] = this.o.hostIP;
      else if (f === 'metadata.name') env[e.name] = p.metadata?.name ?? '';
      else if (f === 'metadata.namespace') env[e.name] = p.metadata?.namespace ?? '';
      else if (f === 'spec.nodeName') env[e.name] = this.o.nodeName;
    }
    return env;
  }

  private startContainer(p: PodObj, r: Running, ct: Container): void {
    const st = r.procs.get(ct.name)!;
    const img = localImage(ct.image)!;
    const env = this.containerEnv(p, r, ct);
    const argv = containerArgv(img, ct.command?.map((s) => expand(s, env)), ct.args?.map((s) => expand(s, env)));
    mkdirSync(r.dir, { recursive: true });
    const child = startContainerProcess({ dir: join(r.dir, ct.name), imageFiles: img.files, argv, env, workingDir: ct.workingDir ?? img.workingDir, mounts: st.mounts, ...(this.o.netns ? { netns: this.o.netns } : {}) });
    const log = createWriteStream(join(r.dir, `${ct.name}.log`), { flags: 'a' });
    child.stdout?.pipe(log);
    child.stderr?.pipe(log);
    if (this.o.echo) { child.stdout?.pipe(process.stderr); child.stderr?.pipe(process.stderr); }
    st.child = child;
    st.startedAt = now();
    st.state = { running: { startedAt: st.startedAt } };
    child.once('exit', (code, sig) => {
      st.child = undefined;
      const exitCode = code ?? (sig === 'SIGKILL' ? 137 : 143);
      st.state = { terminated: { exitCode, reason: exitCode === 0 ? 'Completed' : 'Error', startedAt: st.startedAt, finishedAt: now() } };
      const policy = p.spec.restartPolicy ?? 'Always';
      if (!r.deleting && (policy === 'Always' || (policy === 'OnFailure' && exitCode !== 0))) {
        st.nextStart = Date.now() + Math.min(10_000, 1000 * 2 ** Math.min(st.restarts, 4));
        st.restarts++;
      }
    });
  }

  /** Restarts due containers, settles the phase, writes status when something changed. */
  private async supervise(k: string, p: PodObj): Promise<void> {
    const r = this.pods.get(k)!;
    for (const ct of p.spec.containers) {
      const st = r.procs.get(ct.name);
      if (st && !st.child && st.nextStart !== undefined && Date.now() >= st.nextStart) {
        st.nextStart = undefined;
        this.startContainer(p, r, ct);
      }
    }
    const states = [...r.procs.values()];
    const done = states.every((s) => !s.child && s.nextStart === undefined && 'terminated' in s.state);
    if (done) {
      const failed = states.some((s) => ((s.state.terminated as { exitCode: number }).exitCode ?? 1) !== 0);
      r.phase = failed ? 'Failed' : 'Succeeded';
    }
    await this.writeStatus(p, r);
    if (done) this.forget(k, r);
  }

  private async writeStatus(p: PodObj, r: Running): Promise<void> {
    const containerStatuses = p.spec.containers.map((ct) => {
      const st = r.procs.get(ct.name);
      return { name: ct.name, image: ct.image, imageID: ct.image, ready: !!st?.child, started: !!st?.child, restartCount: st?.restarts ?? 0, state: st?.child ? st.state : st?.nextStart !== undefined ? { waiting: { reason: 'CrashLoopBackOff' } } : st?.state ?? {} };
    });
    const ready = containerStatuses.every((c) => c.ready) && r.phase === 'Running';
    const status = {
      phase: r.phase, hostIP: this.o.hostIP, podIP: r.ip, podIPs: [{ ip: r.ip }],
      conditions: [
        { type: 'PodScheduled', status: 'True' }, { type: 'Initialized', status: 'True' },
        { type: 'ContainersReady', status: ready ? 'True' : 'False' }, { type: 'Ready', status: ready ? 'True' : 'False' },
      ],
      containerStatuses,
    };
    const key = JSON.stringify(status);
    if (r.lastStatus === key) return;
    r.lastStatus = key;
    await this.o.client.patchStatus(POD, p.metadata?.namespace, p.metadata?.name ?? '', { ...status, startTime: r.startTime }).catch((e: unknown) => {
      if (!isNotFound(e)) throw e;
    });
  }

  private async waiting(p: PodObj, reason: string, message: string): Promise<void> {
    if (p.status?.phase === 'Pending' && JSON.stringify(p.status).includes(message)) return;
    await this.o.client.patchStatus(POD, p.metadata?.namespace, p.metadata?.name ?? '', {
      phase: 'Pending', conditions: [{ type: 'PodScheduled', status: 'True' }, { type: 'Ready', status: 'False', reason: 'ContainersNotReady', message }],
      containerStatuses: p.spec.containers.map((ct) => ({ name: ct.name, image: ct.image, imageID: '', ready: false, restartCount: 0, state: { waiting: { reason, message } } })),
    }).catch(() => undefined);
  }

  /** Graceful deletion: SIGTERM, SIGKILL after the grace period (at most 5 s here), then the Pod object goes. */
  private async terminate(k: string, p: PodObj): Promise<void> {
    const r = this.pods.get(k);
    const grace = Math.min(5, p.spec.terminationGracePeriodSeconds ?? 30);
    if (r) {
      r.deleting = true;
      await this.kill(k, grace * 1000);
    }
    await this.o.client.delete(POD, p.metadata?.namespace, p.metadata?.name ?? '', { gracePeriodSeconds: 0, ...(p.metadata?.uid ? { uid: p.metadata.uid } : {}) }).catch((e: unknown) => {
      if (!isNotFound(e)) throw e;
    });
  }

  private async kill(k: string, graceMs: number): Promise<void> {
    const r = this.pods.get(k);
    if (!r) return;
    r.deleting = true;
    const children = [...r.procs.values()].map((s) => s.child).filter((c): c is ChildProcess => !!c);
    const exited = Promise.all(children.map((c) => new Promise<void>((res) => (c.exitCode !== null || c.signalCode !== null ? res() : c.once('exit', () => res())))));
    for (const c of children) try { process.kill(-c.pid!, 'SIGTERM'); } catch { /* gone */ }
    const timer = setTimeout(() => { for (const c of children) try { process.kill(-c.pid!, 'SIGKILL'); } catch { /* gone */ } }, graceMs);
    await exited;
    clearTimeout(timer);
    this.forget(k, r);
  }

  private forget(k: string, r: Running): void {
    if (this.pods.get(k) !== r) return;
    this.pods.delete(k);
    if (this.o.netns && this.o.podInterface) {
      try { execFileSync('ip', ['netns', 'exec', this.o.netns, 'ip', 'addr', 'del', `${r.ip}/${this.o.podPrefixLength ?? 32}`, 'dev', this.o.podInterface], { stdio: 'ignore' }); } catch { /* gone with the namespace */ }
    }
    this.freeIPs.push(r.ip);
    rmSync(join(r.dir, 'volumes'), { recursive: true, force: true }); // secrets do not outlive the Pod
  }
}
