// Site controller on real API servers: a reachable site is Ready (and says what was measured),
// bad credentials give a reason and an Event, and fixing the Secret heals the Site.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Res } from '../../src/api/resources.ts';
import { findCondition } from '../../src/api/conditions.ts';
import type { Site } from '../../src/api/site.ts';
import { ensure, OPERATOR_NS, useOperatorBed, waitForEvent, type Bed } from '../standin/harness.ts';
import { waitFor } from '../helpers/poll.ts';

let bed: Bed;
useOperatorBed((b) => { bed = b; });

const getSite = async (name: string) => (await bed.src.tryGet(Res.site, undefined, name)) as unknown as Site | undefined;

function waitForSite(name: string, status: string, reason: string): Promise<Site> {
  return waitFor(async () => {
    const s = await getSite(name);
    const c = findCondition(s?.status?.conditions, 'Ready');
    return c?.status === status && c.reason === reason ? s : undefined;
  }, { what: `Site ${name} Ready=${status} (${reason})`, timeoutMs: 15000 });
}

describe('Site', () => {
  test('the sample Site becomes Ready; without a link provider LinkReady says only the API was checked', async () => {
    const s = await waitForSite('site-b', 'True', 'Ready');
    const link = findCondition(s.status?.conditions, 'LinkReady');
    assert.equal(link?.status, 'True');
    assert.equal(link?.reason, 'ClusterAPIReachable');
    assert.match(link?.message ?? '', /no link provider configured/);
    assert.ok((s.status?.rttMs ?? -1) >= 0);
    assert.ok(s.status?.lastProbeTime);
    assert.equal(s.status?.observedGeneration, s.metadata.generation);
  });

  test('a missing kubeconfig Secret → KubeconfigSecretNotFound + Event; creating it heals the Site', async () => {
    await ensure(bed.src, Res.site, { metadata: { name: 'site-late' }, spec: { kubeconfigSecretRef: { namespace: OPERATOR_NS, name: 'late-kubeconfig' } } });
    await waitForSite('site-late', 'False', 'KubeconfigSecretNotFound');
    await waitForEvent(bed.src, 'default', 'site-late', 'KubeconfigSecretNotFound');
    await ensure(bed.src, Res.secret, { metadata: { name: 'late-kubeconfig', namespace: OPERATOR_NS }, stringData: { kubeconfig: bed.b.kubeconfigYaml } });
    await waitForSite('site-late', 'True', 'Ready');
    await waitForEvent(bed.src, 'default', 'site-late', 'Ready');
  });

  test('an invalid kubeconfig → KubeconfigInvalid; rotating the Secret to a valid one heals the Site', async () => {
    await ensure(bed.src, Res.secret, { metadata: { name: 'rot-kubeconfig', namespace: OPERATOR_NS }, stringData: { kubeconfig: 'nope: [' } });
    await ensure(bed.src, Res.site, { metadata: { name: 'site-rot' }, spec: { kubeconfigSecretRef: { namespace: OPERATOR_NS, name: 'rot-kubeconfig' } } });
    await waitForSite('site-rot', 'False', 'KubeconfigInvalid');
    await bed.src.patchMerge(Res.secret, OPERATOR_NS, 'rot-kubeconfig', { stringData: { kubeconfig: bed.b.kubeconfigYaml } });
    await waitForSite('site-rot', 'True', 'Ready');
  });

  test('an unreachable API server → ClusterUnreachable', async () => {
    const kc = bed.b.kubeconfigYaml.replace(/server: https:\/\/127\.0\.0\.1:\d+/, 'server: https://127.0.0.1:1');
    await ensure(bed.src, Res.secret, { metadata: { name: 'down-kubeconfig', namespace: OPERATOR_NS }, stringData: { kubeconfig: kc } });
    await ensure(bed.src, Res.site, { metadata: { name: 'site-down' }, spec: { kubeconfigSecretRef: { namespace: OPERATOR_NS, name: 'down-kubeconfig' } } });
    const s = await waitForSite('site-down', 'False', 'ClusterUnreachable');
    assert.equal(findCondition(s.status?.conditions, 'LinkReady')?.status, 'False');
  });
});
