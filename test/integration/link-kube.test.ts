// Issue 6 acceptance through the API: two clusters, each with a Site describing the other; the
// gateways run in cluster mode (keys in a Secret, state in ConfigMaps) over the emulated WAN, and
// the Site reconciler with the gateway link provider turns what they publish into Site.status.
// Each gateway runs as its chart ServiceAccount with only the chart's RBAC (no Secret but its key)
// and reads the peer cluster with its own narrow credential, a token for the peer's
// <release>-peer-gateway in a kubelet-style mounted file (--peer-kubeconfig) that appears only
// after the gateway started. Its /metrics is HTTPS and asks the API server: 401, 403, 200.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
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
import { userKubeconfig } from '../env/cluster.ts';
import { parseManifests } from '../env/manifests.ts';
import { nsExec } from '../env/netns.ts';
import { helmTemplate } from '../../hack/packaging.ts';
import { kubectlIn, serviceAccountUser, tokenKubeconfig } from './rbac-helpers.ts';
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

const RELEASE = 'cloudnet';
const METRICS_PORT = 9478;

/** The chart's RBAC of the site data plane for `self` (gateway, peer gateway, metrics review and reader roles), nothing else. */
function gatewayRbac(self: string, peer: string): Manifest[] {
  const rendered = helmTemplate(RELEASE, NS, ['crds.install=false', 'gateway.enabled=true', 'gateway.relay.enabled=false', 'routeAgent.enabled=false',
    `gateway.site=${self}`, `gateway.peers[0].site=${peer}`, 'gateway.peers[0].interface=cn0', 'gateway.peers[0].tunnelAddress=198.18.10.1/24',
    `gateway.peers[0].kubeconfigSecret=${peer}-gateway-kubeconfig`]);
  const rbac = ['ServiceAccount', 'Role', 'RoleBinding', 'ClusterRole', 'ClusterRoleBinding'];
  return parseManifests(rendered).filter((m) => rbac.includes(m.kind) && /gateway|metrics-(auth|reader)$/.test(m.metadata.name));
}

async function setupCluster(c: Cluster, peer: Cluster, site: Manifest, self: string): Promise<void> {
  await applyManifests(c, [siteCRD() as unknown as Manifest]);
  await createNamespace(c, NS);
  await applyManifests(c, [
    // The operator's credential for the peer (the Site's Secret): the gateways must not need it.
    { apiVersion: 'v1', kind: 'Secret', metadata: { name: `${site.metadata.name}-kubeconfig`, namespace: NS },
      data: { kubeconfig: Buffer.from(peer.kubeconfigYaml).toString('base64') } },
    site,
    ...gatewayRbac(self, site.metadata.name),
  ]);
}

/** Writes a file the way the kubelet updates a Secret volume: a new directory, then ..data swapped to it. */
function kubeletWrite(dir: string, n: number, text: string): void {
  mkdirSync(join(dir, `..ts_${n}`), { recursive: true });
  writeFileSync(join(dir, `..ts_${n}`, 'kubeconfig'), text, { mode: 0o400 });
  symlinkSync(`..ts_${n}`, join(dir, '..data_tmp'));
  renameSync(join(dir, '..data_tmp'), join(dir, '..data'));
  try { symlinkSync('..data/kubeconfig', join(dir, 'kubeconfig')); } catch { /* exists: it follows ..data */ }
}

/** GET over HTTPS from inside a network namespace (the gateway's host network), like a scraper skipping verification. */
async function scrapeIn(ns: string, path: string, token?: string): Promise<{ status: number; body: string }> {
  const script = `require('node:https').get({host:'127.0.0.1',port:${METRICS_PORT},path:${JSON.stringify(path)},rejectUnauthorized:false,`
    + `headers:${JSON.stringify(token ? { authorization: `Bearer ${token}` } : {})}},(r)=>{let b='';r.setEncoding('utf8');r.on('data',(d)=>b+=d);`
    + `r.on('end',()=>process.stdout.write(JSON.stringify({status:r.statusCode,body:b})));}).on('error',(e)=>{process.stdout.write(JSON.stringify({status:0,body:String(e)}));});`;
  return JSON.parse((await nsExec(ns, process.execPath, ['-e', script])).stdout) as { status: number; body: string };
}

test('applying two Site objects brings the link up: LinkReady=True with the emulated RTT, Secret-held keys, Events; a cut flips it', { timeout: 300_000 }, async (t) => {
  const [ca, cb] = await startClusters(2, ['site-a', 'site-b']);
  t.after(() => Promise.all([ca.stop(), cb.stop()]));
  // In cluster A the peer is site-b (B's gateway WAN address, tunnel address and LAN), and vice versa.
  await setupCluster(ca, cb, siteObject('site-b', SITE_B.gwWanIp, TUNNEL.b, SITE_B.lanCidr), 'site-a');
  await setupCluster(cb, ca, siteObject('site-a', SITE_A.gwWanIp, TUNNEL.a, SITE_A.lanCidr), 'site-b');

  // Each gateway acts in its own cluster as the chart's gateway ServiceAccount (a client
  // certificate with that identity: no kubelet mounts tokens here), and in the peer cluster with a
  // token for the peer's <release>-peer-gateway, mounted as the gateway Secret would be.
  const work = mkdtempSync(join(tmpdir(), 'cn-link-kube-'));
  t.after(() => rmSync(work, { recursive: true, force: true }));
  const gwUser = serviceAccountUser(NS, `${RELEASE}-gateway`);
  const ownKubeconfig = async (c: Cluster, side: string): Promise<string> => {
    const path = join(work, `${side}.gateway.kubeconfig`);
    writeFileSync(path, (await userKubeconfig(c, { user: gwUser.user, groups: gwUser.groups })).kubeconfigYaml, { mode: 0o600 });
    return path;
  };
  const [ka, kb] = [kubectlIn(ca, work), kubectlIn(cb, work)];
  // (tokenKubeconfig writes one path per ServiceAccount name: read each file before the next is made.)
  const peerTokenFor = (k: typeof ka, c: Cluster) => {
    const t = tokenKubeconfig(k, c, work, NS, `${RELEASE}-peer-gateway`);
    return { token: t.token, yaml: readFileSync(t.path, 'utf8') };
  };
  const peerToken = { a: peerTokenFor(kb, cb), b: peerTokenFor(ka, ca) };
  const peerDir = { a: join(work, 'a-peer-kubeconfig'), b: join(work, 'b-peer-kubeconfig') };
  mkdirSync(peerDir.a);
  mkdirSync(peerDir.b);
  kubeletWrite(peerDir.b, 1, peerToken.b.yaml); // a's file comes later
  // Scrapers in cluster A: one bound to the chart's metrics-reader role, one without it.
  ka.ok(['-n', NS, 'create', 'serviceaccount', 'prometheus']);
  ka.ok(['-n', NS, 'create', 'serviceaccount', 'stranger']);
  ka.ok(['create', 'clusterrolebinding', 'prometheus-gateway-metrics', `--clusterrole=${RELEASE}-metrics-reader`, `--serviceaccount=${NS}:prometheus`]);
  const readerToken = ka.ok(['-n', NS, 'create', 'token', 'prometheus']).trim();
  const strangerToken = ka.ok(['-n', NS, 'create', 'token', 'stranger']).trim();

  const ports = [ca, cb].map((c) => Number(new URL(c.server).port));
  const bed = await createLinkBed({
    wan: { delayMs: ONE_WAY_MS }, bridgePorts: ports, kubeconfigs: { a: await ownKubeconfig(ca, 'a'), b: await ownKubeconfig(cb, 'b') },
    extraA: ['--peer-kubeconfig', join(peerDir.a, 'kubeconfig'), '--metrics-port', String(METRICS_PORT), '--node-address', SITE_A.gwWanIp],
    extraB: ['--peer-kubeconfig', join(peerDir.b, 'kubeconfig')],
  });
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

  // Without its peer credential gateway a cannot learn b's key: it says so, and the link stays down.
  await waitFor(() => bed.a.stderr().includes('reading peer gateway state failed') && bed.a.stderr().includes(`kubeconfig file ${join(peerDir.a, 'kubeconfig')}: ENOENT`),
    { what: 'gateway a to report the missing peer kubeconfig', timeoutMs: 60_000, intervalMs: 250, diagnostics: diag });
  assert.notEqual(linkCond(await siteB())?.status, 'True');
  // The Secret appears (the kubelet's atomic update): the gateway picks it up without a restart.
  kubeletWrite(peerDir.a, 1, peerToken.a.yaml);

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

  for (const tok of [peerToken.a.token, peerToken.b.token]) {
    assert.ok(!bed.a.stderr().includes(tok) && !bed.b.stderr().includes(tok), 'the gateway log must not contain its peer token');
  }

  // /metrics and /status: HTTPS on the gateway's host network, the API server decides who reads.
  const noToken = await scrapeIn(bed.sites.a.gwNs, '/metrics');
  assert.equal(noToken.status, 401, noToken.body);
  assert.doesNotMatch(noToken.body, /cloudnet_link/);
  assert.equal((await scrapeIn(bed.sites.a.gwNs, '/status')).status, 401);
  const stranger = await scrapeIn(bed.sites.a.gwNs, '/metrics', strangerToken);
  assert.equal(stranger.status, 403, stranger.body);
  assert.match(stranger.body, new RegExp(`system:serviceaccount:${NS}:stranger`));
  const reader = await scrapeIn(bed.sites.a.gwNs, '/metrics', readerToken);
  assert.equal(reader.status, 200, reader.body);
  assert.match(reader.body, /cloudnet_link_up\{site="site-a",peer="site-b"\} 1/);
  assert.equal((await scrapeIn(bed.sites.a.gwNs, '/status', readerToken)).status, 403, 'metrics-reader allows /metrics only');
  assert.deepEqual(await scrapeIn(bed.sites.a.gwNs, '/healthz'), { status: 200, body: 'ok' }, '/healthz is open and says nothing more');

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
