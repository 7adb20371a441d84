// Reading a few numbers out of a Prometheus text exposition (the operator's /metrics): a gauge's
// value and a histogram's quantile (from its cumulative buckets, linear within a bucket).

export function gaugeValue(text: string, name: string): number | undefined {
  const m = new RegExp(`^${name} (\\S+)$`, 'm').exec(text);
  return m ? Number(m[1]) : undefined;
}

/** The q-quantile of histogram `name` whose labels include `labels` (e.g. 'controller="wanmigration"'); summed over other labels. */
export function histogramQuantile(text: string, name: string, q: number, labels = ''): number | undefined {
  const buckets = new Map<number, number>();
  const re = new RegExp(`^${name}_bucket\\{([^}]*)\\} (\\S+)$`, 'gm');
  for (const m of text.matchAll(re)) {
    if (labels && !m[1].includes(labels)) continue;
    const le = /le="([^"]+)"/.exec(m[1])?.[1];
    if (le === undefined) continue;
    const bound = le === '+Inf' ? Infinity : Number(le);
    buckets.set(bound, (buckets.get(bound) ?? 0) + Number(m[2]));
  }
  const sorted = [...buckets].sort((a, b) => a[0] - b[0]);
  const total = sorted.at(-1)?.[1] ?? 0;
  if (!total) return undefined;
  const rank = q * total;
  let prevBound = 0;
  let prevCount = 0;
  for (const [bound, count] of sorted) {
    if (count >= rank) {
      if (!Number.isFinite(bound)) return prevBound;
      return prevBound + ((rank - prevCount) / Math.max(1, count - prevCount)) * (bound - prevBound);
    }
    prevBound = bound;
    prevCount = count;
  }
  return prevBound;
}
