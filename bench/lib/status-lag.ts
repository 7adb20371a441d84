// Status lag, seen from outside the operator: the benchmark watches the VMIMs on both clusters
// (the stand-in's writes) and the WanMigrations (the operator's writes) with its own informers,
// timestamps each event as it arrives, and measures, for each VMIM phase change, how long until a
// WanMigration status shows that phase or a later one. The status names both VMIM phases once
// both VMIMs exist (MemoryMigrated "VMIMs: source X, target Y"), and leaving MigratingMemory
// reflects every earlier change; changes before the source VMIM exists (the receiver waiting for
// its sender) have nothing in the status to show them and are not counted.
import { Informer, restListWatcher } from '../../src/kube/informer.ts';
import type { KubeClient } from '../../src/kube/client.ts';
import type { KubeObject } from '../../src/kube/rest.ts';
import { Res } from '../../src/api/resources.ts';

const SENDER = ['', 'Synchronizing', 'Pending', 'Scheduling', 'Scheduled', 'PreparingTarget', 'TargetReady', 'Running', 'Succeeded'];
const RECEIVER = ['', 'WaitingForSync', 'Pending', 'Scheduling', 'Scheduled', 'PreparingTarget', 'TargetReady', 'Running', 'Succeeded'];
const BEYOND_MEMORY = new Set(['CuttingOver', 'Succeeded', 'RollingBack', 'Failed', 'Aborted']);
const MIGRATION_LABEL = 'cloudnet.io/migration-uid';

type Side = 'source' | 'target';
interface Change { side: Side; phase: string; t: number }
interface Shown { t: number; phase: string; source?: string; target?: string }

type VMIM = KubeObject & { spec?: { sendTo?: unknown }; status?: { phase?: string } };
type WM = KubeObject & { status?: { phase?: string; conditions?: Array<{ type: string; message?: string }> } };

export interface LagReport {
  /** VMIM phase changes measured. */
  changes: number;
  /** Of those, never shown before the end. */
  unreflected: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  /** p99 per 30 s window since the first change counted, to tell a burst from a steady tail. */
  p99ByWindowMs: Record<string, number>;
}

export class StatusLagTracker {
  private readonly informers: Informer[] = [];
  private readonly changes = new Map<string, Change[]>();
  private readonly senderSeen = new Map<string, number>();
  private readonly shown = new Map<string, Shown[]>();
  /** Terminal phase per migration uid, as last seen. */
  readonly phases = new Map<string, string>();

  constructor(source: KubeClient, target: KubeClient) {
    for (const c of [source, target]) {
      const inf = new Informer<VMIM>(restListWatcher<VMIM>(c.rest, Res.vmim), { name: `bench-vmims@${c.clusterName}` });
      inf.addEventHandler({ onAdd: (n) => this.vmim(undefined, n), onUpdate: (o, n) => this.vmim(o, n) });
      this.informers.push(inf as unknown as Informer);
    }
    const wms = new Informer<WM>(restListWatcher<WM>(source.rest, Res.wanMigration), { name: 'bench-wanmigrations' });
    wms.addEventHandler({ onAdd: (n) => this.wm(n), onUpdate: (_o, n) => this.wm(n) });
    this.informers.push(wms as unknown as Informer);
  }

  async start(): Promise<void> {
    for (const i of this.informers) i.start();
    await Promise.all(this.informers.map((i) => i.waitForSync(AbortSignal.timeout(60_000))));
  }

  async stop(): Promise<void> {
    await Promise.all(this.informers.map((i) => i.stop()));
  }

  private vmim(old: VMIM | undefined, n: VMIM): void {
    const uid = n.metadata?.labels?.[MIGRATION_LABEL];
    if (!uid) return;
    const t = performance.now();
    const side: Side = n.spec?.sendTo ? 'source' : 'target';
    if (side === 'source' && !this.senderSeen.has(uid)) this.senderSeen.set(uid, t);
    const phase = n.status?.phase ?? '';
    if (old && (old.status?.phase ?? '') === phase) return;
    if (!old && !phase) return;
    const list = this.changes.get(uid) ?? [];
    list.push({ side, phase, t });
    this.changes.set(uid, list);
  }

  private wm(n: WM): void {
    const uid = n.metadata?.uid ?? '';
    const phase = n.status?.phase ?? '';
    this.phases.set(uid, phase);
    const msg = n.status?.conditions?.find((c) => c.type === 'MemoryMigrated')?.message ?? '';
    const m = /^VMIMs: source (\S+), target (\S+)$/.exec(msg);
    const list = this.shown.get(uid) ?? [];
    list.push({ t: performance.now(), phase, ...(m ? { source: m[1] === 'Unset' ? '' : m[1], target: m[2] === 'Unset' ? '' : m[2] } : {}) });
    this.shown.set(uid, list);
  }

  report(endT = performance.now()): LagReport {
    const lags: number[] = [];
    const timed: Array<{ t: number; lag: number }> = [];
    let unreflected = 0;
    for (const [uid, changes] of this.changes) {
      const since = this.senderSeen.get(uid);
      if (since === undefined) continue;
      const shown = this.shown.get(uid) ?? [];
      for (const c of changes) {
        if (c.t < since) continue;
        const order = c.side === 'source' ? SENDER : RECEIVER;
        const want = order.indexOf(c.phase);
        if (want < 0) continue; // Failed: shown as a rollback, not a phase of the list
        // Phases only move forward: the first status showing this phase or a later one reflects it
        // (its event may even arrive a hair before the VMIM's, from the other API server).
        const hit = shown.find((s) => BEYOND_MEMORY.has(s.phase) || (s[c.side] !== undefined && order.indexOf(s[c.side]!) >= want));
        const lag = hit ? Math.max(0, hit.t - c.t) : endT - c.t;
        if (!hit) unreflected++;
        lags.push(lag);
        timed.push({ t: c.t, lag });
      }
    }
    const quantile = (xs: number[], p: number) => {
      const sorted = [...xs].sort((a, b) => a - b);
      return sorted.length ? Math.round(sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]) : 0;
    };
    const t0 = Math.min(...timed.map((x) => x.t));
    const windows = new Map<number, number[]>();
    for (const x of timed) {
      const w = Math.floor((x.t - t0) / 30_000) * 30;
      windows.set(w, [...(windows.get(w) ?? []), x.lag]);
    }
    const p99ByWindowMs = Object.fromEntries([...windows].sort((a, b) => a[0] - b[0]).map(([w, xs]) => [`${w}s`, quantile(xs, 0.99)]));
    return { changes: lags.length, unreflected, p50Ms: quantile(lags, 0.5), p99Ms: quantile(lags, 0.99), maxMs: Math.round(Math.max(0, ...lags)), p99ByWindowMs };
  }
}
