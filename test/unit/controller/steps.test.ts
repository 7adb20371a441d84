// The planner's provider steps (phases/steps.ts): which provider calls a reconcile makes, and what
// plan() is told when a provider was not asked or does not exist. Pure, like plan.test.ts.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { conflictWith, planSteps, withStepResults } from '../../../src/controller/phases/steps.ts';
import type { Facts } from '../../../src/controller/phases/observed.ts';
import type { StepAction } from '../../../src/controller/phases/actions.ts';
import type { Phase, WanMigration, WanMigrationSpec } from '../../../src/api/wanmigration.ts';
import { wm, obs, inPhase } from './fixtures.ts';
import { runSteps } from '../../../src/controller/execute.ts';
import { plan } from '../../../src/controller/phases/plan.ts';
import type { World } from '../../../src/controller/observe.ts';
import type { WanMigrationDeps } from '../../../src/controller/deps.ts';

function facts(o: Partial<Facts> = {}): Facts {
  const { link: _l, ...rest } = obs();
  return { ...rest, providers: { link: true, storage: true, relay: true }, siteExists: true, targetServer: 'https://b:6443', ...o };
}

const types = (s: StepAction[]) => s.map((a) => a.type);
const at = (phase: Phase, spec: Partial<WanMigrationSpec> = {}) => wm(spec, phase === 'Pending' ? undefined : inPhase(phase));
const everything: Partial<WanMigrationSpec> = { storage: { mode: 'CloudNetPreCopy' }, relay: { enabled: true } };

describe('planSteps: each provider is asked only in the phases it matters', () => {
  const cases: [Phase, string[]][] = [
    ['Pending', ['ListPeerMigrations']],
    ['ConnectingLink', ['EnsureLink']],
    ['SyncingStorage', ['SyncStorage']],
    ['PreparingTarget', ['SyncStorage']],
    ['AwaitingCutover', ['SyncStorage']],
    ['MigratingMemory', ['SyncStorage', 'ReadRelayProgress']],
    ['CuttingOver', []],
    ['RollingBack', []],
    ['Succeeded', []],
  ];
  for (const [phase, want] of cases) {
    test(phase, () => assert.deepEqual(types(planSteps(at(phase, everything), facts())), want));
  }

  test('relay flows are registered once the receiver VMI publishes the migration endpoint', () => {
    const ep = { address: '198.51.100.2', ports: [40000, 40001] };
    const withEndpoint = facts({ target: { ...facts().target!, migrationEndpoint: ep } });
    assert.deepEqual(types(planSteps(at('MigratingMemory', { relay: { enabled: true } }), withEndpoint)), ['RegisterRelayFlows', 'ReadRelayProgress']);
    assert.deepEqual(types(planSteps(at('MigratingMemory', { relay: { enabled: false } }), withEndpoint)), [], 'relay.enabled false: nothing is registered');
  });

  test('a migration being deleted or aborted asks no provider (it only rolls back or finishes)', () => {
    for (const phase of ['ConnectingLink', 'SyncingStorage', 'MigratingMemory'] as const) {
      const ep = { address: '198.51.100.2', ports: [40000] };
      const f = facts({ target: { ...facts().target!, migrationEndpoint: ep } });
      assert.deepEqual(planSteps(at(phase, everything), { ...f, deleting: true }), [], `${phase}, deleting`);
      assert.deepEqual(planSteps(at(phase, { ...everything, abort: true }), f), [], `${phase}, abort`);
    }
  });

  test('no provider, no call', () => {
    const none = facts({ providers: { link: false, storage: false, relay: false } });
    for (const phase of ['ConnectingLink', 'SyncingStorage', 'MigratingMemory'] as const) assert.deepEqual(planSteps(at(phase, everything), none), []);
  });

  test('storage mode KubeVirt and relay disabled: neither is asked', () => {
    assert.deepEqual(planSteps(at('MigratingMemory'), facts()), []);
  });

  test('the link and the relay need the Site; storage needs the target cluster and the source VM', () => {
    assert.deepEqual(planSteps(at('ConnectingLink'), facts({ siteExists: false })), []);
    assert.deepEqual(types(planSteps(at('MigratingMemory', everything), facts({ siteExists: false }))), ['SyncStorage']);
    assert.deepEqual(planSteps(at('SyncingStorage', everything), facts({ targetCluster: { ok: false, reason: 'TargetClusterUnreachable', message: 'x' } })), []);
    assert.deepEqual(planSteps(at('SyncingStorage', everything), facts({ source: { vmExists: false, handled: false } })), []);
  });
});

describe('withStepResults: what plan() is told', () => {
  test('a provider that answered is passed on as it answered', () => {
    const link = { state: 'Progressing' as const, reason: 'Handshaking', message: 'x' };
    const storage = { state: 'Ready' as const, reason: 'Synced', message: 'y' };
    const o = withStepResults(at('SyncingStorage', everything), facts(), { link, storage, relayProgress: { bytesSent: 5 } });
    assert.deepEqual([o.link, o.storage, o.relayProgress, o.relayAvailable], [link, storage, { bytesSent: 5 }, true]);
  });

  test('no link provider: Ready only as far as the target API answered, and it says so', () => {
    const o = withStepResults(at('ConnectingLink'), facts({ providers: { link: false, storage: false, relay: false } }), {});
    assert.equal(o.link.state, 'Ready');
    assert.equal(o.link.reason, 'ClusterAPIReachable');
    assert.match(o.link.message, /https:\/\/b:6443.*no WAN data-plane link was set up/);
    assert.equal(o.relayAvailable, false);
    assert.equal(o.storage, undefined);
  });

  test('no link provider and an unreachable target: the link waits with the cluster reason', () => {
    const down = { ok: false as const, reason: 'TargetClusterUnreachable', message: 'down' };
    const o = withStepResults(at('ConnectingLink'), facts({ providers: { link: false, storage: false, relay: false }, targetCluster: down }), {});
    assert.deepEqual(o.link, { state: 'Progressing', reason: 'TargetClusterUnreachable', message: 'down' });
  });

  test('a link provider not asked yet: LinkNotStarted', () => {
    assert.equal(withStepResults(at('Pending'), facts(), {}).link.reason, 'LinkNotStarted');
  });

  test('CloudNetPreCopy without a storage provider: Unavailable; with one not asked yet: NotStarted', () => {
    const spec = { storage: { mode: 'CloudNetPreCopy' as const } };
    assert.equal(withStepResults(at('SyncingStorage', spec), facts({ providers: { link: true, storage: false, relay: true } }), {}).storage?.reason, 'StoragePreCopyUnavailable');
    assert.equal(withStepResults(at('SyncingStorage', spec), facts(), {}).storage?.reason, 'NotStarted');
  });

  test('the planner-only facts do not leak into Observed', () => {
    const o = withStepResults(at('Pending'), facts(), {}) as unknown as Record<string, unknown>;
    assert.deepEqual(['providers', 'siteExists', 'targetServer'].filter((k) => k in o), []);
  });
});

describe('conflictWith: who migrates a VM when two WanMigrations name it', () => {
  const other = (name: string, created: string, extra: Partial<WanMigration['status']> = {}, meta: Partial<WanMigration['metadata']> = {}): WanMigration => ({
    metadata: { name, namespace: 'default', uid: `uid-${name}`, creationTimestamp: created, ...meta },
    spec: { vmName: 'vm-a', targetSite: 'site-b', targetNamespace: 'default' },
    status: extra,
  });
  const me = (status?: WanMigration['status']): WanMigration => {
    const m = wm({}, status);
    m.metadata.creationTimestamp = '2026-01-01T00:00:10Z';
    return m;
  };

  test('an earlier one wins; a later one, another VM, a finished or a deleting one does not', () => {
    assert.equal(conflictWith(me(), [other('early', '2026-01-01T00:00:05Z')]), 'early');
    assert.equal(conflictWith(me(), [other('late', '2026-01-01T00:00:20Z')]), undefined);
    assert.equal(conflictWith(me(), [{ ...other('vm-b', '2026-01-01T00:00:05Z'), spec: { vmName: 'vm-b', targetSite: 's', targetNamespace: 'd' } }]), undefined);
    assert.equal(conflictWith(me(), [other('done', '2026-01-01T00:00:05Z', { phase: 'Failed' })]), undefined);
    assert.equal(conflictWith(me(), [other('going', '2026-01-01T00:00:05Z', {}, { deletionTimestamp: '2026-01-01T00:00:30Z' })]), undefined);
  });

  test('a started one wins over an earlier one that has not started; the same creation time falls back to the name', () => {
    assert.equal(conflictWith(me(), [other('late-started', '2026-01-01T00:00:20Z', { migrationID: 'x' })]), 'late-started');
    assert.equal(conflictWith(me({ migrationID: 'mine' }), [other('early', '2026-01-01T00:00:05Z')]), undefined);
    assert.equal(conflictWith(me(), [other('a-same', '2026-01-01T00:00:10Z')]), 'a-same');
    assert.equal(conflictWith(me(), [other('z-same', '2026-01-01T00:00:10Z')]), undefined);
  });

  test('listed peers become Observed.conflictWith', () => {
    assert.equal(withStepResults(me(), facts(), { peers: [other('early', '2026-01-01T00:00:05Z')] }).conflictWith, 'early');
    assert.equal('conflictWith' in withStepResults(me(), facts(), { peers: [] }), false);
  });
});

describe('runSteps: a provider that throws becomes its step\'s answer', () => {
  const boom = async (): Promise<never> => { throw new Error('HTTP 403 Forbidden: configmaps "cloudnet-gateway-site-b" is forbidden'); };
  const world = { wm: wm(), site: { metadata: { name: 'site-b' } }, sourceVM: { metadata: { name: 'vm-a' } }, migrationEndpoint: { address: '198.51.100.2', ports: [40000] } } as unknown as World;
  const deps = { link: { ensure: boom }, storage: { sync: boom }, relay: { register: boom, progress: boom } } as unknown as WanMigrationDeps;
  test('Unavailable with reason ProviderError and the step and error in the message', async () => {
    const r = await runSteps(deps, world, [{ type: 'EnsureLink' }, { type: 'SyncStorage' }, { type: 'RegisterRelayFlows' }, { type: 'ReadRelayProgress' }], new AbortController().signal);
    for (const [k, step] of [['link', 'EnsureLink'], ['storage', 'SyncStorage'], ['relayRegistration', 'RegisterRelayFlows']] as const) {
      assert.equal(r[k]?.state, 'Unavailable', k);
      assert.equal(r[k]?.reason, 'ProviderError', k);
      assert.match(r[k]?.message ?? '', new RegExp(`^${step}: .*forbidden`), k);
    }
    assert.equal(r.relayProgress, undefined);
  });
  test('plan() turns it into a stalled condition with an Event, and keeps the phase', () => {
    const f = facts();
    const o = withStepResults(at('ConnectingLink'), f, { link: { state: 'Unavailable', reason: 'ProviderError', message: 'EnsureLink: boom' } });
    const p = plan(at('ConnectingLink'), o);
    assert.equal(p.status.phase, 'ConnectingLink');
    assert.equal(p.status.conditions?.find((c) => c.type === 'Stalled')?.reason, 'ProviderError');
    assert.ok(p.events.some((e) => e.type === 'Warning' && e.reason === 'ProviderError'));
  });
  test('an aborted reconcile still throws (shutdown is not a provider error)', async () => {
    const ac = new AbortController();
    ac.abort();
    await assert.rejects(runSteps(deps, world, [{ type: 'EnsureLink' }], ac.signal));
  });
});
