// Routing between two multi-node sites: each site has a gateway node (WireGuard to the peer) and
// two worker nodes with no default route, a pod subnet per node routed inside the site (the bed
// plays the CNI). The route agent (`cloudnet route-agent`, the chart's DaemonSet on non-gateway
// nodes) routes the peer site's networks via the gateway node; with it, a pod address on site A's
// node-2 reaches one on site B's node-2, through both gateways and the tunnel. Without it, nothing
// leaves the site; once it stops, its routes are gone.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import path from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { createSites, type SiteInfo } from '../env/wan.ts';
import { createWireGuard } from '../env/wireguard.ts';
import { runTransfer, startSink } from '../env/tcp-probe.ts';

const NODE = path.resolve('node_modules/.bin/node');
const CLI = path.resolve('src/cli.ts');

function waitForLine(p: ChildProcess, re: RegExp, ms: number): Promise<void> {
  return new Promise((resolve, reject) => {
    let buf = '';
    const timer = setTimeout(() => reject(new Error(`no ${re} within ${ms} ms: ${buf.slice(-1000)}`)), ms);
    p.stderr!.on('data', (c: Buffer) => { buf += c.toString(); if (re.test(buf)) { clearTimeout(timer); resolve(); } });
    p.once('exit', (code) => { clearTimeout(timer); reject(new Error(`exited (${code}): ${buf.slice(-1000)}`)); });
  });
}

test('pod addresses on two sites\' worker nodes reach each other through the gateways, with the route agent', { timeout: 120_000 }, async (t) => {
  const sites = await createSites({ workers: 2, nodeRoutes: 'agent', podNetworks: true, delayMs: 2 });
  const wg = await createWireGuard(sites);
  const agents: ChildProcess[] = [];
  t.after(async () => {
    for (const p of agents) p.kill('SIGKILL');
    await wg.destroy();
    await sites.destroy();
  });
  const [a2, b2] = [sites.a.nodes[0], sites.b.nodes[0]];
  assert.equal(a2.name, 'node-2');
  const ping = (from: typeof a2, to: string) => sites.exec(from.ns, 'ping', ['-n', '-c', '2', '-i', '0.2', '-W', '1', '-I', from.podIp!, to], { allowFail: true });

  assert.notEqual((await ping(a2, b2.podIp!)).code, 0, 'without the route agent no peer network is reachable from a worker');

  const startAgent = async (site: SiteInfo, peer: SiteInfo, ns: string): Promise<ChildProcess> => {
    const p = sites.spawn(ns, NODE, [CLI, 'route-agent', '--via', site.gwLanIp, ...peer.networks.flatMap((n) => ['--network', n]), '--interval-ms', '500'],
      { env: { ...process.env, LOG_LEVEL: 'info' }, stdio: ['ignore', 'ignore', 'pipe'] });
    agents.push(p);
    await waitForLine(p, /route agent ready/, 20_000);
    return p;
  };
  for (const [site, peer] of [[sites.a, sites.b], [sites.b, sites.a]] as const) {
    for (const n of site.nodes) await startAgent(site, peer, n.ns);
  }

  const r = await ping(a2, b2.podIp!);
  assert.equal(r.code, 0, `pod ${a2.podIp} on A's node-2 -> pod ${b2.podIp} on B's node-2: ${r.stdout}${r.stderr}`);
  // TCP between worker nodes of the two sites, across nodes that are not the first ones either.
  const sink = await startSink(sites.b.nodes[1].ns, 45100, { hash: true });
  try {
    const x = await runTransfer(sites.a.nodes[1].ns, sites.b.nodes[1].ip, 45100, 1 << 20, { hash: true, rttSamples: 0 });
    assert.equal(x.sha256Match, true);
    assert.equal(x.sinkRemote, sites.a.nodes[1].ip, 'routed, not translated');
  } finally {
    await sink.stop();
  }
  const routes = (await sites.exec(a2.ns, 'ip', ['route', 'show', 'proto', '211'])).stdout;
  for (const n of sites.b.networks) assert.match(routes, new RegExp(`${n.replace(/[./]/g, '\\$&')} via ${sites.a.gwLanIp.replace(/\./g, '\\.')}`), routes);

  // Stopping the agent removes its routes (and only its own).
  const first = agents[0];
  first.kill('SIGTERM');
  await new Promise((res) => first.once('exit', res));
  await delay(200);
  assert.equal((await sites.exec(a2.ns, 'ip', ['route', 'show', 'proto', '211'])).stdout.trim(), '');
  assert.match((await sites.exec(a2.ns, 'ip', ['route', 'show'])).stdout, /pods0/, 'the node\'s own routes stay');
});
