// Ratios, targets and the printed table of the WAN benchmark.
import type { CellRow, Mode } from './wan-run.ts';

const NATIVE: readonly Mode[] = ['xbzrle', 'multifd-zstd'];

export interface Comparison {
  profile: string;
  workload: string;
  vms: number;
  /** The native mode with the fewest WAN bytes / the shortest memory-migration time among those
   *  that converged: relay is compared with the better of the two on each metric separately. */
  bestNativeByBytes?: Mode;
  bestNativeByTime?: Mode;
  relayBytesVsPlain?: number;
  relayBytesVsBestNative?: number;
  relayMemTimeVsPlain?: number;
  relayMemTimeVsBestNative?: number;
  relayDowntimeMs?: number;
  plainDowntimeMs?: number;
  /** Plain did not converge: its bytes and time are lower bounds, so the ratios vs plain are upper bounds. */
  plainCapped: boolean;
}

function best(rows: CellRow[], key: (r: CellRow) => number): CellRow | undefined {
  return rows.filter((r) => r.converged).sort((a, b) => key(a) - key(b))[0];
}

export function compare(rows: readonly CellRow[]): Comparison[] {
  const groups = new Map<string, CellRow[]>();
  for (const r of rows) {
    const k = `${r.profile}|${r.workload}|${r.vms}`;
    groups.set(k, [...(groups.get(k) ?? []), r]);
  }
  return [...groups.values()].map((g) => {
    const plain = g.find((r) => r.mode === 'plain');
    const relay = g.find((r) => r.mode === 'relay');
    const natives = g.filter((r) => NATIVE.includes(r.mode));
    const nb = best(natives, (r) => r.wanBytes);
    const nt = best(natives, (r) => r.memTimeMs);
    const ok = relay?.converged;
    const ratio = (a: number | undefined, b: number | undefined): number | undefined => (ok && a !== undefined && b ? a / b : undefined);
    return {
      profile: g[0].profile, workload: g[0].workload, vms: g[0].vms,
      bestNativeByBytes: nb?.mode, bestNativeByTime: nt?.mode,
      relayBytesVsPlain: ratio(relay?.wanBytes, plain?.wanBytes),
      relayBytesVsBestNative: ratio(relay?.wanBytes, nb?.wanBytes),
      // A plain run that did not converge ran for the whole timeout: compare with that.
      relayMemTimeVsPlain: ratio(relay?.memTimeMs, plain ? (plain.converged ? plain.memTimeMs : plain.totalTimeMs) : undefined),
      relayMemTimeVsBestNative: ratio(relay?.memTimeMs, nt?.memTimeMs),
      relayDowntimeMs: relay?.downtimeMs, plainDowntimeMs: plain?.converged ? plain.downtimeMs : undefined,
      plainCapped: plain !== undefined && !plain.converged,
    };
  });
}

/** Relay bytes over the workload mix (sum over single-VM workloads of one profile). */
export function mixRatios(rows: readonly CellRow[], profile: string): { vsPlain?: number; vsBestNative?: number } {
  const single = rows.filter((r) => r.profile === profile && r.vms === 1);
  const workloads = [...new Set(single.map((r) => r.workload))];
  let relay = 0; let plain = 0; let native = 0; let complete = true;
  for (const w of workloads) {
    const g = single.filter((r) => r.workload === w);
    const rr = g.find((r) => r.mode === 'relay');
    const pr = g.find((r) => r.mode === 'plain');
    const nb = best(g.filter((r) => NATIVE.includes(r.mode)), (r) => r.wanBytes);
    if (!rr?.converged || !pr || !nb) { complete = false; continue; }
    relay += rr.wanBytes; plain += pr.wanBytes; native += nb.wanBytes;
  }
  return complete && relay ? { vsPlain: relay / plain, vsBestNative: relay / native } : {};
}

const pct = (x: number | undefined): string => (x === undefined ? '-' : `${(100 * x).toFixed(0)}%`);
const s = (ms: number): string => (Number.isFinite(ms) ? (ms / 1000).toFixed(1) : '-');

export function table(rows: readonly CellRow[], timeoutS: number): string {
  const cmp = compare(rows);
  const lines = [
    '| link | workload | VMs | mode | done | total s | mem. migration s | downtime ms | heartbeat gap ms | rounds | WAN MB (A→B) | vs plain | vs best native | CPU QEMU s | CPU relays s | alive | stream exact |',
    '|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|',
  ];
  const order = (r: CellRow): string => `${r.profile}|${r.vms}|${r.workload}|${['plain', 'xbzrle', 'multifd-zstd', 'relay'].indexOf(r.mode)}`;
  for (const r of [...rows].sort((a, b) => order(a).localeCompare(order(b)))) {
    const c = cmp.find((x) => x.profile === r.profile && x.workload === r.workload && x.vms === r.vms);
    const plain = rows.find((x) => x.profile === r.profile && x.workload === r.workload && x.vms === r.vms && x.mode === 'plain');
    const nb = rows.find((x) => x.profile === r.profile && x.workload === r.workload && x.vms === r.vms && x.mode === c?.bestNativeByBytes);
    const vsPlain = plain && r.mode !== 'plain' && r.converged ? r.wanBytes / plain.wanBytes : undefined;
    const vsNative = nb && r.mode === 'relay' && r.converged ? r.wanBytes / nb.wanBytes : undefined;
    const total = r.converged ? s(r.totalTimeMs) : `>${timeoutS} (did not converge)`;
    lines.push(`| ${r.profile} | ${r.workload} | ${r.vms}×${r.memMiB} MiB | ${r.mode} | ${r.completed}/${r.vms} | ${total} | ${r.converged ? s(r.memTimeMs) : '-'} | ` +
      `${r.converged ? r.downtimeMs : '-'} | ${r.heartbeatGapMs ?? '-'} | ${Number.isFinite(r.rounds) ? r.rounds : '-'} | ${(r.wanBytes / 1e6).toFixed(1)} | ${pct(vsPlain)}${c?.plainCapped && vsPlain !== undefined ? ' (plain capped)' : ''} | ` +
      `${pct(vsNative)} | ${(r.cpuSeconds.sourceQemu + r.cpuSeconds.destinationQemu).toFixed(1)} | ${r.mode === 'relay' ? r.cpuSeconds.relays.toFixed(1) : '-'} | ` +
      `${r.alive}/${r.vms} | ${r.relay ? (r.relay.bypassed ? 'bypassed' : r.relay.exact ? 'yes' : 'NO') : '-'} |`);
  }
  return lines.join('\n');
}

export function targetsSummary(rows: readonly CellRow[]): string[] {
  const out: string[] = [];
  for (const profile of [...new Set(rows.map((r) => r.profile))]) {
    const mix = mixRatios(rows, profile);
    if (mix.vsPlain !== undefined) {
      out.push(`${profile}: workload mix, relay WAN bytes = ${pct(mix.vsPlain)} of plain (target ≤ 40%) and ${pct(mix.vsBestNative)} of best native (target ≤ 70%)`);
    }
    for (const c of compare(rows).filter((x) => x.profile === profile)) {
      if (c.relayBytesVsPlain === undefined) { out.push(`${profile} ${c.workload} ×${c.vms}: relay did not converge (or was not run)`); continue; }
      const natives = rows.filter((r) => r.profile === profile && r.workload === c.workload && r.vms === c.vms && NATIVE.includes(r.mode));
      const timeTarget = profile.startsWith('100m') ? ' (target ≤ 30%)' : '';
      out.push(`${profile} ${c.workload} ×${c.vms}: bytes ${pct(c.relayBytesVsPlain)} of plain${c.plainCapped ? ' (plain capped at the timeout: upper bound)' : ''}, ` +
        `${pct(c.relayBytesVsBestNative)} of best native (${c.bestNativeByBytes ?? (natives.length ? 'none converged' : 'not run')}); memory-migration time ${pct(c.relayMemTimeVsPlain)} of plain${timeTarget}, ` +
        `${pct(c.relayMemTimeVsBestNative)} of best native (${c.bestNativeByTime ?? '-'}); downtime relay ${c.relayDowntimeMs ?? '-'} ms vs plain ${c.plainDowntimeMs ?? '-'} ms`);
    }
  }
  return out;
}

const median = (xs: number[]): number => {
  const v = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (!v.length) return Number.NaN;
  return v.length % 2 ? v[v.length >> 1] : (v[v.length / 2 - 1] + v[v.length / 2]) / 2;
};

/**
 * One row per cell (link, workload, VMs, mode) from repeated runs: the median of each figure over
 * the runs (times, downtime, bytes, CPU), `completed`/`alive` the worst run's, `converged` only if
 * every run converged, exactness only if every run was exact.
 */
export function medianRows(rows: readonly CellRow[]): CellRow[] {
  const groups = new Map<string, CellRow[]>();
  for (const r of rows) {
    const k = `${r.profile}|${r.workload}|${r.vms}|${r.mode}`;
    groups.set(k, [...(groups.get(k) ?? []), r]);
  }
  return [...groups.values()].map((g) => {
    const m = (f: (r: CellRow) => number): number => median(g.map(f));
    const gaps = g.map((r) => r.heartbeatGapMs ?? Number.NaN);
    return {
      ...g[0],
      completed: Math.min(...g.map((r) => r.completed)),
      converged: g.every((r) => r.converged),
      totalTimeMs: m((r) => r.totalTimeMs), memTimeMs: m((r) => r.memTimeMs), downtimeMs: m((r) => r.downtimeMs),
      heartbeatGapMs: gaps.some(Number.isFinite) ? Math.round(median(gaps)) : undefined,
      rounds: m((r) => r.rounds), wanBytes: m((r) => r.wanBytes), wanBytesReturn: m((r) => r.wanBytesReturn),
      ramTransferredBytes: m((r) => r.ramTransferredBytes),
      cpuSeconds: {
        sourceQemu: m((r) => r.cpuSeconds.sourceQemu), destinationQemu: m((r) => r.cpuSeconds.destinationQemu),
        relays: m((r) => r.cpuSeconds.relays), wanem: m((r) => r.cpuSeconds.wanem),
      },
      alive: Math.min(...g.map((r) => r.alive)),
      loadAvg1: m((r) => r.loadAvg1 ?? Number.NaN),
      relay: g[0].relay ? { ...g[0].relay, bypassed: g.every((r) => r.relay?.bypassed) ? g[0].relay.bypassed : undefined, exact: g.every((r) => r.relay?.exact === true), streamBytes: m((r) => r.relay?.streamBytes ?? Number.NaN), relayLinkBytes: m((r) => r.relay?.relayLinkBytes ?? Number.NaN) } : undefined,
      errors: g.flatMap((r) => r.errors),
      run: undefined,
      runs: g.length,
    } as CellRow & { runs: number };
  });
}
