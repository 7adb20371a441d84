// WAN emulator self-test: configured vs achieved TCP throughput and RTT across the two-site
// namespace topology, plain and through wireguard-go, plus wanem's own CPU cost.
//
//   npm run bench:wan-selftest            (node bench/wan-selftest.ts [--quick])
//
// Throughput is TCP goodput in the steady part of a bounded transfer (after 30% of the bytes);
// its ceiling on a rate-limited link is rate × payload/packet (1448/1500 plain, 1368/1480 in
// WireGuard with a 1420 inner MTU). RTT is the median of 10 pings (kernel receive timestamps) on
// the idle link; the median TCP connect time is shown next to it.
import { mkdirSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createSites, pingRtt } from '../test/env/wan.ts';
import { createWireGuard } from '../test/env/wireguard.ts';
import { runTransfer, startSink } from '../test/env/tcp-probe.ts';

interface Case {
  name: string;
  rateBps: number; // 0 = unlimited
  rttMs: number;
  bytes: number;
  wireguard: boolean;
  /** Allow offload super-packets under the rate limit. */
  gso?: boolean;
  /**
   * Whether the 5% acceptance applies. Only the issue's acceptance case: at 1 Gbit/s and through
   * wireguard-go the endpoints' CPU (two cores shared with everything else) limits first.
   */
  check: boolean;
}

const quick = process.argv.includes('--quick');
const MB = 1e6;
const cases: Case[] = [
  { name: 'plain 100M/50ms', rateBps: 100e6, rttMs: 50, bytes: 40 * MB, wireguard: false, check: true },
  { name: 'plain 1G/10ms', rateBps: 1e9, rttMs: 10, bytes: (quick ? 150 : 300) * MB, wireguard: false, check: false },
  { name: 'plain 1G/10ms gso', rateBps: 1e9, rttMs: 10, bytes: (quick ? 150 : 300) * MB, wireguard: false, check: false, gso: true },
  { name: 'plain unlimited/0ms', rateBps: 0, rttMs: 0, bytes: (quick ? 300 : 1000) * MB, wireguard: false, check: false },
  { name: 'wg 100M/50ms', rateBps: 100e6, rttMs: 50, bytes: 40 * MB, wireguard: true, check: false },
  { name: 'wg unlimited/0ms', rateBps: 0, rttMs: 0, bytes: (quick ? 150 : 400) * MB, wireguard: true, check: false },
];

interface Row {
  name: string;
  configured: string;
  rttMs: number;
  tcpConnectMs: number;
  steadyMbps: number;
  wholeMbps: number;
  ceilingMbps: number | null;
  rateErrPct: number | null;
  rttErrPct: number | null;
  wanemCpuPct: number;
  seconds: number;
  pass: boolean | null;
}

async function runCase(c: Case): Promise<Row> {
  const sites = await createSites({ rateBps: c.rateBps, delayMs: c.rttMs / 2, gso: c.gso });
  try {
    const wg = c.wireguard ? await createWireGuard(sites) : undefined;
    const sink = await startSink(sites.b.nodeNs, 5201);
    // Warm the tunnel's handshake so it does not count as RTT.
    if (wg) await runTransfer(sites.a.nodeNs, sites.b.nodeIp, 5201, 1000, { rttSamples: 1 });
    const ping = await pingRtt(sites.a.nodeNs, sites.b.nodeIp, 10);
    const cpu0 = sites.wanemCpuSeconds();
    const r = await runTransfer(sites.a.nodeNs, sites.b.nodeIp, 5201, c.bytes, { rttSamples: 7, timeoutMs: 300_000 });
    const cpu = sites.wanemCpuSeconds() - cpu0;
    await sink.stop();
    await wg?.destroy();
    // Headers per packet: a 64 KiB super-packet (gso) carries one IP+TCP header, not 44.
    const share = c.wireguard ? 1368 / 1480 : c.gso ? (65536 - 52) / 65536 : 1448 / 1500;
    const ceiling = c.rateBps > 0 ? c.rateBps * share : null;
    const rateErr = ceiling ? (r.steadyBps - ceiling) / ceiling : null;
    const rttErr = c.rttMs > 0 ? (ping.medianMs - c.rttMs) / c.rttMs : null;
    return {
      name: c.name,
      configured: c.rateBps > 0 ? `${c.rateBps / 1e6} Mbit/s, ${c.rttMs} ms` : `unlimited, ${c.rttMs} ms`,
      rttMs: ping.medianMs,
      tcpConnectMs: r.rttMedianMs,
      steadyMbps: r.steadyBps / 1e6,
      wholeMbps: r.goodputBps / 1e6,
      ceilingMbps: ceiling ? ceiling / 1e6 : null,
      rateErrPct: rateErr === null ? null : rateErr * 100,
      rttErrPct: rttErr === null ? null : rttErr * 100,
      wanemCpuPct: (cpu / (r.elapsedMs / 1000)) * 100,
      seconds: r.elapsedMs / 1000,
      pass: c.check ? Math.abs(rateErr ?? 0) <= 0.05 && Math.abs(rttErr ?? 0) <= 0.05 : null,
    };
  } finally {
    await sites.destroy();
  }
}

const fmt = (x: number | null, d = 2): string => (x === null ? '-' : x.toFixed(d));
const rows: Row[] = [];
for (const c of cases) {
  const row = await runCase(c);
  rows.push(row);
  console.error(`${row.name}: steady ${fmt(row.steadyMbps)} Mbit/s, RTT ${fmt(row.rttMs)} ms`);
}

console.log('| case | configured | ping RTT ms (err %) | TCP connect ms | steady goodput Mbit/s | ceiling (err %) | incl. slow start | wanem CPU % of a core | s | 5% check |');
console.log('|---|---|---|---|---|---|---|---|---|---|');
for (const r of rows) {
  console.log(
    `| ${r.name} | ${r.configured} | ${fmt(r.rttMs)} (${fmt(r.rttErrPct, 1)}) | ${fmt(r.tcpConnectMs)} | ${fmt(r.steadyMbps, 1)} | ` +
      `${fmt(r.ceilingMbps, 1)} (${fmt(r.rateErrPct, 1)}) | ${fmt(r.wholeMbps, 1)} | ${fmt(r.wanemCpuPct, 0)} | ${fmt(r.seconds, 1)} | ` +
      `${r.pass === null ? '-' : r.pass ? 'pass' : 'FAIL'} |`,
  );
}
const resultsDir = join(dirname(fileURLToPath(import.meta.url)), 'results');
mkdirSync(resultsDir, { recursive: true });
const out = join(resultsDir, 'wan-selftest.json');
writeFileSync(out, JSON.stringify({ bench: 'wan-selftest', date: new Date().toISOString(), loadavg: loadavg(), rows }, null, 2) + '\n');
console.log(`written to ${out}`);
process.exitCode = rows.some((r) => r.pass === false) ? 1 : 0;
