// The API has one source, the schemas in src/api/schema/: the committed TypeScript types
// (src/api/generated/) and CRDs (crds/, checked in crds.test.ts) must be what that source renders
// today, so a field added on one side only fails here. Every field must carry a description
// (kubectl explain), and resolveSpec must fill in exactly the defaults the API server applies.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { API_TYPE_MODULES, renderApiTypes, type TypeModule } from '../../../hack/api-types.ts';
import { allCRDs, ALL_PHASES, resolveSpec, wanMigrationSpecSchema, type JSONSchemaProps, type WanMigrationSpec } from '../../../src/api/index.ts';
import type { ApiSchema } from '../../../src/api/schema/api-schema.ts';

const root = join(dirname(fileURLToPath(import.meta.url)), '../../..');

/** The first line where two texts differ, for a failure message that points at the field. */
function firstDifference(a: string, b: string): string {
  const [x, y] = [a.split('\n'), b.split('\n')];
  const i = x.findIndex((line, n) => line !== y[n]);
  const at = i < 0 ? x.length : i;
  return `line ${at + 1}: committed ${JSON.stringify(x[at])}, rendered ${JSON.stringify(y[at])}`;
}

test('committed src/api/generated/ types are what the schemas render (run `npm run gen:api-types`)', () => {
  const rendered = renderApiTypes();
  assert.deepEqual([...rendered.keys()].sort(), API_TYPE_MODULES.map((m) => m.output).sort());
  for (const [rel, text] of rendered) {
    const committed = readFileSync(join(root, rel), 'utf8');
    assert.ok(committed === text, `${rel} is stale (${firstDifference(committed, text)})`);
  }
});

/** Every property below `s`, as a dotted path. */
function* fields(s: JSONSchemaProps, path: string): Generator<[string, JSONSchemaProps]> {
  for (const [k, v] of Object.entries(s.properties ?? {})) {
    yield [`${path}.${k}`, v];
    yield* fields(v, `${path}.${k}`);
  }
  if (s.items) yield* fields(s.items, `${path}[]`);
  if (s.additionalProperties && typeof s.additionalProperties === 'object') yield* fields(s.additionalProperties, `${path}{}`);
}

test('every field of every CRD has a description (kubectl explain documents all of them)', () => {
  let count = 0;
  for (const c of allCRDs()) {
    const kind = c.spec.names.kind;
    for (const [path, f] of fields(c.spec.versions[0].schema.openAPIV3Schema, kind)) {
      count++;
      // The API server rejects any more than `type: object` on the root metadata; explain uses ObjectMeta's docs.
      if (path === `${kind}.metadata`) assert.deepEqual(f, { type: 'object' }, path);
      else assert.ok(f.description && f.description.trim().length > 3, `${path} has no description`);
    }
  }
  assert.ok(count >= 96, `walked ${count} fields`); // 31 Site + 65 WanMigration: the walk reaches them all
});

test('the TypeScript names of the source never reach a CRD', () => {
  for (const c of allCRDs()) assert.doesNotMatch(JSON.stringify(c), /tsName/, c.metadata.name);
});

/** The API server's defaulting: a missing property with a default gets it, then nested defaults apply. */
function applyDefaults(s: ApiSchema, value: unknown): unknown {
  if (s.type !== 'object' || !s.properties || typeof value !== 'object' || value === null) return value;
  const out: Record<string, unknown> = { ...(value as Record<string, unknown>) };
  for (const [k, p] of Object.entries(s.properties)) {
    if (out[k] === undefined && p.default !== undefined) out[k] = structuredClone(p.default);
    if (out[k] !== undefined) out[k] = applyDefaults(p, out[k]);
  }
  return out;
}

test('resolveSpec fills in exactly the schema defaults (no default written twice differently)', () => {
  const minimal: WanMigrationSpec = { vmName: 'vm-a', targetSite: 'site-b', targetNamespace: 'default' };
  const defaulted = applyDefaults(wanMigrationSpecSchema, minimal) as WanMigrationSpec;
  // The one liberty resolveSpec takes: an absent storageClassMap reads as an empty one (no default in the schema).
  const expected = { ...defaulted, storage: { ...defaulted.storage, storageClassMap: {} } };
  assert.deepEqual(resolveSpec(minimal), expected);
  assert.deepEqual(resolveSpec(defaulted), expected, 'a spec the API server has defaulted resolves the same');
});

test('the Phases constant and the status.phase enum list the same phases', () => {
  const crd = allCRDs().find((c) => c.spec.names.kind === 'WanMigration')!;
  const phase = crd.spec.versions[0].schema.openAPIV3Schema.properties!.status.properties!.phase;
  assert.deepEqual(phase.enum, [...ALL_PHASES]);
  assert.equal(ALL_PHASES.length, 11);
});

// The generator itself: a field added to a schema shows up in the rendered types, so the
// comparison above catches a schema-only change (and, being exact, a types-only edit).
const probe = (extra: Record<string, ApiSchema & { description: string }>, required: string[] = []): TypeModule => ({
  source: 'probe.ts',
  output: 'out/probe.ts',
  roots: [{ tsName: 'Probe', type: 'object', description: 'A probe.', required, properties: { a: { type: 'string', description: 'A.' }, ...extra } }],
});

test('generator: a new schema field becomes a documented, optional or required, typed field', () => {
  const base = renderApiTypes([probe({})]).get('out/probe.ts')!;
  const more = renderApiTypes([probe({ b: { type: 'integer', default: 3, description: 'B count.' }, c: { type: 'array', items: { type: 'string', enum: ['x', 'y'] }, description: 'C.' } }, ['c'])]).get('out/probe.ts')!;
  assert.notEqual(base, more);
  assert.match(more, /\/\*\*\n {3}\* B count\.\n {3}\* @default 3\n {3}\*\/\n {2}b\?: number;/);
  assert.match(more, /\/\*\* C\. \*\/\n {2}c: \('x' \| 'y'\)\[\];/);
});

test('generator: named nodes are declared once and imported by later modules; one name, one schema', () => {
  const shared: ApiSchema = { tsName: 'Shared', type: 'object', description: 'S.', properties: { x: { type: 'boolean', description: 'X.' } } };
  const use = (name: string, output: string): TypeModule => ({
    source: `${name}.ts`, output, roots: [{ tsName: name, type: 'object', description: name, properties: { s: { ...shared, description: 'S.' } } }],
  });
  const out = renderApiTypes([use('One', 'out/one.ts'), use('Two', 'out/two.ts')]);
  assert.match(out.get('out/one.ts')!, /export interface Shared \{/);
  assert.match(out.get('out/two.ts')!, /import type \{ Shared \} from '\.\/one\.ts';/);
  assert.doesNotMatch(out.get('out/two.ts')!, /export interface Shared/);
  const clash: TypeModule = { source: 'c.ts', output: 'out/c.ts', roots: [{ ...shared, properties: { y: { type: 'string', description: 'Y.' } } }] };
  assert.throws(() => renderApiTypes([use('One', 'out/one.ts'), clash]), /tsName Shared names two different schemas/);
});
