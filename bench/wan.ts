// WAN benchmark (issue 5, benchmark b): real QEMU (TCG) live migrations from site A to site B of
// the emulated WAN (test/env/wan.ts), side by side in one run:
//   plain         QEMU's default single-connection stream;
//   xbzrle        QEMU's XBZRLE delta compression (cache size set);
//   multifd-zstd  QEMU's multifd with zstd (QEMU will not combine it with XBZRLE);
//   relay         plain QEMU stream through the CloudNet relay pair (sender in A, receiver in B).
// "Best native" is the better of xbzrle and multifd-zstd, chosen per workload and per metric.
// Every mode gets the same raised max-bandwidth and the same downtime-limit, and the same timeout;
// a run that does not converge within it is cancelled and reported as such. Then the CloudNet
// scenario: several VMs migrating at once (plain vs relay; the relay pair shares one cache).
//
//   npm run bench:wan [-- --profiles 100m50,1g10,unshaped --workloads idle,memwriter,sqlload
//                         --modes plain,xbzrle,multifd-zstd,relay --mem-mib 512 --timeout-s 120
//                         --multi-vms 4 --multi-mem-mib 256 --multi-modes plain,xbzrle,multifd-zstd,relay --no-multi
//                         --repeat 3 --downtime-ms 300 --pin --quick --out bench/results/wan.json]
//   --repeat N: every cell N times, interleaved (all cells of a link once, then again), so that a
//   drift in the shared machine's load hits every mode alike; the table shows each figure's median.
//   --relay-bypass-mbit N: the sender's --bypass-above-mbit (default 1500; 0: always through the
//   relay). On a link probed that fast the relay lets the flows bypass it, as at a site gateway, and
//   the relay cell is a plain migration marked "bypassed".
//   --update: keep the rows already in the output file and replace those this run measures again
//   npm run bench:wan -- --report bench/results/wan.json   (table of a saved run)
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { qemuVersion } from '../src/qemu/process.ts';
import { createGuestLab } from '../test/env/qemu.ts';
import { createSites, type SitesOptions } from '../test/env/wan.ts';
import { makePki } from '../test/integration/relay-helpers.ts';
import { compare, medianRows, table, targetsSummary } from './lib/wan-report.ts';
import { MODES, runCell, serialTails, type CellOptions, type CellRow, type Mode, type WorkloadDef } from './lib/wan-run.ts';

const { values: args } = parseArgs({
  options: {
    profiles: { type: 'string' }, workloads: { type: 'string' }, modes: { type: 'string' }, 'mem-mib': { type: 'string' },
    'timeout-s': { type: 'string' }, 'downtime-ms': { type: 'string' }, 'warmup-s': { type: 'string' },
    'multi-vms': { type: 'string' }, 'multi-mem-mib': { type: 'string' }, 'multi-modes': { type: 'string' }, 'no-multi': { type: 'boolean' },
    'relay-cache-mb': { type: 'string' }, 'relay-level': { type: 'string' }, 'relay-window-mb': { type: 'string' }, 'relay-bypass-mbit': { type: 'string' }, pin: { type: 'boolean' }, quick: { type: 'boolean' },
    out: { type: 'string' }, update: { type: 'boolean' }, repeat: { type: 'string' }, report: { type: 'string' }, help: { type: 'boolean', short: 'h' },
  },
});

const PROFILES: Record<string, { label: string; sites: SitesOptions }> = {
  '100m50': { label: '100 Mbit/s, 50 ms RTT', sites: { rateBps: 100e6, delayMs: 25 } },
  // gso: at 1 Gbit/s wanem's per-packet work is the first limit (see test/env/wan.ts).
  '1g10': { label: '1 Gbit/s, 10 ms RTT', sites: { rateBps: 1e9, delayMs: 5, gso: true } },
  // wanem's fastest: no rate limit, no delay (what the emulator itself forwards on this machine).
  unshaped: { label: 'unshaped (wanem, no rate limit or delay)', sites: { gso: true } },
};

// memwriter: a realistic mix of page kinds in a 64 MiB working set rewritten at 12 MB/s (the guest
// image's defaults, guest/README.md); sqlload: SQLite on a RAM database (its defaults).
const WORKLOADS: Record<string, WorkloadDef> = {
  idle: { spec: { name: 'idle' }, ready: /HB \d+/ },
  memwriter: { spec: { name: 'memwriter', params: { 'wss-mb': 64, 'dirty-mbps': 12, mix: 'zero:20,dup:20,random:20,text:40' } }, ready: /MW READY/ },
  sqlload: { spec: { name: 'sqlload' }, ready: /SQL \d+/ },
};
// The multi-VM scenario: smaller guests with a lighter writer each, so that N of them fit the two
// cores and the link (N × 12 MB/s of dirtying would exceed 100 Mbit/s in every mode).
const MULTI: WorkloadDef = { spec: { name: 'memwriter', params: { 'wss-mb': 32, 'dirty-mbps': 3, mix: 'zero:20,dup:20,random:20,text:40' } }, ready: /MW READY/ };

if (args.help) {
  console.log(fs.readFileSync(import.meta.filename, 'utf8').split('\n').filter((l) => l.startsWith('//')).map((l) => l.slice(3)).join('\n'));
  process.exit(0);
}

if (args.report) {
  // Table and targets from a results file, e.g. of a run that was cut short (rows are saved as they finish).
  const saved = JSON.parse(fs.readFileSync(args.report, 'utf8')) as { rows: CellRow[]; settings: { timeoutS: number } };
  console.log(table(saved.rows, saved.settings.timeoutS));
  for (const l of targetsSummary(saved.rows)) console.log(`- ${l}`);
  process.exit(0);
}

const quick = Boolean(args.quick);
const list = (v: string | undefined, dflt: string): string[] => (v ?? dflt).split(',').map((x) => x.trim()).filter(Boolean);
const profiles = list(args.profiles, quick ? '100m50' : '100m50,1g10');
const workloads = list(args.workloads, quick ? 'memwriter' : 'idle,memwriter,sqlload');
const modes = list(args.modes, MODES.join(',')) as Mode[];
const multiModes = list(args['multi-modes'], MODES.join(',')) as Mode[];
const repeat = Math.max(1, Number(args.repeat ?? (quick ? 1 : 3)));
for (const m of [...modes, ...multiModes]) if (!MODES.includes(m)) throw new Error(`unknown mode ${m} (${MODES.join(', ')})`);
for (const p of profiles) if (!PROFILES[p]) throw new Error(`unknown profile ${p} (${Object.keys(PROFILES).join(', ')})`);
for (const w of workloads) if (!WORKLOADS[w]) throw new Error(`unknown workload ${w} (${Object.keys(WORKLOADS).join(', ')})`);
const memMiB = Number(args['mem-mib'] ?? (quick ? 256 : 512));
const timeoutS = Number(args['timeout-s'] ?? (quick ? 60 : 120));
const multiVms = args['no-multi'] ? 0 : Number(args['multi-vms'] ?? (quick ? 2 : 4));
const multiMemMiB = Number(args['multi-mem-mib'] ?? (quick ? 128 : 256));
const settings = {
  downtimeLimitMs: Number(args['downtime-ms'] ?? 300),
  // Far above either link: the link, not QEMU's default 128 MiB/s cap, must be the limit.
  maxBandwidthBps: 10 * 1024 ** 3,
  xbzrleCacheMiB: 0, // per cell: a quarter of guest RAM (QEMU's own default is 64 MiB)
  multifdChannels: 2,
  multifdZstdLevel: 1,
  relayCacheMiB: Number(args['relay-cache-mb'] ?? 256),
  relayLevel: args['relay-level'] ?? 'auto',
  relayWindowMiB: args['relay-window-mb'] ? Number(args['relay-window-mb']) : undefined,
  // The relay lets flows bypass it on a link probed faster than this (its default 1500; 0: never).
  relayBypassMbit: args['relay-bypass-mbit'] !== undefined ? Number(args['relay-bypass-mbit']) : undefined,
  // Source guests on core 0, destination guests on core 1, relays on the core of their site's QEMU.
  pin: args.pin ? { source: '0', destination: '1', sender: '0', receiver: '1' } : undefined,
  warmupMs: Number(args['warmup-s'] ?? 3) * 1000,
  timeoutMs: timeoutS * 1000,
};

const root = path.resolve(import.meta.dirname, '..');
const outFile = args.out ?? path.join(root, 'bench', 'results', 'wan.json');
// Which QEMU ran the migrations (qemuTree(): the cached QEMU 10 unless CLOUDNET_QEMU_ROOT says
// otherwise; Debian's 7.2 loses guest writes under TCG, and its guests panic now and then).
const machine = { cpu: os.cpus()[0]?.model, cores: os.cpus().length, memGiB: Math.round(os.totalmem() / 2 ** 30), node: process.version, accel: 'tcg', qemu: qemuVersion(), freePageReporting: freePageReporting() };
const rows: CellRow[] = args.update && fs.existsSync(outFile) ? (JSON.parse(fs.readFileSync(outFile, 'utf8')) as { rows: CellRow[] }).rows : [];
const sameCell = (a: CellRow, b: CellRow): boolean => a.profile === b.profile && a.workload === b.workload && a.mode === b.mode && a.vms === b.vms && (a.run ?? 0) === (b.run ?? 0);
const started = new Date().toISOString();
const loadavg: number[][] = [];

function save(): void {
  fs.mkdirSync(path.dirname(outFile), { recursive: true });
  fs.writeFileSync(outFile, JSON.stringify({
    started, finished: new Date().toISOString(), machine, loadavg, settings: { ...settings, memMiB, multiVms, multiMemMiB, timeoutS, repeat, workloads: { ...WORKLOADS, multi: MULTI } },
    profiles: Object.fromEntries(profiles.map((p) => [p, PROFILES[p]])), rows: medianRows(rows), runs: rows, comparisons: compare(medianRows(rows)), targets: targetsSummary(medianRows(rows)),
  }, (_k, v: unknown) => (v instanceof RegExp ? v.source : v), 1));
}

console.log(`[bench:wan] machine: ${machine.cpu}, ${machine.cores} cores, ${machine.memGiB} GiB, node ${machine.node}, ${machine.qemu} (TCG), free page reporting ${machine.freePageReporting}; load average ${os.loadavg().map((l) => l.toFixed(1)).join(' ')}; ${repeat} run(s) of each cell, interleaved, medians reported`);
const pki = makePki();
try {
  for (const p of profiles) {
    const sites = await createSites(PROFILES[p].sites);
    const lab = createGuestLab('cloudnet-bench-wan-');
    try {
      type Cell = Omit<CellOptions, 'sites' | 'lab' | 'pki' | 'profile' | keyof typeof settings>;
      const single: Cell[] = [];
      const multi: Cell[] = [];
      for (const w of workloads) for (const mode of modes) single.push({ workload: w, def: WORKLOADS[w], mode, vms: 1, memMiB });
      if (multiVms > 0) for (const mode of multiModes) multi.push({ workload: 'memwriter-light', def: MULTI, mode, vms: multiVms, memMiB: multiMemMiB });
      // Each run starts the modes one further on. The cell right after the multi-VM cells finds
      // their guests' memory just freed and not yet handed back to the host (free page
      // reporting, see freePageReporting): its destination QEMU faulted its guest's pages in for
      // 0.11-0.12 CPU-s on the unshaped link, against ~0.5 s in any other place, whatever the
      // mode (plain and XBZRLE alike). With a fixed order plain always had that place.
      for (let run = 0; run < repeat; run++) for (const c of [...rotated(single, run), ...rotated(multi, run)]) {
        const cell: CellOptions = { ...settings, ...c, xbzrleCacheMiB: Math.max(64, c.memMiB / 4), sites, lab, pki, profile: p, attempt: run ? 10 * run : undefined };
        // A guest that dies while booting (seen once under heavy load) is a set-up failure, not a
        // result: one retry.
        const attempt = (): Promise<CellRow> => runCell(cell).catch((err: unknown): CellRow => ({
            profile: p, workload: c.workload, mode: c.mode, vms: c.vms, memMiB: c.memMiB, completed: 0, converged: false,
            totalTimeMs: Number.NaN, memTimeMs: Number.NaN, downtimeMs: Number.NaN, rounds: Number.NaN, wanBytes: 0, wanBytesReturn: 0,
            ramTransferredBytes: 0, cpuSeconds: { sourceQemu: 0, destinationQemu: 0, relays: 0, wanem: 0 }, alive: 0,
            errors: [`setup: ${err instanceof Error ? err.message : String(err)} serial: ${serialTails(cell)}`],
          }));
        let row = await attempt();
        if (row.errors[0]?.startsWith('setup:')) {
          console.log(`[bench:wan] ${p} ${c.workload} ${c.mode} ×${c.vms}: set-up failed, retrying once: ${row.errors[0].slice(0, 1500)}`);
          cell.attempt = 10 * run + 1;
          row = await attempt();
        }
        row.run = run;
        row.loadAvg1 = Math.round(os.loadavg()[0] * 10) / 10;
        const previous = rows.findIndex((r) => sameCell(r, row));
        if (previous >= 0) rows.splice(previous, 1, row);
        else rows.push(row);
        loadavg.push(os.loadavg());
        const conv = row.converged ? `total ${(row.totalTimeMs / 1000).toFixed(1)} s, mem ${(row.memTimeMs / 1000).toFixed(1)} s, downtime ${row.downtimeMs} ms (heartbeat gap ${row.heartbeatGapMs ?? '-'} ms), rounds ${row.rounds}` : `did not converge in ${timeoutS} s`;
        const shed = row.relay?.roundModes ? ` modes by round ${JSON.stringify(row.relay.roundModes.map((rs) => rs.map((m) => Object.keys(m).join('+'))))}` : '';
        // Where the stream went: each technique's share of the stream bytes (zero, dedup, delta, literal...).
        const by = Object.entries(row.relay?.techniques ?? {}).filter(([, v]) => v.rawBytes > 0);
        const streamBytes = by.reduce((n, [, v]) => n + v.rawBytes, 0);
        const techniques = by.length ? ` stream by technique ${by.map(([t, v]) => `${t} ${Math.round(100 * v.rawBytes / streamBytes)}%`).join(', ')}` : '';
        console.log(`[bench:wan] ${p} run ${run + 1}/${repeat} ${c.workload} ${c.mode} ×${c.vms}: ${conv}${shed}${techniques}, WAN ${(row.wanBytes / 1e6).toFixed(1)} MB, CPU QEMU ${(row.cpuSeconds.sourceQemu + row.cpuSeconds.destinationQemu).toFixed(1)} s` +
          `${c.mode === 'relay' ? (row.relay?.bypassed ? ' relay bypassed (the link outruns it)' : ` relays ${row.cpuSeconds.relays.toFixed(1)} s, exact ${row.relay?.exact}`) : ''}, alive ${row.alive}/${c.vms}, load ${os.loadavg()[0].toFixed(1)}${row.errors.length ? ` errors: ${row.errors.join('; ')}` : ''}`);
        save();
      }
    } finally {
      await lab.destroy();
      await sites.destroy();
    }
  }
} finally {
  pki.cleanup();
}

console.log(`\nmachine: ${machine.cpu}, ${machine.cores} cores, ${machine.memGiB} GiB, ${machine.qemu} (TCG); load average during the run ${loadavg.map((l) => l[0].toFixed(1)).join(' ')}; medians of ${repeat} interleaved run(s)`);
console.log(`settings: downtime-limit ${settings.downtimeLimitMs} ms and max-bandwidth ${settings.maxBandwidthBps / 1024 ** 3} GiB/s for every mode, timeout ${timeoutS} s, ` +
  `XBZRLE cache ¼ of guest RAM, multifd ${settings.multifdChannels} channels zstd-${settings.multifdZstdLevel}, relay cache ${settings.relayCacheMiB} MiB level ${settings.relayLevel}, bypass above ${settings.relayBypassMbit ?? 1500} Mbit/s, pinned: ${settings.pin ? 'yes' : 'no'}\n`);
console.log(table(medianRows(rows), timeoutS));
console.log('');
for (const l of targetsSummary(medianRows(rows))) console.log(`- ${l}`);
save();
console.log(`wrote ${path.relative(root, outFile)}`);
process.exitCode = rows.some((r) => r.mode === 'relay' && (!r.converged || r.relay?.exact === false || r.alive < r.vms)) ? 1 : 0;

/** `list` started at its `k`-th element (mod its length), wrapping around. */
function rotated<T>(list: readonly T[], k: number): T[] {
  const n = list.length;
  return n ? list.map((_, i) => list[(i + k) % n]!) : [];
}

/**
 * Whether this (virtual) machine hands freed memory back to its host (virtio-balloon free page
 * reporting, from blocks of 2^order pages): memory touched again then costs a host fault too, and
 * a destination QEMU clearing its guest's pages on first touch pays it in every mode. Memory freed
 * moments before (the multi-VM cells' guests) is not reported yet, hence the rotated cell order.
 */
function freePageReporting(): string {
  try {
    return `on (order ${fs.readFileSync('/sys/module/page_reporting/parameters/page_reporting_order', 'utf8').trim()})`;
  } catch {
    return 'off';
  }
}
