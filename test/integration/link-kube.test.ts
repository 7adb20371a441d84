// Issue 6 acceptance through the API: two clusters, each with a Site describing the other; the
// gateways run in cluster mode (keys in a Secret, state in ConfigMaps, peer read through the
// Site's kubeconfig) over the emulated WAN, and the Site reconciler with the gateway link
// provider turns what they publish into Site.status.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { siteCRD } from '../../src/api/crds.ts';
import { findCondition } from '../../src/api/conditions.ts';
import type { Site } from '../../src/api/site.ts';
import { siteClustersFrom } from '../../src/controller/site-clusters.ts';
import { SiteReconciler } from '../../src/controller/site.ts';
import { Res } from '../../src/api/resources.ts';
import { KubeClient, Resources } from '../../src/kube/client.ts';
import { ClusterClients } from '../../src/kube/clusters.ts';
import type { KubeObject } from '../../src/kube/rest.ts';
import { readGatewayState } from '../../src/link/kube.ts';
import { GatewayLinkProvider } from '../../src/link/provider.ts';
import { logger } from '../../src/util/log.ts';
import { applyManifests, createNamespace, startClusters, type Cluster, type Manifest } from '../env/index.ts';
import { SITE_A, SITE_B } from '../env/wan.ts';
import { createLinkBed, TUNNEL, WG_PORT } from './link-bed.ts';
import { waitFor } from '../helpers/poll.ts';

const NS = 'cloudnet-system';
const ONE_WAY_MS = 50;

function siteObject(name: string, peerWanIp: string, tunnel: string, lan: string): Manifest {
  return {
    apiVersion: 'cloudnet.io/v1alpha1', kind: 'Site', metadata: { name },
    spec: {
      kubeconfigSecretRef: { namespace: NS, name: `${name}-kubeconfig` },
      gateway: { endpoint: `${peerWanIp}:${WG_PORT}`, tunnelAddress: tunnel },
      networks: [lan],
      wan: { probeIntervalSeconds: 1 },
    },
  };
}

async function setupCluster(c: Cluster, peer: Cluster, site: Manifest): Promise<void> {
  await applyManifests(c, [siteCRD() as unknown as Manifest]);
  await createNamespace(c, NS);
  await applyManifests(c, [
    { apiVersion: 'v1', kind: 'Secret', metadata: { name: `${site.metadata.name}-kubeconfig`, namespace: NS },
      data: { kubeconfig: Buffer.from(peer.kubeconfigYaml).toString('base64') } },
    site,
  ]);
}

test('applying two Site objects brings the link up: LinkReady=True with the emulated RTT, Secret-held keys, Events; a cut flips it', { timeout: 300_000 }, async (t) => {
  const [ca, cb] = await startClusters(2, ['site-a', 'site-b']);
  t.after(() => Promise.all([ca.stop(), cb.stop()]));
  // In cluster A the peer is site-b (B's gateway WAN address, tunnel address and LAN), and vice versa.
  await setupCluster(ca, cb, siteObject('site-b', SITE_B.gwWanIp, TUNNEL.b, SITE_B.lanCidr));
  await setupCluster(cb, ca, siteObject('site-a', SITE_A.gwWanIp, TUNNEL.a, SITE_A.lanCidr));

  const ports = [ca, cb].map((c) => Number(new URL(c.server).port));
  const bed = await createLinkBed({ wan: { delayMs: ONE_WAY_MS }, bridgePorts: ports, kubeconfigs: { a: ca.kubeconfigPath, b: cb.kubeconfigPath } });
  t.after(() => bed.stop());

  const localA = new KubeClient(ca.kubeConfig);
  const clustersA = new ClusterClients({ local: localA });
  t.after(() => clustersA.stop());
  const events: string[] = [];
  const reconciler = new SiteReconciler({
    local: localA,
    clusters: siteClustersFrom(clustersA, NS),
    events: { event: (_o, type, reason) => { events.push(`${type}/${reason}`); } },
    link: new GatewayLinkProvider({ client: localA, namespace: NS }),
  });
  const ctrl = new AbortController();
  t.after(() => ctrl.abort());
  const ctx = { log: logger('link-kube-test'), reconcileID: 'test', signal: ctrl.signal };
  const siteB = async (): Promise<Site> => {
    await reconciler.reconcile({ name: 'site-b' }, ctx);
    return (await localA.get<KubeObject>(Res.site, undefined, 'site-b')) as unknown as Site;
  };
  const linkCond = (s: Site) => findCondition(s.status?.conditions, 'LinkReady');
  const diag = (): string => `gateway a:\n${bed.a.stderr().slice(-2500)}\ngateway b:\n${bed.b.stderr().slice(-2500)}`;
  const pollSite = (pred: (s: Site) => boolean, what: string, timeoutMs: number): Promise<Site> => {
    let last: Site | undefined;
    return waitFor(async () => {
      last = await siteB();
      return pred(last) && last;
    }, { what, timeoutMs, intervalMs: 500, diagnostics: () => `LinkReady=${JSON.stringify(last && linkCond(last))}\n${diag()}` });
  };

  const t0 = Date.now();
  await pollSite((s) => linkCond(s)?.status === 'True', 'Site site-b LinkReady=True', 120_000);
  t.diagnostic(`LinkReady=True ${Date.now() - t0} ms after the gateways started`);
  await new Promise((r) => setTimeout(r, 11_000)); // a full RTT window of steady-state probes
  const up = await siteB();
  const want = 2 * ONE_WAY_MS;
  t.diagnostic(`Site.status: rttMs ${up.status?.rttMs} (emulated ${want}), lossRatio ${up.status?.lossRatio}, bandwidthBps ${up.status?.bandwidthBps}; ${linkCond(up)?.message}`);
  assert.equal(linkCond(up)?.status, 'True');
  assert.equal(linkCond(up)?.reason, 'LinkUp');
  assert.equal(findCondition(up.status?.conditions, 'Ready')?.status, 'True');
  assert.ok(up.status?.rttMs !== undefined && Math.abs(up.status.rttMs - want) <= 0.1 * want, `rttMs ${up.status?.rttMs} not within 10% of ${want}`);

  // Keys: the private key lives only in the Secret; the published state carries the public one.
  const secret = await localA.get<KubeObject & { data?: Record<string, string> }>(Resources.secret, NS, 'cloudnet-gateway-key');
  const sk = Buffer.from(secret.data?.['private-key'] ?? '', 'base64').toString('utf8');
  const pub = execFileSync('wg', ['pubkey'], { input: `${sk}\n`, encoding: 'utf8' }).trim();
  const stateA = await readGatewayState(localA, NS, 'site-b');
  assert.equal(stateA?.publicKey, pub);
  const cm = await localA.get<KubeObject & { data?: Record<string, string> }>(Resources.configMap, NS, 'cloudnet-gateway-site-b');
  assert.ok(!JSON.stringify(cm).includes(sk), 'the ConfigMap must not contain the private key');
  assert.ok(!bed.a.stderr().includes(sk) && !bed.b.stderr().includes(sk), 'the gateway log must not contain the private key');

  // Link state changes are Events about the Site.
  const evs = await localA.list<KubeObject & { reason?: string; involvedObject?: { kind?: string; name?: string } }>(Resources.coreEvent, 'default');
  assert.ok(evs.items.some((e) => e.reason === 'LinkUp' && e.involvedObject?.kind === 'Site' && e.involvedObject.name === 'site-b'),
    `events: ${evs.items.map((e) => e.reason).join(',')}`);

  // Cut the WAN: the Site goes LinkReady=False naming the peer as unreachable; restoring recovers.
  await bed.sites.setLink({ down: true });
  const cut = await pollSite((s) => linkCond(s)?.status === 'False', 'LinkReady=False after the cut', 30_000);
  assert.equal(linkCond(cut)?.reason, 'PeerUnreachable');
  assert.equal(findCondition(cut.status?.conditions, 'Ready')?.status, 'False');
  await bed.sites.setLink({ down: false });
  await pollSite((s) => linkCond(s)?.status === 'True', 'LinkReady=True after restoring', 30_000);
  assert.ok(events.includes('Warning/PeerUnreachable') && events.includes('Normal/Ready'), events.join(','));

  // Rotation on request through the Site annotation: the Secret and the published key move together.
  const before = (await readGatewayState(localA, NS, 'site-b'))?.publicKey;
  await localA.patchMerge(Res.site, undefined, 'site-b', { metadata: { annotations: { 'cloudnet.io/rotate-gateway-key': String(Date.now()) } } });
  const after = await waitFor(async () => {
    const st = await readGatewayState(localA, NS, 'site-b');
    return st && st.publicKey !== before && !st.nextPublicKey && st.publicKey;
  }, { what: 'gateway a to rotate its key', timeoutMs: 30_000, intervalMs: 250, diagnostics: diag });
  const rotated = await localA.get<KubeObject & { data?: Record<string, string> }>(Resources.secret, NS, 'cloudnet-gateway-key');
  const sk2 = Buffer.from(rotated.data?.['private-key'] ?? '', 'base64').toString('utf8');
  assert.equal(execFileSync('wg', ['pubkey'], { input: `${sk2}\n`, encoding: 'utf8' }).trim(), after);
  assert.equal(rotated.data?.['next-private-key'], undefined, 'the finished rotation leaves no next key behind');
  await pollSite((s) => linkCond(s)?.status === 'True', 'LinkReady=True after the rotation', 30_000);
});
