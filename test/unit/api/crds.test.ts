import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import yaml from 'js-yaml';
import { renderCRDFiles, wanMigrationCRD, siteCRD, type JSONSchemaProps } from '../../../src/api/index.ts';

const root = join(dirname(fileURLToPath(import.meta.url)), '../../..');

test('committed CRD files are current (run `npm run gen:crds`)', () => {
  for (const [rel, text] of renderCRDFiles()) {
    const committed = readFileSync(join(root, rel), 'utf8');
    assert.equal(committed, text, `${rel} is stale`);
  }
});

/** Structural schema rules: every node has a type (or preserves unknown fields), no $ref. */
function assertStructural(s: JSONSchemaProps, path: string): void {
  assert.ok(s.type || s['x-kubernetes-preserve-unknown-fields'], `${path} has no type`);
  for (const [k, v] of Object.entries(s.properties ?? {})) assertStructural(v, `${path}.${k}`);
  if (s.items) assertStructural(s.items, `${path}[]`);
  if (s.additionalProperties && typeof s.additionalProperties === 'object') assertStructural(s.additionalProperties, `${path}{}`);
  if (s.type === 'object' && s.required) for (const r of s.required) assert.ok(s.properties?.[r], `${path} requires unknown ${r}`);
}

test('schemas are structural', () => {
  for (const c of [siteCRD(), wanMigrationCRD()]) assertStructural(c.spec.versions[0].schema.openAPIV3Schema, c.metadata.name);
});

test('WanMigration CRD: names, status subresource, printer columns, immutability rules', () => {
  const c = wanMigrationCRD();
  assert.equal(c.metadata.name, 'wanmigrations.cloudnet.io');
  assert.equal(c.spec.scope, 'Namespaced');
  assert.deepEqual(c.spec.names.shortNames, ['wm', 'wanmig']);
  const v = c.spec.versions[0];
  assert.deepEqual(v.subresources, { status: {} });
  assert.deepEqual(v.additionalPrinterColumns.map((p) => p.name), ['VM', 'Target', 'Phase', 'Progress', 'Ratio', 'Ready', 'Reason', 'Age']);
  const spec = v.schema.openAPIV3Schema.properties!.spec;
  for (const f of ['vmName', 'targetSite', 'targetNamespace']) {
    assert.deepEqual(spec.properties![f]['x-kubernetes-validations']?.[0].rule, 'self == oldSelf', f);
  }
  assert.deepEqual(spec.required, ['vmName', 'targetSite', 'targetNamespace']);
});

test('Site CRD is cluster-scoped', () => {
  assert.equal(siteCRD().spec.scope, 'Cluster');
});

test('samples parse and name the right kinds', () => {
  const wm = yaml.load(readFileSync(join(root, 'config/samples/wanmigration.yaml'), 'utf8')) as { kind: string; spec: { vmName: string } };
  assert.equal(wm.kind, 'WanMigration');
  assert.equal(wm.spec.vmName, 'vm-a');
  const site = yaml.loadAll(readFileSync(join(root, 'config/samples/site.yaml'), 'utf8')) as { kind: string }[];
  assert.deepEqual(site.map((d) => d.kind), ['Secret', 'Site']);
});
