// A repro loop for the operator's graceful shutdown (not a test file: run it by hand when the
// shutdown changes). One API server with the chart installed and a Site whose kubeconfig points at
// the same cluster (so the controllers build a remote client and remote caches), then N rounds of
// what operator-image.test.ts does at its end: two replicas, SIGTERM the leader, and SIGTERM the
// standby right after it took the Lease over (controllers starting, caches syncing, reconciles in
// flight: the window where shutdown raced). Each replica's exit code, time to exit and last lines
// are recorded; a replica not gone after --hang-ms is reported as a hang, with its
// process.getActiveResourcesInfo() (CLOUDNET_SHUTDOWN_DIAG=1 makes the operator log it), then killed.
//
//   node test/integration/operator-shutdown-loop.ts [--rounds 20] [--hang-ms 30000] [--delay-ms 0]
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import { startCluster, userKubeconfig } from '../env/cluster.ts';
import { installKubevirtCrds } from '../env/manifests.ts';
import { cachedTool, chartDir, repoRoot, runHelm } from '../../hack/packaging.ts';
import { waitFor } from '../helpers/poll.ts';

const NS = 'cloudnet-system';
const RELEASE = 'cloudnet';
const { values } = parseArgs({ options: {
  rounds: { type: 'string', default: '20' }, 'hang-ms': { type: 'string', default: '30000' }, 'delay-ms': { type: 'string', default: '0' },
} });
const rounds = Number(values.rounds);
const hangMs = Number(values['hang-ms']);
const delayMs = Number(values['delay-ms']);

interface Replica { name: string; proc: ChildProcess; exited: Promise<number | null>; logs: string[] }

const work = mkdtempSync(join(tmpdir(), 'cloudnet-shutdown-loop-'));
const cluster = await startCluster({ name: 'shutdown-loop' });
const kubectl = (args: string[], input?: string): string => {
  const r = spawnSync(cachedTool('kubectl'), ['--kubeconfig', cluster.kubeconfigPath, '--cache-dir', join(work, 'kube-cache'), ...args], { encoding: 'utf8', input, timeout: 60_000 });
  if (r.status !== 0) throw new Error(`kubectl ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
};
const leaseHolder = () => kubectl(['-n', NS, 'get', 'lease', '-o', `jsonpath={.items[?(@.metadata.name=="${RELEASE}")].spec.holderIdentity}`]).trim();
const results: Array<{ round: number; role: string; code: number | null | 'hang'; ms: number; leaseAfter?: string }> = [];
try {
  kubectl(['create', 'namespace', 'kubevirt']);
  const h = runHelm(['install', RELEASE, chartDir, '--namespace', NS, '--create-namespace', '--kubeconfig', cluster.kubeconfigPath, '--set', 'gateway.enabled=false']);
  if (h.status !== 0) throw new Error(h.stderr);
  kubectl(['wait', '--for=condition=Established', '--timeout=60s', 'crd/wanmigrations.cloudnet.io', 'crd/sites.cloudnet.io']);
  await installKubevirtCrds(cluster);
  kubectl(['-n', NS, 'create', 'secret', 'generic', 'site-b-kubeconfig', `--from-file=kubeconfig=${cluster.kubeconfigPath}`]);
  kubectl(['apply', '-f', '-'], JSON.stringify({ apiVersion: 'cloudnet.io/v1alpha1', kind: 'Site', metadata: { name: 'site-b' },
    spec: { kubeconfigSecretRef: { namespace: NS, name: 'site-b-kubeconfig', key: 'kubeconfig' } } }));
  kubectl(['apply', '-f', '-'], JSON.stringify({ apiVersion: 'cloudnet.io/v1alpha1', kind: 'WanMigration', metadata: { name: 'probe', namespace: 'default' },
    spec: { vmName: 'no-such-vm', targetSite: 'site-b', targetNamespace: 'default' } }));
  const sa = await userKubeconfig(cluster, { user: `system:serviceaccount:${NS}:${RELEASE}`, groups: ['system:serviceaccounts', `system:serviceaccounts:${NS}`, 'system:authenticated'] });
  const kubeconfig = join(work, 'sa.kubeconfig');
  writeFileSync(kubeconfig, sa.kubeconfigYaml);

  const launch = (name: string): Replica => {
    const proc = spawn(join(repoRoot, 'node_modules', '.bin', 'node'), [join(repoRoot, 'src', 'cli.ts'), 'operator', '--leader-elect', `--leader-election-id=${RELEASE}`,
      '--metrics-bind-address=127.0.0.1:0', '--health-probe-bind-address=127.0.0.1:0', '--graceful-shutdown-timeout=25s',
      '--kubeconfig', kubeconfig, '--lease-duration=4s', '--renew-deadline=3s', '--retry-period=500ms'], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: work, POD_NAMESPACE: NS, POD_NAME: name, LOG_LEVEL: 'debug', CLOUDNET_SHUTDOWN_DIAG: '1', ...(process.env.REPRO_NODE_OPTIONS ? { NODE_OPTIONS: process.env.REPRO_NODE_OPTIONS } : {}) },
    });
    const r: Replica = { name, proc, exited: new Promise((res) => proc.once('exit', (code) => res(code))), logs: [] };
    for (const s of [proc.stdout, proc.stderr]) {
      let buf = '';
      s?.setEncoding('utf8');
      s?.on('data', (d: string) => {
        buf += d;
        const lines = buf.split('\n');
        buf = lines.pop() ?? '';
        r.logs.push(...lines.filter(Boolean));
      });
    }
    return r;
  };
  const stop = async (r: Replica, round: number, role: string) => {
    const t0 = Date.now();
    r.proc.kill('SIGTERM');
    let timer: NodeJS.Timeout | undefined;
    const code = await Promise.race([r.exited, new Promise<'hang'>((res) => { timer = setTimeout(() => res('hang'), hangMs); })]);
    clearTimeout(timer);
    const ms = Date.now() - t0;
    results.push({ round, role, code, ms, leaseAfter: role === 'last' ? leaseHolder() : undefined });
    if (code !== 0) {
      console.log(`\n=== round ${round} ${role} ${r.name}: ${code} after ${ms} ms; last lines:`);
      console.log(r.logs.slice(-40).join('\n'));
      if (code === 'hang') {
        r.proc.kill('SIGKILL');
        await r.exited;
      }
    }
    console.log(`round ${round} ${role}: ${code} in ${ms} ms`);
  };
  const shortLogs = (rs: Replica[]) => () => rs.map((r) => `${r.name}:\n${r.logs.slice(-15).join('\n')}`).join('\n');

  for (let round = 1; round <= rounds; round++) {
    const a = launch(`a-${round}`);
    await waitFor(() => leaseHolder().startsWith(`a-${round}_`), { what: 'a to lead', timeoutMs: 30_000, intervalMs: 100, diagnostics: shortLogs([a]) });
    // Let the first leader reconcile (remote client and caches up), as in the image test.
    await waitFor(() => a.logs.some((l) => l.includes('built cluster client')), { what: 'a to build the site-b client', timeoutMs: 30_000, intervalMs: 100, diagnostics: shortLogs([a]) });
    const b = launch(`b-${round}`);
    await waitFor(() => b.logs.some((l) => l.includes('operator started')), { what: 'b started', timeoutMs: 30_000, intervalMs: 100, diagnostics: shortLogs([b]) });
    await sleep(1000);
    await stop(a, round, 'leader');
    await waitFor(() => leaseHolder().startsWith(`b-${round}_`), { what: 'b to take over', timeoutMs: 30_000, intervalMs: 100, diagnostics: shortLogs([a, b]) });
    if (delayMs) await sleep(delayMs);
    await stop(b, round, 'last');
  }
} finally {
  const bad = results.filter((r) => r.code !== 0);
  console.log(`\nSUMMARY: ${results.length} shutdowns, ${results.length - bad.length} clean (exit 0), `
    + `${bad.filter((r) => r.code === 'hang').length} hung, ${bad.filter((r) => r.code !== 'hang').length} non-zero exits; `
    + `lease left held after the last replica: ${results.filter((r) => r.role === 'last' && r.leaseAfter).length}`);
  console.log(JSON.stringify(results));
  await cluster.stop();
  rmSync(work, { recursive: true, force: true });
}
