// Every WanMigration spec field acts, or it is not in the API (src/api/README.md). For each field
// of the schema this names the code that applies it and a test that shows its effect, and checks
// that both still say so; a new field without an entry, or an entry whose field is gone, fails.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { wanMigrationSpecSchema } from '../../../src/api/wanmigration.ts';
import type { ApiSchema } from '../../../src/api/schema/api-schema.ts';

const root = join(dirname(fileURLToPath(import.meta.url)), '../../..');

/** Where a field acts: [file, text that file contains]. */
type Where = [file: string, contains: string];

const EFFECT: Record<string, { code: Where; test: Where }> = {
  vmName: { code: ['src/controller/target-objects.ts', 'vmiName: spec.vmName'], test: ['test/unit/controller/plan.test.ts', "['missing VM', { source: { vmExists: false, handled: false } }, 'VMNotFound']"] },
  targetSite: { code: ['src/controller/observe.ts', 'resolveTarget(deps, reads, spec.targetSite, signal)'], test: ['test/integration/wanmigration-badinput.test.ts', "'SiteNotFound', { vmName: 'vm', targetSite: 'atlantis' }"] },
  targetNamespace: { code: ['src/controller/target-objects.ts', 'namespace: spec.targetNamespace'], test: ['test/integration/wanmigration-badinput.test.ts', 'missing target namespace → TargetNamespaceNotFound'] },
  'storage.mode': { code: ['src/controller/phases/steps.ts', "spec.storage.mode === 'CloudNetPreCopy'"], test: ['test/unit/controller/plan.test.ts', 'CloudNetPreCopy synced → PreparingTarget with progress merged'] },
  'storage.storageClassMap': { code: ['src/controller/target-objects.ts', 'spec.storage.storageClassMap[sourceClass]'], test: ['test/unit/controller/target-objects.test.ts', 'blank DataVolume maps the storage class'] },
  'storage.defaultStorageClass': { code: ['src/controller/target-objects.ts', 'spec.storage.defaultStorageClass ?? sourceClass'], test: ['test/unit/controller/target-objects.test.ts', 'blank DataVolume maps the storage class'] },
  'relay.enabled': { code: ['src/controller/phases/steps.ts', 'spec.relay.enabled && phase === Phases.MigratingMemory'], test: ['test/unit/controller/steps.test.ts', 'relay.enabled false: nothing is registered'] },
  'relay.compression': { code: ['src/relay/transport/sender.ts', "settings.compression === 'None'"], test: ['test/integration/relay-progress.test.ts', 'b (no cache, no compression) crosses the WAN at full size'] },
  'relay.dedup': { code: ['src/relay/transport/sender.ts', 'dedup: settings.dedup'], test: ['test/unit/relay/encoder-settings.test.ts', 'dedup off: no cache or seed references'] },
  'relay.deltaPages': { code: ['src/relay/transport/sender.ts', 'deltas: settings.deltaPages'], test: ['test/unit/relay/encoder-settings.test.ts', 'deltaPages off: no deltas'] },
  'relay.cacheSizeMiB': { code: ['src/relay/transport/sender.ts', 'cacheWindow: Math.floor(flow.cacheMiB'], test: ['test/unit/relay/encoder-settings.test.ts', 'a cache window smaller than the shared cache finds less of the other VM'] },
  'cutover.mode': { code: ['src/controller/phases/gates.ts', 'cutover.mode is Manual'], test: ['test/unit/controller/plan.test.ts', 'Manual without approval waits in AwaitingCutover'] },
  'cutover.approved': { code: ['src/controller/phases/gates.ts', 'c.approved ? { open: true }'], test: ['test/unit/controller/plan.test.ts', 'Manual approved proceeds to the memory migration'] },
  'cutover.window.start': { code: ['src/controller/phases/gates.ts', 'cutover window opens at ${w.start}'], test: ['test/unit/controller/plan.test.ts', 'Window: before, inside, after'] },
  'cutover.window.end': { code: ['src/controller/phases/gates.ts', 'if (t >= end)'], test: ['test/unit/controller/plan.test.ts', 'Window: before, inside, after'] },
  'timeouts.linkSeconds': { code: ['src/controller/phases/gates.ts', 't.linkSeconds * 1000'], test: ['test/unit/controller/plan.test.ts', 'past the deadline → Stalled DeadlineExceeded'] },
  'timeouts.storageSeconds': { code: ['src/controller/phases/gates.ts', 't.storageSeconds ?? derived?.storageSeconds'], test: ['test/unit/controller/plan.test.ts', 'past the deadline → Stalled DeadlineExceeded'] },
  'timeouts.targetPreparedSeconds': { code: ['src/controller/phases/gates.ts', 't.targetPreparedSeconds * 1000'], test: ['test/unit/controller/plan.test.ts', 'past the deadline → Stalled DeadlineExceeded'] },
  'timeouts.memorySeconds': { code: ['src/controller/phases/gates.ts', 't.memorySeconds ?? derived?.memorySeconds'], test: ['test/e2e/wan-migration.test.ts', 'link cut mid-migration: the memory deadline rolls back'] },
  'timeouts.cutoverSeconds': { code: ['src/controller/phases/gates.ts', 't.cutoverSeconds * 1000'], test: ['test/unit/controller/plan.test.ts', "phase === 'CuttingOver' ? ' (never rolls back)'"] },
  onDeadline: { code: ['src/controller/phases/plan.ts', "c.spec.onDeadline === 'Rollback'"], test: ['test/unit/controller/plan.test.ts', 'onDeadline=Wait only marks Stalled'] },
  sourceAfterCutover: { code: ['src/controller/phases/plan.ts', "{ type: 'FinishSource', mode: spec.sourceAfterCutover }"], test: ['test/unit/controller/plan.test.ts', 'sourceAfterCutover modes reach FinishSource with the mode'] },
  abort: { code: ['src/controller/phases/plan.ts', "rollback(c, 'Aborted', 'spec.abort was set')"], test: ['test/unit/controller/plan.test.ts', 'abort at every active phase rolls back and ends Aborted'] },
};

/** Leaf fields of a schema, as dotted paths (a map such as storageClassMap is one leaf). */
function leaves(s: ApiSchema, prefix = ''): string[] {
  if (s.type !== 'object' || !s.properties) return [prefix];
  return Object.entries(s.properties).flatMap(([k, v]) => leaves(v as ApiSchema, prefix ? `${prefix}.${k}` : k));
}

test('every WanMigration spec field is listed with the code and the test that show its effect', () => {
  assert.deepEqual(leaves(wanMigrationSpecSchema).sort(), Object.keys(EFFECT).sort(), 'schema fields vs the fields this test vouches for');
});

test('the named code and tests still say what they are cited for', () => {
  const cache = new Map<string, string>();
  const read = (f: string) => { if (!cache.has(f)) cache.set(f, readFileSync(join(root, f), 'utf8')); return cache.get(f)!; };
  for (const [field, { code, test: t }] of Object.entries(EFFECT)) {
    for (const [file, text] of [code, t]) assert.ok(read(file).includes(text), `${field}: ${file} no longer contains ${JSON.stringify(text)}`);
  }
});

test('maxDowntimeMs is gone: it had no effect (src/api/README.md, "Removed fields")', () => {
  assert.equal(leaves(wanMigrationSpecSchema).includes('maxDowntimeMs'), false);
  assert.match(readFileSync(join(root, 'src/api/README.md'), 'utf8'), /`spec\.maxDowntimeMs`/);
});
