// The Site planner (src/controller/site/plan.ts): which link provider calls to make, and the
// status, Event and requeue that follow from what was read and what the provider said. Pure.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { describeDenied, planSite, planSiteSteps } from '../../../src/controller/site/plan.ts';
import { migrationsUsing, type SiteFacts } from '../../../src/controller/site/observe.ts';
import { peerAccessChecks } from '../../../src/api/peer-permissions.ts';
import type { WanMigration } from '../../../src/api/wanmigration.ts';
import type { Site, SiteStatus } from '../../../src/api/site.ts';
import { findCondition } from '../../../src/api/conditions.ts';
import { T0 } from './fixtures.ts';

function site(status?: SiteStatus, probeIntervalSeconds?: number): Site {
  return {
    metadata: { name: 'site-b', generation: 2 },
    spec: { kubeconfigSecretRef: { namespace: 'cloudnet-system', name: 'b' }, ...(probeIntervalSeconds ? { wan: { probeIntervalSeconds } } : {}) },
    ...(status ? { status } : {}),
  };
}

const up: SiteFacts['api'] = { ok: true, server: 'https://b:6443', rttMs: 1.5 };
const down: SiteFacts['api'] = { ok: false, reason: 'ClusterUnreachable', message: 'connect ECONNREFUSED' };
const facts = (o: Partial<SiteFacts> = {}): SiteFacts => ({
  now: T0, site: site(), api: up, providers: { link: true, linkProbe: true }, deleting: false, hasFinalizer: true, usedBy: [], access: { denied: [] }, ...o,
});
const cond = (st: SiteStatus | undefined, t: string) => findCondition(st?.conditions, t);

describe('planSiteSteps', () => {
  test('the provider is asked (ensure, then probe) only when the peer API answered', () => {
    assert.deepEqual(planSiteSteps(facts()).map((s) => s.type), ['EnsureLink', 'ProbeLink']);
    assert.deepEqual(planSiteSteps(facts({ providers: { link: true, linkProbe: false } })).map((s) => s.type), ['EnsureLink']);
    assert.deepEqual(planSiteSteps(facts({ api: down })), []);
    assert.deepEqual(planSiteSteps(facts({ providers: { link: false, linkProbe: false } })), []);
  });
});

describe('planSite', () => {
  test('no link provider: ready on the API round trip, and LinkReady says that is all it means', () => {
    const p = planSite(facts({ providers: { link: false, linkProbe: false } }), {});
    assert.equal(p.status?.rttMs, 1.5);
    assert.equal(p.status?.lastProbeTime, T0.toISOString());
    assert.equal(p.status?.observedGeneration, 2);
    assert.equal(cond(p.status, 'Ready')?.status, 'True');
    assert.match(cond(p.status, 'LinkReady')?.message ?? '', /not a WAN data-plane measurement/);
    assert.deepEqual(p.events.map((e) => [e.type, e.reason]), [['Normal', 'Ready']]);
    assert.equal(p.requeueAfterMs, 30_000);
  });

  test('a link provider: its report and measurements go into the status', () => {
    const p = planSite(facts(), { link: { state: 'Progressing', reason: 'Connecting', message: 'handshake' }, measurements: { rttMs: 40, bandwidthBps: 1e8 } });
    assert.equal(cond(p.status, 'LinkReady')?.reason, 'Connecting');
    assert.equal(cond(p.status, 'Ready')?.status, 'False');
    assert.deepEqual([p.status?.rttMs, p.status?.bandwidthBps], [40, 1e8]);
    assert.deepEqual(p.events.map((e) => [e.type, e.reason]), [['Warning', 'Connecting']]);
    assert.equal(p.requeueAfterMs, 15_000, 'not ready: the shorter retry');
  });

  test('an unreachable peer, or a provider that threw, makes both conditions False with that reason', () => {
    for (const [f, r] of [[facts({ api: down }), {}], [facts(), { failure: { reason: 'ClusterUnreachable', message: 'connect ECONNREFUSED' } }]] as const) {
      const p = planSite(f, r);
      assert.equal(cond(p.status, 'Ready')?.reason, 'ClusterUnreachable');
      assert.equal(cond(p.status, 'LinkReady')?.reason, 'ClusterUnreachable');
      assert.equal(p.status?.rttMs, undefined);
    }
    assert.equal(planSite(facts({ api: down }), {}).status?.lastProbeTime, undefined, 'no answer, no probe time');
  });

  test('nothing changed and no new probe: no write, no Event', () => {
    const first = planSite(facts({ api: down }), {});
    const again = planSite(facts({ api: down, site: site(first.status) }), {});
    assert.equal(again.status, undefined);
    assert.deepEqual(again.events, []);
  });

  test('a short probe interval bounds the not-ready retry too', () => {
    assert.equal(planSite(facts({ api: down, site: site(undefined, 5) }), {}).requeueAfterMs, 5000);
    assert.equal(planSite(facts({ api: down }), {}, { notReadyRetryMs: 500 }).requeueAfterMs, 500);
  });
});

describe('permissions in the peer', () => {
  const checks = peerAccessChecks('kubevirt', ['vms']);
  const denied = checks.filter((c) => c.resource === 'virtualmachines' || c.resource === 'namespaces');

  test('all granted: Ready, and the message says the rights were checked', () => {
    const p = planSite(facts({ providers: { link: false, linkProbe: false } }), {});
    assert.equal(cond(p.status, 'Ready')?.status, 'True');
    assert.match(cond(p.status, 'Ready')?.message ?? '', /every right the operator needs/);
  });

  test('rights missing: Ready=False PeerPermissionsMissing naming them; LinkReady keeps its own verdict', () => {
    const p = planSite(facts({ providers: { link: false, linkProbe: false }, access: { denied } }), {});
    const ready = cond(p.status, 'Ready');
    assert.equal(ready?.status, 'False');
    assert.equal(ready?.reason, 'PeerPermissionsMissing');
    assert.equal(ready?.message, 'the credentials in Secret cloudnet-system/b lack rights the operator needs on https://b:6443: '
      + 'namespaces (get); virtualmachines.kubevirt.io (get, list, watch, create, delete) in namespace vms');
    assert.equal(cond(p.status, 'LinkReady')?.status, 'True');
    assert.deepEqual(p.events.map((e) => [e.type, e.reason]), [['Warning', 'PeerPermissionsMissing']]);
    assert.equal(p.requeueAfterMs, 15_000);
  });

  test('a long list is cut, with a count', () => {
    const many = peerAccessChecks('kubevirt', Array.from({ length: 20 }, (_, i) => `ns${i}`));
    assert.match(describeDenied(many), /; and \d+ more$/);
  });

  test('the review itself failing is a reason of its own', () => {
    const p = planSite(facts({ access: { denied: [], failure: { reason: 'PeerPermissionsUnknown', message: 'HTTP 403' } } }), {});
    assert.equal(cond(p.status, 'Ready')?.reason, 'PeerPermissionsUnknown');
  });
});

describe('finalizer and deletion', () => {
  test('a Site without the finalizer gets it', () => {
    assert.equal(planSite(facts({ hasFinalizer: false }), {}).finalizer, 'Add');
    assert.equal(planSite(facts(), {}).finalizer, undefined);
  });

  test('deleted while started migrations need it: deferred, Ready=False DeletionDeferred naming them, a Warning Event', () => {
    const f = facts({ deleting: true, usedBy: ['team-a/mig'], providers: { link: false, linkProbe: false } });
    const p = planSite(f, {});
    assert.equal(p.finalizer, undefined, 'the finalizer stays');
    assert.equal(cond(p.status, 'Ready')?.reason, 'DeletionDeferred');
    assert.match(cond(p.status, 'Ready')?.message ?? '', /team-a\/mig/);
    assert.deepEqual(p.events.map((e) => [e.type, e.reason]), [['Warning', 'DeletionDeferred']]);
    assert.equal(p.requeueAfterMs, 15_000);
    assert.deepEqual(planSiteSteps(f), []);
  });

  test('deleted and no longer needed: the finalizer goes, nothing else is written', () => {
    const p = planSite(facts({ deleting: true, usedBy: [] }), {});
    assert.equal(p.finalizer, 'Remove');
    assert.equal(p.status, undefined);
    assert.deepEqual(p.events, []);
    assert.deepEqual(planSiteSteps(facts({ deleting: true, usedBy: [] })), []);
  });

  test('only started, unfinished migrations to this Site count as users', () => {
    const m = (name: string, site: string, status?: WanMigration['status']): WanMigration => ({
      metadata: { name, namespace: 'ns' }, spec: { vmName: 'vm', targetSite: site, targetNamespace: 'ns' }, ...(status ? { status } : {}),
    });
    const users = migrationsUsing('site-b', [
      m('running', 'site-b', { phase: 'MigratingMemory', migrationID: 'u1' }),
      m('rolling-back', 'site-b', { phase: 'RollingBack', migrationID: 'u2' }),
      m('pending', 'site-b', { phase: 'Pending' }),
      m('done', 'site-b', { phase: 'Succeeded', migrationID: 'u3' }),
      m('failed', 'site-b', { phase: 'Failed', migrationID: 'u4' }),
      m('elsewhere', 'site-c', { phase: 'MigratingMemory', migrationID: 'u5' }),
    ]);
    assert.deepEqual(users, ['ns/rolling-back', 'ns/running']);
  });
});
