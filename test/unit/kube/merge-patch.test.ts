import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mergePatchFrom } from '../../../src/kube/merge-patch.ts';

/** RFC 7386's apply, to check that the patch turns `before` into `after`. */
function applyMergePatch(target: unknown, patch: unknown): unknown {
  if (typeof patch !== 'object' || patch === null || Array.isArray(patch)) return patch;
  const out: Record<string, unknown> = typeof target === 'object' && target !== null && !Array.isArray(target) ? { ...target as Record<string, unknown> } : {};
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete out[k];
    else out[k] = applyMergePatch(out[k], v);
  }
  return out;
}

test('a field the new status dropped is sent as null, at any depth', () => {
  const before = { phase: 'MigratingMemory', phaseDeadline: '2026-12-07T00:00:00Z', progress: { percent: 40, bytesOverWan: 7 }, conditions: [{ type: 'Ready' }] };
  const after = { phase: 'Succeeded', progress: { percent: 100 }, conditions: [{ type: 'Ready', status: 'True' }] };
  const patch = mergePatchFrom(before, after);
  assert.deepEqual(patch, { phase: 'Succeeded', phaseDeadline: null, progress: { percent: 100, bytesOverWan: null }, conditions: [{ type: 'Ready', status: 'True' }] });
  assert.deepEqual(applyMergePatch(before, patch), after);
});

test('undefined values count as absent; new keys and replaced arrays go as they are', () => {
  const before = { a: 1, b: { c: [1, 2] }, gone: undefined };
  const after = { a: undefined, b: { c: [3] }, d: { e: 'x' } };
  const patch = mergePatchFrom(before, after);
  assert.deepEqual(patch, { a: null, b: { c: [3] }, d: { e: 'x' } });
  assert.deepEqual(applyMergePatch({ a: 1, b: { c: [1, 2] } }, patch), { b: { c: [3] }, d: { e: 'x' } });
});

test('an object replacing a scalar (or the reverse) goes whole', () => {
  assert.deepEqual(mergePatchFrom({ a: 'x' }, { a: { b: 1 } }), { a: { b: 1 } });
  assert.deepEqual(mergePatchFrom({ a: { b: 1 } }, { a: 2 }), { a: 2 });
  assert.deepEqual(mergePatchFrom({}, {}), {});
});
