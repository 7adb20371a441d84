// config/argocd/health.lua run by a real Lua interpreter (lua5.4) inside a sandbox shaped like
// Argo CD's (hack/argo-health.ts): only the base, table and (safe) os libraries, no string library
// and no string methods, `obj` as a global. Each sample status becomes a Lua table literal.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import yaml from 'js-yaml';
import { ARGOCD_CM_PATCH_PATH, ARGOCD_HEALTH_KEYS, healthLuaPath, repoRoot } from '../../hack/packaging.ts';
import { argoHealth, harness, LUA, type Health, type Json } from '../../hack/argo-health.ts';

const health = (obj: Json) => argoHealth(obj);

const cond = (type: string, status: string, reason: string, message: string) => ({ type, status, reason, message, lastTransitionTime: '2026-11-25T10:00:00Z', observedGeneration: 2 });

function wm(status: Json, metadata: Json = { name: 'vm-a-to-site-b', namespace: 'default', generation: 2 }): Json {
  const o: { [k: string]: Json } = { apiVersion: 'cloudnet.io/v1alpha1', kind: 'WanMigration', metadata, spec: { vmName: 'vm-a', targetSite: 'site-b' } };
  if (status !== undefined) o.status = status;
  return o;
}
function site(status: Json, generation = 1): Json {
  return { apiVersion: 'cloudnet.io/v1alpha1', kind: 'Site', metadata: { name: 'site-b', generation }, spec: {}, status };
}

describe('config/argocd/health.lua (lua5.4, Argo CD sandbox)', () => {
  const cases: [string, Json, Health][] = [
    ['no status yet', wm(null), { status: 'Progressing', message: 'Waiting for the operator to report status' }],
    ['empty status', wm({}), { status: 'Progressing', message: 'Waiting for the operator to report status' }],
    ['status that is not an object', wm('garbage'), { status: 'Progressing', message: 'Waiting for the operator to report status' }],
    ['spec change not yet observed', wm({ observedGeneration: 1, phase: 'Succeeded', conditions: [cond('Ready', 'True', 'Succeeded', 'done')] }),
      { status: 'Progressing', message: 'Waiting for the operator to observe generation 2' }],
    ['observedGeneration missing while generation set', wm({ phase: 'Pending' }),
      { status: 'Progressing', message: 'Waiting for the operator to observe generation 2' }],
    ['no metadata at all', wm({ phase: 'Pending' }, null), { status: 'Progressing', message: 'Pending: in progress' }],
    ['metadata that is not an object', wm({ phase: 'Pending' }, 'garbage'), { status: 'Progressing', message: 'Pending: in progress' }],
    ['migrating memory', wm({ observedGeneration: 2, phase: 'MigratingMemory', conditions: [
      cond('Ready', 'False', 'MigratingMemory', 'not migrated yet'), cond('Reconciling', 'True', 'MigratingMemory', 'round 3, 120 MiB dirty'), cond('Stalled', 'False', 'None', '')] }),
    { status: 'Progressing', message: 'MigratingMemory: round 3, 120 MiB dirty' }],
    ['only Ready=False', wm({ observedGeneration: 2, phase: 'ConnectingLink', conditions: [cond('Ready', 'False', 'LinkDown', 'no handshake')] }),
      { status: 'Progressing', message: 'ConnectingLink: no handshake' }],
    ['succeeded', wm({ observedGeneration: 2, phase: 'Succeeded', conditions: [cond('Ready', 'True', 'Succeeded', 'vm-a runs on site-b')] }),
      { status: 'Healthy', message: 'Succeeded: vm-a runs on site-b' }],
    ['Ready=True without phase', wm({ observedGeneration: 2, conditions: [cond('Ready', 'True', '', '')] }),
      { status: 'Healthy', message: 'Migration succeeded' }],
    ['phase Succeeded without conditions', wm({ observedGeneration: 2, phase: 'Succeeded' }), { status: 'Healthy', message: 'Migration succeeded' }],
    ['stalled on a hung VMIM', wm({ observedGeneration: 2, phase: 'MigratingMemory', conditions: [
      cond('Ready', 'False', 'MigratingMemory', ''), cond('Stalled', 'True', 'DeadlineExceeded', 'memory migration exceeded 1800s')] }),
    { status: 'Degraded', message: 'DeadlineExceeded: memory migration exceeded 1800s' }],
    ['Stalled=True wins over Ready=True (kstatus)', wm({ observedGeneration: 2, phase: 'Succeeded', conditions: [
      cond('Ready', 'True', 'Succeeded', 'ok'), cond('Stalled', 'True', 'CleanupFailed', 'source VM not stopped')] }),
    { status: 'Degraded', message: 'CleanupFailed: source VM not stopped' }],
    ['failed', wm({ observedGeneration: 2, phase: 'Failed', conditions: [cond('Ready', 'False', 'VMNotMigratable', 'vm-a is not live-migratable')] }),
      { status: 'Degraded', message: 'Failed: VMNotMigratable: vm-a is not live-migratable' }],
    ['failed without conditions', wm({ observedGeneration: 2, phase: 'Failed' }), { status: 'Degraded', message: 'Failed: migration failed' }],
    ['manual cutover awaiting approval', wm({ observedGeneration: 2, phase: 'AwaitingCutover', conditions: [
      cond('Ready', 'False', 'AwaitingCutover', 'phase AwaitingCutover'), cond('Reconciling', 'True', 'AwaitingApproval', 'set spec.cutover.approved=true to cut over'),
      cond('Stalled', 'False', 'Progressing', 'no problem detected')] }),
    { status: 'Suspended', message: 'AwaitingApproval: set spec.cutover.approved=true to cut over' }],
    ['cutover window not open yet', wm({ observedGeneration: 2, phase: 'AwaitingCutover', conditions: [
      cond('Reconciling', 'True', 'AwaitingCutoverWindow', 'cutover window opens at 2026-11-26T02:00:00Z')] }),
    { status: 'Suspended', message: 'AwaitingCutoverWindow: cutover window opens at 2026-11-26T02:00:00Z' }],
    ['cutover window missed (stalled)', wm({ observedGeneration: 2, phase: 'AwaitingCutover', conditions: [
      cond('Reconciling', 'False', 'CutoverWindowMissed', 'window closed'), cond('Stalled', 'True', 'CutoverWindowMissed', 'window closed')] }),
    { status: 'Degraded', message: 'CutoverWindowMissed: window closed' }],
    ['awaiting cutover, only CutoverComplete', wm({ observedGeneration: 2, phase: 'AwaitingCutover', conditions: [
      cond('CutoverComplete', 'False', 'AwaitingApproval', 'approve to cut over')] }),
    { status: 'Suspended', message: 'AwaitingApproval: approve to cut over' }],
    ['awaiting cutover, no conditions', wm({ observedGeneration: 2, phase: 'AwaitingCutover' }),
      { status: 'Suspended', message: 'Awaiting cutover approval (spec.cutover.approved) or the cutover window' }],
    ['aborted', wm({ observedGeneration: 2, phase: 'Aborted', conditions: [cond('Ready', 'False', 'Aborted', 'spec.abort set; source vm-a left running')] }),
      { status: 'Suspended', message: 'Aborted: spec.abort set; source vm-a left running' }],
    ['rolling back', wm({ observedGeneration: 2, phase: 'RollingBack', conditions: [cond('Reconciling', 'True', 'RollingBack', 'deleting target VMIM')] }),
      { status: 'Progressing', message: 'RollingBack: deleting target VMIM' }],
    ['being deleted', wm({ observedGeneration: 2, phase: 'Succeeded' }, { name: 'x', generation: 2, deletionTimestamp: '2026-11-25T10:00:00Z' }),
      { status: 'Progressing', message: 'Deleting: the operator is cleaning up' }],
    ['deletion stuck (target unreachable for clean-up)', wm({ observedGeneration: 2, phase: 'RollingBack', conditions: [
      cond('Stalled', 'True', 'TargetCleanupBlocked', 'cannot reach the target cluster')] }, { name: 'x', generation: 2, deletionTimestamp: '2026-11-25T10:00:00Z' }),
    { status: 'Degraded', message: 'Deleting, stalled: TargetCleanupBlocked: cannot reach the target cluster' }],
    ['malformed conditions list', wm({ observedGeneration: 2, phase: 'SyncingStorage', conditions: ['x', 7, { type: 'Ready' }, null] }),
      { status: 'Progressing', message: 'SyncingStorage: in progress' }],
    ['conditions not a list', wm({ observedGeneration: 2, phase: 'PreparingTarget', conditions: 'Ready' }),
      { status: 'Progressing', message: 'PreparingTarget: in progress' }],
    ['non-ASCII and quotes in a message', wm({ observedGeneration: 2, phase: 'Failed', conditions: [cond('Ready', 'False', 'X', 'zielcluster „B" – nicht erreichbar\n(timeout)')] }),
      { status: 'Degraded', message: 'Failed: X: zielcluster „B" – nicht erreichbar\n(timeout)' }],
    ['Site ready', site({ observedGeneration: 1, rttMs: 40, conditions: [cond('LinkReady', 'True', 'Probed', 'rtt 40 ms'), cond('Ready', 'True', 'Ready', 'site-b reachable')] }),
      { status: 'Healthy', message: 'Ready: site-b reachable' }],
    ['Site with a bad kubeconfig', site({ observedGeneration: 1, conditions: [cond('Ready', 'False', 'KubeconfigInvalid', 'secret cloudnet-system/site-b-kubeconfig has no key kubeconfig')] }),
      { status: 'Degraded', message: 'KubeconfigInvalid: secret cloudnet-system/site-b-kubeconfig has no key kubeconfig' }],
    ['Site not probed yet', site({ observedGeneration: 1, conditions: [cond('LinkReady', 'Unknown', 'Probing', 'first probe pending')] }),
      { status: 'Progressing', message: 'Probing: first probe pending' }],
    ['Site without conditions', site({ observedGeneration: 1 }), { status: 'Progressing', message: 'Probing the site' }],
    ['Site spec change not observed', site({ observedGeneration: 1, conditions: [cond('Ready', 'True', 'Ready', '')] }, 3),
      { status: 'Progressing', message: 'Waiting for the operator to observe generation 3' }],
    ['Site stalled', site({ observedGeneration: 1, conditions: [cond('Stalled', 'True', 'SecretNotFound', 'no secret')] }),
      { status: 'Degraded', message: 'SecretNotFound: no secret' }],
  ];
  for (const [name, obj, want] of cases) {
    it(name, () => assert.deepEqual(health(obj), want));
  }

  it('never fails and always answers a valid status on 300 random, malformed objects', () => {
    // Deterministic PRNG (mulberry32) so that a failure reproduces.
    let seed = 0x5eed;
    const rnd = () => {
      seed = (seed + 0x6d2b79f5) | 0;
      let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
      t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
      return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    };
    const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)];
    const keys = ['kind', 'metadata', 'status', 'conditions', 'phase', 'type', 'reason', 'message', 'generation', 'observedGeneration', 'deletionTimestamp'] as const;
    const words = ['Ready', 'Stalled', 'Reconciling', 'True', 'False', 'Unknown', 'Site', 'WanMigration', 'Failed', 'Succeeded', 'AwaitingCutover', 'Aborted', '', 'ü"\\\n'];
    const value = (depth: number): Json => {
      const r = rnd();
      if (depth > 3 || r < 0.25) return pick(words);
      if (r < 0.35) return Math.floor(rnd() * 5) - 1;
      if (r < 0.4) return null;
      if (r < 0.45) return rnd() < 0.5;
      if (r < 0.65) return Array.from({ length: Math.floor(rnd() * 4) }, () => value(depth + 1));
      return Object.fromEntries(Array.from({ length: Math.floor(rnd() * 5) }, () => [pick(keys), value(depth + 1)]));
    };
    const valid = new Set(['Healthy', 'Progressing', 'Degraded', 'Suspended']);
    for (let i = 0; i < 300; i++) {
      const obj = Object.fromEntries(Array.from({ length: 1 + Math.floor(rnd() * 4) }, () => [pick(keys), value(0)])) as Json;
      const h = argoHealth(obj);
      assert.ok(valid.has(h.status), `case ${i}: ${JSON.stringify(obj)} -> ${JSON.stringify(h)}`);
      assert.ok(h.message.length > 0, `case ${i}: empty message for ${JSON.stringify(obj)}`);
    }
  });

  it('uses no Lua beyond 5.1 (Argo CD embeds gopher-lua)', () => {
    const code = readFileSync(healthLuaPath, 'utf8').replace(/--.*$/gm, '').replace(/"(\\.|[^"\\])*"/g, '""');
    for (const [what, re] of [['goto', /\bgoto\b/], ['integer division', /\/\//], ['bitwise operators', /[&|]|<<|>>|~(?!=)/], ['attribs', /<(const|close)>/], ['string library', /\bstring\./], ['string methods', /[\w)\]"]:\w+\(/]] as const) {
      assert.doesNotMatch(code, re, `health.lua uses ${what}`);
    }
  });

  it('sandbox is faithful: string methods and the string library fail as in Argo CD', () => {
    const dir = mkdtempSync(join(tmpdir(), 'cloudnet-lua-'));
    try {
      for (const [body, err] of [['("ok"):upper()', /attempt to index a string value/], ['string.upper("ok")', /attempt to index a nil value \(global 'string'\)/]] as const) {
        const script = join(dir, 'probe.lua');
        writeFileSync(script, `return { status = ${body}, message = "" }\n`);
        const r = spawnSync(LUA, ['-', script], { input: harness({}), encoding: 'utf8' });
        assert.equal(r.status, 3, r.stderr);
        assert.match(r.stderr, err);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('ships the same script under both argocd-cm keys and in the README', () => {
    const lua = readFileSync(healthLuaPath, 'utf8');
    const cm = yaml.load(readFileSync(join(repoRoot, ARGOCD_CM_PATCH_PATH), 'utf8')) as { metadata: { name: string }; data: Record<string, string> };
    assert.equal(cm.metadata.name, 'argocd-cm');
    assert.deepEqual(Object.keys(cm.data).sort(), [...ARGOCD_HEALTH_KEYS].sort());
    for (const k of ARGOCD_HEALTH_KEYS) assert.equal(cm.data[k], lua, `${k} differs from health.lua: run node hack/gen-packaging.ts`);
    const readme = readFileSync(join(repoRoot, 'config', 'argocd', 'README.md'), 'utf8');
    for (const k of ARGOCD_HEALTH_KEYS) assert.ok(readme.includes(`${k}: |`), `README.md lacks ${k}`);
    assert.ok(readme.includes(readFileSync(join(repoRoot, ARGOCD_CM_PATCH_PATH), 'utf8')), 'README.md embeds argocd-cm-patch.yaml verbatim');
  });
});
