// One benchmark cell of the WAN benchmark: `vms` real QEMU (TCG) guests running `workload` in
// site A migrate at once to site B in one mode, and the figures the CloudNet evaluation reports
// come back as one row.
import fs from 'node:fs';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as delay } from 'node:timers/promises';
import type { WorkloadSpec } from '../../src/qemu/image.ts';
import { migrate, type MigrationResult, type MigrationTuning } from '../../src/qemu/migrate.ts';
import type { QemuGuest } from '../../src/qemu/process.ts';
import type { GuestLab } from '../../test/env/qemu.ts';
import { processCpuSeconds, type Sites } from '../../test/env/wan.ts';
import type { Pki } from '../../test/integration/relay-helpers.ts';
import { startRelayPair, type RelayPair, type RelaySession } from './relay-pair.ts';

export type Mode = 'plain' | 'xbzrle' | 'multifd-zstd' | 'relay';
export const MODES: readonly Mode[] = ['plain', 'xbzrle', 'multifd-zstd', 'relay'];

export interface WorkloadDef {
  spec: WorkloadSpec;
  /** Serial line meaning the workload is in its steady state. */
  ready: RegExp;
}

export interface CellOptions {
  sites: Sites;
  lab: GuestLab;
  pki: Pki;
  profile: string;
  workload: string;
  def: WorkloadDef;
  mode: Mode;
  vms: number;
  memMiB: number;
  timeoutMs: number;
  /** Same for every mode: fairness. */
  downtimeLimitMs: number;
  maxBandwidthBps: number;
  xbzrleCacheMiB: number;
  multifdChannels: number;
  multifdZstdLevel: number;
  relayCacheMiB: number;
  relayLevel: string;
  relayWindowMiB?: number;
  /** The sender's --bypass-above-mbit (unset: the relay's default; 0: always through the relay). */
  relayBypassMbit?: number;
  /** taskset CPU lists; undefined = not pinned. */
  pin?: { source: string; destination: string; sender: string; receiver: string };
  warmupMs: number;
  /** Distinguishes a retry's guest names (and files) from the first attempt's. */
  attempt?: number;
}

export interface CellRow {
  profile: string;
  workload: string;
  mode: Mode;
  vms: number;
  memMiB: number;
  /** How many of the VMs completed; fewer = did not converge within the timeout (or failed). */
  completed: number;
  converged: boolean;
  /** Host-measured, migrate command → every destination running (max over VMs), ms. */
  totalTimeMs: number;
  /** QEMU's total-time (memory migration; no disks here), max over VMs, ms. Falls back to the
   *  host-measured migration time where QEMU reports 0 (some multifd runs). */
  memTimeMs: number;
  /** QEMU's downtime, max over VMs, ms. */
  downtimeMs: number;
  /** The guest's pause as its heartbeats show it (every 100 ms on the serial console, stamped by
   *  the host): last beat on the source to first on the destination, max over VMs, ms. Unlike
   *  QEMU's source-side downtime, this includes the stream's tail crossing the WAN (and relays). */
  heartbeatGapMs?: number;
  /** Pre-copy rounds (dirty-sync-count), max over VMs. */
  rounds: number;
  /** Bytes the WAN emulator forwarded A→B (and B→A) during the migrations: IP packets, i.e.
   *  including TCP/IP and TLS overhead. */
  wanBytes: number;
  wanBytesReturn: number;
  /** QEMU's own count of RAM bytes sent (before multifd compression), summed over VMs. */
  ramTransferredBytes: number;
  /** CPU seconds during the migration window. */
  /** relays: the relay processes' CPU less their --hash-streams check (relayCheck, on worker threads). */
  cpuSeconds: { sourceQemu: number; destinationQemu: number; relays: number; wanem: number; relayCheck?: number };
  /** Destination guests still printing heartbeats after the migration. */
  alive: number;
  /** The machine's 1-minute load average when the cell finished (the 2 cores are shared). */
  loadAvg1?: number;
  /** bypassed: the sender's reason to let the flows bypass it (the link outruns the relay); the
   *  migration then ran as a plain one and the relay carried nothing (exact: vacuously). */
  relay?: {
    streamBytes: number; relayLinkBytes: number; exact: boolean; modes: string[]; roundModes?: Record<string, number>[][]; bypassed?: string;
    /** Stream bytes and op bytes (before zstd) by technique, summed over the sessions: where the bytes went. */
    techniques?: Record<string, { count: number; rawBytes: number; opBytes: number }>;
    /** Batches (DATA frames) the sender sent, over the sessions: the stream per batch is what each frame's fixed costs are spread over. */
    batches?: number;
  };
  /** Which of the repeated runs (bench:wan --repeat) this row is. */
  run?: number;
  errors: string[];
}

function tuning(o: CellOptions): MigrationTuning {
  const parameters = { 'max-bandwidth': o.maxBandwidthBps, 'downtime-limit': o.downtimeLimitMs };
  if (o.mode === 'xbzrle') return { capabilities: { xbzrle: true }, parameters: { ...parameters, 'xbzrle-cache-size': o.xbzrleCacheMiB * 1024 * 1024 } };
  if (o.mode === 'multifd-zstd') {
    return {
      capabilities: { multifd: true },
      parameters: { ...parameters, 'multifd-channels': o.multifdChannels, 'multifd-compression': 'zstd', 'multifd-zstd-level': o.multifdZstdLevel },
    };
  }
  return { parameters };
}

const cpuOf = (pid: number): number => { try { return processCpuSeconds(pid); } catch { return 0; } };
const sumCpu = (gs: readonly QemuGuest[]): number => gs.reduce((a, g) => a + cpuOf(g.pid), 0);
const BASE_PORT = 49152;

/** Last serial lines of this cell's guests: why a guest died during boot (e.g. a kernel panic). */
export function serialTails(o: Pick<CellOptions, 'lab' | 'profile' | 'workload' | 'mode' | 'vms'>): string {
  const tag = `${o.profile}-${o.workload}-${o.mode}-${o.vms}`;
  return fs.readdirSync(o.lab.dir).filter((f) => f.startsWith(tag) && f.endsWith('.serial.log'))
    .map((f) => `${f}: ${fs.readFileSync(path.join(o.lab.dir, f), 'utf8').slice(-400).replace(/\s+/g, ' ')}`).join(' | ');
}

function sumTechniques(sessions: readonly RelaySession[]): NonNullable<CellRow['relay']>['techniques'] {
  const sum: Record<string, { count: number; rawBytes: number; opBytes: number }> = {};
  for (const s of sessions) {
    for (const [t, v] of Object.entries(s.techniques ?? {})) {
      const acc = (sum[t] ??= { count: 0, rawBytes: 0, opBytes: 0 });
      acc.count += v.count; acc.rawBytes += v.rawBytes; acc.opBytes += v.opBytes;
    }
  }
  return sum;
}

/**
 * What a destination guest that stopped beating after the switch-over is doing, for the row's
 * error: QEMU's run state, where its vCPU is (instruction pointer, flags, halted or not) and the
 * interrupt controllers' state of the serial port's line (IRQ 4). On QEMU 7.2 such guests had
 * panicked on lost pages and QEMU had exited ("no state": its QMP socket closed; the serial log
 * has the oops); on QEMU 10 none has been seen, and these figures are for any other cause.
 */
async function silentGuestState(g: QemuGuest): Promise<string> {
  try {
    const hmp = (c: string): Promise<string> => g.qmp.execute('human-monitor-command', { 'command-line': c }, { timeoutMs: 5000 });
    const status = JSON.stringify(await g.qmp.execute('query-status', undefined, { timeoutMs: 5000 }));
    const regs = (await hmp('info registers')).split('\n');
    const rip = regs.find((l) => l.includes('RIP='))?.replace(/\s+/g, ' ').trim() ?? '?';
    const pic = (await hmp('info pic')).split('\n').filter((l) => /irr|imr|isr|irq 4|pin 4/i.test(l)).slice(0, 4).join(' / ').replace(/\s+/g, ' ');
    const lapic = (await hmp('info lapic')).split('\n').filter((l) => /^(ISR|IRR|LVT0|LVTT|Timer)/.test(l.trim())).join(' / ').replace(/\s+/g, ' ');
    return `status ${status}; ${rip}; pic ${pic}; lapic ${lapic}; serial lines ${g.serial.count}`.slice(0, 1500);
  } catch (err) {
    return `no state: ${err instanceof Error ? err.message : String(err)}`;
  }
}

export async function runCell(o: CellOptions): Promise<CellRow> {
  const { sites, lab } = o;
  const tag = `${o.profile}-${o.workload}-${o.mode}-${o.vms}${o.attempt ? `-r${o.attempt}` : ''}`;
  const errors: string[] = [];
  const srcs = await Promise.all(Array.from({ length: o.vms }, (_, i) => lab.start({
    name: `${tag}-src${i}`, workload: o.def.spec, memoryMiB: o.memMiB, netns: sites.a.nodeNs, cpuList: o.pin?.source, bootTimeoutMs: 180_000,
  })));
  const dsts: QemuGuest[] = [];
  let relay: RelayPair | undefined;
  try {
    await Promise.all(srcs.map((g) => g.serial.waitFor(o.def.ready, 180_000)));
    await delay(o.warmupMs); // steady state: the working set is dirty before the first round
    dsts.push(...await Promise.all(srcs.map((_, i) => lab.start({
      name: `${tag}-dst${i}`, workload: o.def.spec, memoryMiB: o.memMiB, netns: sites.b.nodeNs, incoming: true, cpuList: o.pin?.destination,
    }))));
    if (o.mode === 'relay') {
      relay = await startRelayPair({
        sites, pki: o.pki, sessions: o.vms, basePort: BASE_PORT, dir: lab.dir, cacheMiB: o.relayCacheMiB, level: o.relayLevel, windowMiB: o.relayWindowMiB,
        ...(o.relayBypassMbit !== undefined ? { bypassAboveMbit: o.relayBypassMbit } : {}),
        senderCpus: o.pin?.sender, receiverCpus: o.pin?.receiver,
      });
    }
    if (relay?.bypass) console.log(`[bench:wan] ${tag}: the relay lets the flows bypass it: ${relay.bypass}`);
    const uri = (i: number): { incoming: string; uri: string } => o.mode === 'relay' && !relay?.bypass
      ? { incoming: `tcp:127.0.0.1:${BASE_PORT + i}`, uri: `tcp:127.0.0.1:${BASE_PORT + i}` }
      : { incoming: `tcp:0.0.0.0:${BASE_PORT + i}`, uri: `tcp:${sites.b.nodeIp}:${BASE_PORT + i}` };
    const cpu0 = { s: sumCpu(srcs), d: sumCpu(dsts), r: relay?.cpuSeconds() ?? 0, w: sites.wanemCpuSeconds() };
    const w0 = await sites.stats();
    const t0 = performance.now();
    const results = await Promise.all(srcs.map(async (src, i): Promise<MigrationResult | undefined> => {
      try {
        return await migrate({ source: src.qmp, destination: dsts[i].qmp, incomingUri: uri(i).incoming, uri: uri(i).uri, ...tuning(o), timeoutMs: o.timeoutMs });
      } catch (err) {
        errors.push(`vm${i}: ${err instanceof Error ? err.message.slice(0, 300) : String(err)}`);
        return undefined;
      }
    }));
    const hostMs = performance.now() - t0;
    const w1 = await sites.stats();
    const cpu: CellRow['cpuSeconds'] = {
      sourceQemu: sumCpu(srcs) - cpu0.s, destinationQemu: sumCpu(dsts) - cpu0.d,
      relays: (relay?.cpuSeconds() ?? 0) - cpu0.r, wanem: sites.wanemCpuSeconds() - cpu0.w,
    };
    const done = results.filter((r): r is MigrationResult => r?.status === 'completed');
    for (const [i, r] of results.entries()) if (r && r.status !== 'completed') errors.push(`vm${i}: ${r.status} ${r.error ?? ''}`);
    // The guest keeps running: a fresh heartbeat on each destination that completed.
    let alive = 0;
    await Promise.all(results.map(async (r, i) => {
      if (r?.status !== 'completed') return;
      try {
        await dsts[i].serial.waitFor(/HB \d+/, 60_000, dsts[i].serial.count); // generous: TCG guests starve on the busy 2 cores
        alive++;
      } catch {
        errors.push(`vm${i}: no heartbeat on the destination after migration (${await silentGuestState(dsts[i])})`);
      }
    }));
    const gaps = results.flatMap((r, i) => {
      const last = srcs[i].serial.heartbeats().at(-1);
      const first = dsts[i].serial.heartbeats()[0];
      return r?.status === 'completed' && last && first ? [first.at - last.at] : [];
    });
    let relayRow: CellRow['relay'];
    if (relay?.bypass) {
      relayRow = { streamBytes: 0, relayLinkBytes: 0, exact: true, modes: ['bypassed'], bypassed: relay.bypass };
    } else if (relay) {
      const f = await relay.finished(done.length, 20_000);
      // The end-to-end SHA-256 check is the benchmark's, not relay work: its CPU is reported apart.
      cpu.relayCheck = relay.checkCpuSeconds();
      cpu.relays = Math.max(0, cpu.relays - cpu.relayCheck);
      const ins = f.sender.map((s) => s.inputSha256).sort();
      const outs = f.receiver.map((s) => s.outputSha256).sort();
      relayRow = {
        streamBytes: f.sender.reduce((a, s) => a + (s.bytesIn ?? 0), 0),
        relayLinkBytes: f.sender.reduce((a, s) => a + (s.wireBytes ?? 0), 0),
        exact: ins.length === done.length && ins.length === outs.length && ins.every((h, i) => Boolean(h) && h === outs[i]),
        modes: f.sender.map((s) => s.mode ?? '?'),
        // The adaptive work mode of each round (adaptive.ts): stream bytes by mode, per session.
        roundModes: f.sender.map((s) => (s.rounds ?? []).map((r) => r.modes ?? {})),
        techniques: sumTechniques(f.sender),
        batches: f.sender.reduce((a, s) => a + (s.batches ?? 0), 0),
      };
      if (done.length && !relayRow.exact) errors.push(`relay stream hashes differ: in ${ins.join(',')} out ${outs.join(',')}`);
    }
    const max = (f: (r: MigrationResult) => number): number => (done.length ? Math.max(...done.map(f)) : Number.NaN);
    return {
      profile: o.profile, workload: o.workload, mode: o.mode, vms: o.vms, memMiB: o.memMiB,
      completed: done.length, converged: done.length === o.vms,
      totalTimeMs: done.length === o.vms ? Math.round(max((r) => r.wallTimeMs)) : Math.round(hostMs),
      memTimeMs: max((r) => r.totalTimeMs || Math.round(r.wallTimeMs)),
      downtimeMs: max((r) => r.downtimeMs),
      heartbeatGapMs: gaps.length === o.vms ? Math.round(Math.max(...gaps)) : undefined,
      rounds: done.length === o.vms ? max((r) => r.rounds) : Number.NaN,
      wanBytes: w1.ab.txBytes - w0.ab.txBytes,
      wanBytesReturn: w1.ba.txBytes - w0.ba.txBytes,
      ramTransferredBytes: done.reduce((a, r) => a + r.ramTransferredBytes, 0),
      cpuSeconds: cpu, alive, relay: relayRow, errors,
    };
  } finally {
    await relay?.stop();
    await Promise.all([...srcs, ...dsts].map((g) => g.stop(2000)));
  }
}
