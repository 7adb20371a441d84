// The RelayOptimizing condition and the relay flows' release (phases/plan.ts): pure, like plan.test.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { plan } from '../../../src/controller/phases/plan.ts';
import type { Observed } from '../../../src/controller/phases/observed.ts';
import type { StepReport } from '../../../src/api/ports.ts';
import { findCondition } from '../../../src/api/conditions.ts';
import { inPhase, obs, preparedTarget, T0, vmim, wm } from './fixtures.ts';

const NAMES = { source: 'mig-source', target: 'mig-target' };
const ready: StepReport = { state: 'Ready', reason: 'FlowsIntercepted', message: 'the site gateway redirects 198.51.100.2:40000 to the relay' };

function memory(o: Partial<Observed> = {}, relay = { enabled: true }) {
  const status = inPhase('MigratingMemory', T0, { vmims: { ...NAMES } });
  return plan(wm({ relay }, status), obs({
    target: preparedTarget, sourceVMIM: vmim(NAMES.source, 'Running'), targetVMIM: vmim(NAMES.target, 'Running'), relayAvailable: true, ...o,
  }));
}
const relayCond = (p: ReturnType<typeof plan>) => findCondition(p.status.conditions, 'RelayOptimizing');

test('relay.enabled false: no RelayOptimizing condition, nothing released', () => {
  const p = memory({}, { enabled: false });
  assert.equal(relayCond(p), undefined);
  assert.ok(!p.actions.some((a) => a.type === 'ReleaseRelayFlows'));
});

test('no relay in this operator: RelayOptimizing False, RelayUnavailable', () => {
  assert.equal(relayCond(memory({ relayAvailable: false }))?.reason, 'RelayUnavailable');
});

test('before the endpoint is known: Unknown, looked at again soon', () => {
  const p = memory();
  assert.equal(relayCond(p)?.status, 'Unknown');
  assert.equal(relayCond(p)?.reason, 'WaitingForMigrationEndpoint');
  assert.ok((p.requeueAfterMs ?? Infinity) <= 250, `requeue ${p.requeueAfterMs}`);
});

test('registered, migration TLS off: True with the relay\'s message', () => {
  const c = relayCond(memory({ relayRegistration: ready, migrationTLS: false }));
  assert.equal(c?.status, 'True');
  assert.equal(c?.reason, 'FlowsIntercepted');
});

test('registered, migration TLS on: False, MigrationTLSEnabled, naming the KubeVirt setting and the trade-off', () => {
  const c = relayCond(memory({ relayRegistration: ready, migrationTLS: true }));
  assert.equal(c?.status, 'False');
  assert.equal(c?.reason, 'MigrationTLSEnabled');
  assert.match(c!.message, /spec\.configuration\.migrations\.disableTLS/);
  assert.match(c!.message, /WireGuard/);
});

test('a refused registration is the condition\'s reason', () => {
  const c = relayCond(memory({ relayRegistration: { state: 'Unavailable', reason: 'FlowConflict', message: 'flow 198.51.100.2:40000 is registered by x/y' } }));
  assert.deepEqual([c?.status, c?.reason], ['False', 'FlowConflict']);
});

test('memory moved: the flows are released; no session ever seen means FlowNotIntercepted', () => {
  const status = inPhase('MigratingMemory', T0, { vmims: { ...NAMES } });
  const ok = { type: 'RelayOptimizing', status: 'True' as const, reason: 'FlowsIntercepted', message: 'x', lastTransitionTime: T0.toISOString() };
  const done = (progress: Record<string, number>) => plan(wm({ relay: { enabled: true } }, { ...status, conditions: [...status.conditions!, ok], progress }), obs({
    target: preparedTarget, sourceVMIM: vmim(NAMES.source, 'Succeeded'), targetVMIM: vmim(NAMES.target, 'Succeeded'), relayAvailable: true, relayRegistration: ready,
  }));
  const carried = done({ bytesOverWan: 1000 });
  assert.ok(carried.actions.some((a) => a.type === 'ReleaseRelayFlows'));
  assert.equal(relayCond(carried)?.status, 'True');
  const missed = done({});
  assert.equal(relayCond(missed)?.reason, 'FlowNotIntercepted');
});

test('a rollback that finishes releases the flows', () => {
  const p = plan(wm({ relay: { enabled: true }, abort: true }, inPhase('MigratingMemory', T0, {})), obs({ target: { ...preparedTarget, ownedObjects: 0 }, relayAvailable: true }));
  assert.equal(p.status.phase, 'Aborted');
  assert.ok(p.actions.some((a) => a.type === 'ReleaseRelayFlows'));
});
