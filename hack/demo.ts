// `npm run demo` (via hack/demo.sh): a real two-cluster WAN live migration on this machine.
// Two kube-apiservers, two sites of a gateway node and two worker nodes each (route agents on the
// workers), the emulated WAN with WireGuard between the gateway nodes, the CloudNet relay pair with
// nftables interception on the gateway nodes, the operator, and the KubeVirt stand-in running
// real QEMU guests on the worker nodes. Applies config/samples/wanmigration.yaml (relay switched
// on): the source dials the target node's migration ports, the gateway intercepts the flows the
// operator registered, the relay reduces them. Shows live progress and a
// `kubectl get wanmigrations -w` view, which relay session belongs to which WanMigration, then
// migrates the same guest(s) plainly (relay.enabled false: the flows pass the gateway untouched)
// and prints a comparison table. Everything is torn down at the end.
//
// Flags: --workload memwriter|sqlload|idle|diskwriter|mix  --rate <Mbit/s>  --rtt <ms>  --vms N  --memory <MiB>
//        --native: also QEMU's own best options (multifd + zstd-1, XBZRLE), straight across the WAN.
// Guests get a disk only when the workload writes one (diskwriter, mix); it migrates by NBD mirror
// as in KubeVirt (with CLOUDNET_DISK_TRANSPORT=block, QEMU's block migration, which cannot be
// combined with multifd, so --native then skips multifd).
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Res } from '../src/api/resources.ts';
import type { KubeObject } from '../src/kube/rest.ts';
import type { WanMigration } from '../src/api/wanmigration.ts';
import type { WorkloadSpec } from '../src/qemu/image.ts';
import { binDir } from '../test/env/cluster.ts';
import { getWM, loadSample } from '../test/standin/harness.ts';
import type { MigrationTuning } from '../src/qemu/migrate.ts';
import { qemuVersion } from '../src/qemu/process.ts';
import { createGuestVM, startWanBed, type WanBed } from '../test/e2e/wan-bed.ts';
import { waitFor } from '../test/helpers/poll.ts';

const { values: v } = parseArgs({
  options: {
    workload: { type: 'string', default: 'memwriter' },
    rate: { type: 'string', default: '100' },
    rtt: { type: 'string', default: '50' },
    vms: { type: 'string', default: '1' },
    memory: { type: 'string', default: '256' },
    native: { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h' },
  },
});
if (v.help) {
  console.log('usage: npm run demo -- [--workload memwriter|sqlload|idle|diskwriter|mix] [--rate 100] [--rtt 50] [--vms 1] [--memory 256] [--native]');
  console.log('  --native: also migrate with QEMU\'s own best options (multifd + zstd, and XBZRLE), straight across the WAN');
  process.exit(0);
}
const rateMbps = Number(v.rate);
const rttMs = Number(v.rtt);
const vmCount = Number(v.vms);
const memoryMiB = Number(v.memory);
if (!(rateMbps > 0) || !(rttMs >= 0) || !(vmCount >= 1 && vmCount <= 8) || !(memoryMiB >= 64)) {
  console.error('bad flags: --rate > 0, --rtt >= 0, --vms 1..8, --memory >= 64');
  process.exit(2);
}

const WORKLOADS: Record<string, WorkloadSpec> = {
  idle: { name: 'idle' },
  memwriter: { name: 'memwriter', params: { 'wss-mb': Math.min(64, memoryMiB / 4), 'dirty-mbps': 4 } },
  sqlload: { name: 'sqlload', params: { 'pause-ms': 50 } },
  diskwriter: { name: 'diskwriter', params: { blocks: 2048, mbps: 2 } },
  mix: { name: ['memwriter', 'sqlload', 'diskwriter'], params: { 'wss-mb': Math.min(32, memoryMiB / 8), 'dirty-mbps': 2, blocks: 1024, mbps: 1, 'pause-ms': 100 } },
};
const workload = WORKLOADS[v.workload ?? 'memwriter'];
if (!workload) {
  console.error(`unknown --workload ${v.workload}; one of ${Object.keys(WORKLOADS).join(', ')}`);
  process.exit(2);
}

const NS = 'default';
const names = Array.isArray(workload.name) ? workload.name : [workload.name];
const disks = names.includes('diskwriter') ? 1 : 0;
type Mode = 'relay' | 'plain' | 'multifd' | 'xbzrle';
const MODE_LABEL: Record<Mode, string> = {
  relay: 'CloudNet relay', plain: 'plain (no relay)', multifd: 'QEMU multifd+zstd-1', xbzrle: 'QEMU XBZRLE',
};
const TUNING: Record<Mode, MigrationTuning> = {
  relay: {}, plain: {},
  multifd: { capabilities: { multifd: true }, parameters: { 'multifd-channels': 2, 'multifd-compression': 'zstd', 'multifd-zstd-level': 1 } },
  xbzrle: { capabilities: { xbzrle: true }, parameters: { 'xbzrle-cache-size': Math.min(256, memoryMiB / 2) * 1024 * 1024 } },
};
const t0 = Date.now();
const say = (s: string): void => console.log(`[${((Date.now() - t0) / 1000).toFixed(1).padStart(6)}s] ${s}`);
const mb = (b: number | undefined): string => (b === undefined ? '-' : `${(b / 1e6).toFixed(1)} MB`);

interface RunResult {
  mode: string;
  wallS: number;
  wanBytes: number;
  streamBytes: number;
  downtimeMs: number[];
  rounds: number[];
  pauseMs: number[];
  /** Pages the RAM check at switch-over found lost by the QEMU migration and restored (QEMU < 9.0 under TCG). */
  lostPages: number[];
  ok: number;
  /** Relay runs: the stream hash comparison. */
  exact?: string;
}

function migrationFor(vm: string, relay: boolean, memorySeconds?: number): KubeObject {
  const wm = loadSample<WanMigration & KubeObject>('wanmigration.yaml')[0];
  if (vm !== wm.spec.vmName) wm.metadata.name = `${vm}-to-site-b`;
  wm.spec.vmName = vm;
  wm.spec.relay = { ...wm.spec.relay, enabled: relay };
  if (memorySeconds) wm.spec.timeouts = { ...wm.spec.timeouts, memorySeconds };
  return wm as unknown as KubeObject;
}

function watchView(bed: WanBed): () => void {
  const kubectl = spawn(join(binDir, 'kubectl'), ['--kubeconfig', bed.a.kubeconfigPath, 'get', 'wanmigrations', '-n', NS, '-w'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let buf = '';
  let last = '';
  kubectl.stdout.setEncoding('utf8').on('data', (d: string) => {
    buf += d;
    let nl;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      // -w prints every status update; repeated identical rows (AGE unchanged) add nothing.
      if (line !== last) console.log(`  kubectl get wanmigrations -w | ${line}`);
      last = line;
    }
  });
  kubectl.stderr.resume();
  return () => { kubectl.kill('SIGTERM'); };
}

async function migrateAll(bed: WanBed, vms: string[], mode: Mode, memorySeconds?: number): Promise<RunResult> {
  const relay = mode === 'relay';
  bed.driver.tuning = TUNING[mode];
  const before = await bed.sites.stats();
  const start = Date.now();
  for (const vm of vms) await bed.src.create(Res.wanMigration, migrationFor(vm, relay, memorySeconds));
  say(`applied ${vms.length} WanMigration(s) (config/samples/wanmigration.yaml, relay.enabled=${relay})`);
  const names = vms.map((vm) => (vm === 'vm-a' ? 'vm-a-to-site-b' : `${vm}-to-site-b`));
  const done = new Map<string, WanMigration>();
  let lastLine = '';
  while (done.size < names.length) {
    for (const n of names) {
      if (done.has(n)) continue;
      const wm = await getWM(bed.src, NS, n);
      const phase = wm?.status?.phase;
      if (wm && (phase === 'Succeeded' || phase === 'Failed' || phase === 'Aborted')) done.set(n, wm);
    }
    const lines: string[] = [];
    for (const n of names) {
      const wm = done.get(n) ?? await getWM(bed.src, NS, n);
      const p = wm?.status?.progress ?? {};
      const q = wm?.status?.migrationID ? bed.driver.migrations.get(wm.status.migrationID) : undefined;
      const sample = q ? latest.get(q.migrationID) : undefined;
      lines.push(`${n}: ${(wm?.status?.phase ?? 'Pending').padEnd(16)} ${String(p.percent ?? 0).padStart(3)}%` +
        ` stream ${mb(p.bytesSent ?? sample?.transferred)} WAN ${mb(p.bytesOverWan)} rounds ${p.rounds || sample?.rounds || 0}` +
        ` ratio ${p.reductionRatio ?? '-'} ETA ${p.etaSeconds !== undefined ? `${p.etaSeconds}s` : '-'}`);
    }
    const wanNow = (await bed.sites.stats()).ab.txBytes - before.ab.txBytes;
    const line = `${lines.join(' | ')} | link A->B ${mb(wanNow)}`;
    if (line !== lastLine) { say(line); lastLine = line; }
    await new Promise((r) => setTimeout(r, 1000));
  }
  const wallS = (Date.now() - start) / 1000;
  const after = await bed.sites.stats();
  const res: RunResult = { mode: MODE_LABEL[mode], wallS, wanBytes: after.ab.txBytes - before.ab.txBytes, streamBytes: 0, downtimeMs: [], rounds: [], pauseMs: [], lostPages: [], ok: 0 };
  for (const wm of done.values()) {
    if (wm.status?.phase === 'Succeeded') res.ok++;
    else say(`${wm.metadata.name} ${wm.status?.phase}: ${wm.status?.failureReason} ${wm.status?.failureMessage}`);
    const q = wm.status?.migrationID ? bed.driver.migrations.get(wm.status.migrationID) : undefined;
    if (q?.result) {
      res.streamBytes += q.result.ramTransferredBytes;
      res.downtimeMs.push(q.result.downtimeMs);
      res.rounds.push(q.result.rounds);
    } else if (q?.lastSample) {
      res.streamBytes += q.lastSample.transferred; // how far a migration that never completed got
    }
    // The RAM check holds both ends paused: leave its time out of the guest's pause.
    if (q?.lastSourceHeartbeat && q.firstTargetHeartbeat) res.pauseMs.push(Math.round(q.firstTargetHeartbeat.at - q.lastSourceHeartbeat.at - (q.memoryCheckMs ?? 0)));
    if (q?.memoryCheck) res.lostPages.push(q.memoryCheck.mismatchCount);
  }
  return res;
}

const latest = new Map<string, { transferred: number; rounds: number }>();

/** Every relay session names the WanMigration that registered its flow (attribution by
 *  registration, not by time): printed per session; false if one does not. */
function relayAttribution(bed: WanBed, vms: string[]): boolean {
  let ok = true;
  for (const x of bed.relaySessions()) {
    const owner = x.migration ? `${x.migration.namespace}/${x.migration.name}` : 'NOBODY';
    if (!x.migration || !vms.some((vm) => x.migration!.name === `${vm}-to-site-b`)) ok = false;
    say(`relay session ${x.id}: flow to ${x.destination ?? x.target} -> WanMigration ${owner}; ${mb(x.bytesIn)} in, ${mb(x.wireBytes)} over the WAN`);
  }
  return ok;
}

/** SHA-256 of each relay session's input (sender) against its output (receiver): the relay's own
 *  byte-exactness, independent of the RAM check at switch-over. */
async function relayExactness(bed: WanBed, sessions: number): Promise<string> {
  const deadline = Date.now() + 5000;
  let c = bed.relayStreamCheck();
  while (c.compared < sessions && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 250));
    c = bed.relayStreamCheck();
  }
  const line = `${c.compared - c.mismatched.length}/${c.compared} relay sessions byte-exact (SHA-256 of the sender's input = the receiver's output)`;
  say(line);
  return line;
}

async function bootGuests(bed: WanBed, vms: string[]): Promise<void> {
  for (const vm of vms) await createGuestVM(bed.src, NS, vm, { workload, memoryMiB, disks });
  say(`created VirtualMachine(s) ${vms.join(', ')} in site-a: ${memoryMiB} MiB, workload ${v.workload}; booting QEMU (TCG) on ${bed.sites.a.nodes[0].name} (${bed.sites.a.nodes[0].ip}), a worker node of site A`);
  await waitFor(async () => {
    for (const vm of vms) {
      const vmi = await bed.src.tryGet<KubeObject & { status?: { phase?: string } }>(Res.vmi, NS, vm);
      if (vmi?.status?.phase !== 'Running') return false;
    }
    return true;
  }, { what: 'guests running', timeoutMs: 300_000, intervalMs: 500 });
  // Let the workload reach its steady state (memwriter fills its working set).
  await new Promise((r) => setTimeout(r, 3000));
  say('guest(s) running; heartbeat on the serial console');
}

const pad = (s: string, n: number): string => s.padEnd(n);
const median = (xs: number[]): string => {
  if (!xs.length) return '-';
  const s = [...xs].sort((x, y) => x - y);
  return String(s[Math.floor(s.length / 2)]);
};

async function main(): Promise<number> {
  say(`${qemuVersion()} (TCG), guest disks by ${process.env.CLOUDNET_DISK_TRANSPORT ?? 'nbd'}${process.env.CLOUDNET_QEMU_ROOT ? ', from hack/fetch-qemu.sh' : ''}`);
  say(`WAN: ${rateMbps} Mbit/s each way, RTT ${rttMs} ms (one-way delay ${rttMs / 2} ms), queue one RTT's worth; ` +
    'site A 192.0.2.0/24 (gateway node 192.0.2.1, WAN 203.0.113.1) <-> site B 198.51.100.0/24 (gateway node 198.51.100.1, WAN 203.0.113.2), WireGuard between the gateway nodes; workers node-2, node-3 in each site');
  const bed = await startWanBed({ rateBps: rateMbps * 1e6, rttMs, relay: true, log: say, onSample: (id, s) => latest.set(id, s) });
  let stopWatch: (() => void) | undefined;
  let code = 0;
  // Ctrl-C: tear down the same way as at the end (a second one exits at once; exit hooks still
  // remove namespaces and kill QEMU, relay, wanem and the API servers).
  let interrupted = false;
  const onSignal = (): void => {
    if (interrupted) process.exit(130);
    interrupted = true;
    say('interrupted: tearing down');
    stopWatch?.();
    void bed.stop().finally(() => process.exit(130));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    say(`clusters up: site-a ${bed.a.server} (operator, source), site-b ${bed.b.server} (target); Site site-b applied`);
    const letters = 'abcdefgh';
    const relayVms = Array.from({ length: vmCount }, (_, i) => `vm-${letters[i]}`);
    const plainVms = relayVms.map((n) => `${n}-plain`);
    await bootGuests(bed, relayVms);
    stopWatch = watchView(bed);
    const relayed = await migrateAll(bed, relayVms, 'relay');
    relayed.exact = await relayExactness(bed, relayVms.length);
    const attributed = relayAttribution(bed, relayVms);
    if (!attributed) code = 1;
    stopWatch();
    stopWatch = undefined;
    say('now the same guest(s) once more, plain (relay.enabled=false: nothing registered, the flows pass the gateway untouched), across the same WAN');
    await bootGuests(bed, plainVms);
    // A baseline that cannot converge (QEMU's block migration re-sends a whole 1 MiB chunk per
    // dirty disk sector) would run for the sample's 30 minutes: its WanMigration gets a memory
    // deadline instead, after which the operator rolls it back (the source keeps running).
    const baselineSeconds = Math.max(120, Math.ceil(5 * relayed.wallS));
    say(`baselines get a memory deadline of ${baselineSeconds} s (5 x the relay's time, at least 120 s)`);
    const plain = await migrateAll(bed, plainVms, 'plain', baselineSeconds);
    const others: RunResult[] = [];
    if (v.native) {
      for (const mode of ['multifd', 'xbzrle'] as const) {
        if (mode === 'multifd' && disks && bed.driver.diskTransport === 'block') { say('skipping multifd: QEMU cannot combine it with block migration of the disk'); continue; }
        say(`now the same guest(s) with ${MODE_LABEL[mode]}, straight across the same WAN`);
        const vms = relayVms.map((n) => `${n}-${mode}`);
        await bootGuests(bed, vms);
        others.push(await migrateAll(bed, vms, mode, baselineSeconds));
      }
    }
    console.log('\nSummary (same guest, same link):');
    const head = ['mode', 'VMs ok', 'time', 'WAN bytes', 'QEMU RAM bytes', 'WAN/plain', 'downtime (median)', 'rounds', 'heartbeat pause', 'lost pages'];
    const all = [relayed, plain, ...others];
    const rows = all.map((r) => [
      r.mode, `${r.ok}/${vmCount}`, `${r.wallS.toFixed(1)} s`, mb(r.wanBytes), mb(r.streamBytes),
      plain.ok === vmCount ? `${((100 * r.wanBytes) / plain.wanBytes).toFixed(1)}%` : 'n/a', `${median(r.downtimeMs)} ms`, r.rounds.join(','), `${median(r.pauseMs)} ms`, r.lostPages.join(',') || '-',
    ]);
    const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
    console.log(`| ${head.map((h, i) => pad(h, widths[i])).join(' | ')} |`);
    console.log(`|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`);
    for (const r of rows) console.log(`| ${r.map((c, i) => pad(c, widths[i])).join(' | ')} |`);
    console.log(`\nWorkload ${v.workload}, ${vmCount} x ${memoryMiB} MiB guest${disks ? ' + 16 MiB disk' : ''}, ${rateMbps} Mbit/s, ${rttMs} ms RTT.`);
    console.log('Lost pages: guest RAM pages that differed between the paused source and the loaded target at switch-over,\n' +
      'restored from the source before the target ran. QEMU before 9.0 loses guest writes in TCG migrations (fixed in 9.0,\n' +
      'commit 03bfc2188f); KubeVirt on KVM is not affected.');
    if (relayed.exact) console.log(`Relay: ${relayed.exact}; every session named its WanMigration: ${attributed ? 'yes' : 'NO'}.`);
    if (relayed.exact && !/^(\d+)\/\1 /.test(relayed.exact)) code = 1;
    // The exit status is CloudNet's: the relayed migrations. Baselines that failed show in the table.
    if (relayed.ok !== vmCount) code = 1;
  } finally {
    stopWatch?.();
    say('tearing down (operator, stand-ins, QEMU, relay, WireGuard, WAN, clusters)');
    await bed.stop();
    say('done');
  }
  return code;
}

process.exitCode = await main();
