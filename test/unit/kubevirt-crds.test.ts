// The committed KubeVirt/CDI test CRDs must match what hack/gen-kubevirt-crds.ts derives from
// the installed @kubevirt-ui-ext/kubevirt-api types, and must keep the shape the API server
// needs (structural schemas) and the fields the operator relies on.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import yaml from 'js-yaml';
import { generateKubevirtCrdsYaml, kubevirtCrdsPath, type JSONSchemaProps } from '../../hack/gen-kubevirt-crds.ts';

interface Crd {
  spec: { names: { kind: string }; versions: { subresources?: unknown; schema: { openAPIV3Schema: JSONSchemaProps } }[] };
}

const generated = generateKubevirtCrdsYaml();
const crds = yaml.loadAll(generated).filter(Boolean) as Crd[];
const schemaOf = (kind: string) => {
  const crd = crds.find((c) => c.spec.names.kind === kind);
  assert.ok(crd, `${kind} generated`);
  return crd.spec.versions[0].schema.openAPIV3Schema;
};

test('test/fixtures/crds/kubevirt.yaml is up to date (run npm run gen:kubevirt-crds)', () => {
  assert.equal(readFileSync(kubevirtCrdsPath, 'utf8'), generated);
});

test('all five kinds, each with a status subresource', () => {
  assert.deepEqual(crds.map((c) => c.spec.names.kind).sort(),
    ['DataVolume', 'KubeVirt', 'VirtualMachine', 'VirtualMachineInstance', 'VirtualMachineInstanceMigration']);
  for (const c of crds) assert.deepEqual(c.spec.versions[0].subresources, { status: {} });
});

test('decentralized migration fields come from the 1.7 types', () => {
  const spec = schemaOf('VirtualMachineInstanceMigration').properties?.spec;
  const sendTo = spec?.properties?.sendTo;
  assert.deepEqual(Object.keys(sendTo?.properties ?? {}), ['connectURL', 'migrationID']);
  assert.deepEqual(sendTo?.required, ['connectURL', 'migrationID']);
  assert.deepEqual(spec?.properties?.receive?.required, ['migrationID']);
  assert.equal(spec?.properties?.vmiName?.type, 'string');
  assert.deepEqual(schemaOf('VirtualMachineInstanceMigration').required, ['spec']);
  // Where the receiving side publishes the address the sender's connectURL points at.
  const addresses = schemaOf('VirtualMachineInstanceMigration').properties?.status?.properties?.synchronizationAddresses;
  assert.deepEqual(addresses?.items, { type: 'string' });
  assert.equal(schemaOf('KubeVirt').properties?.status?.properties?.synchronizationAddresses?.type, 'array');
});

test('schemas are structural: every node has a type, or is int-or-string, and metadata is left to the server', () => {
  const walk = (s: JSONSchemaProps, path: string) => {
    if (s['x-kubernetes-int-or-string']) {
      assert.equal(s.type, undefined, path);
      return;
    }
    assert.ok(s.type, `${path} has a type`);
    for (const [k, v] of Object.entries(s.properties ?? {})) walk(v, `${path}.${k}`);
    if (s.items) walk(s.items, `${path}[]`);
    if (s.additionalProperties) walk(s.additionalProperties, `${path}{}`);
  };
  for (const c of crds) {
    const root = c.spec.versions[0].schema.openAPIV3Schema;
    walk(root, c.spec.names.kind);
    assert.deepEqual(root.properties?.metadata, { type: 'object' });
  }
});

test('Quantity and ResourceList fields accept numbers and strings; renamed TS fields use JSON names', () => {
  const vmi = schemaOf('VirtualMachineInstance');
  const domain = vmi.properties?.spec?.properties?.domain;
  assert.equal(domain?.properties?.memory?.properties?.guest?.['x-kubernetes-int-or-string'], true);
  assert.equal(domain?.properties?.resources?.properties?.requests?.additionalProperties?.['x-kubernetes-int-or-string'], true);
  assert.ok(vmi.properties?.status?.properties?.VSOCKCID, 'VSOCKCID, not vSOCKCID');
  assert.ok(schemaOf('KubeVirt').properties?.spec?.properties?.configuration, 'configuration, not _configuration');
});

test('parseManifests reads multi-document YAML and JSON Lists', async () => {
  const { parseManifests } = await import('../env/manifests.ts');
  const yamlText = 'apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n---\n---\napiVersion: v1\nkind: Namespace\nmetadata: {name: b}\n';
  assert.deepEqual(parseManifests(yamlText).map((m) => m.metadata.name), ['a', 'b']);
  const list = JSON.stringify({ apiVersion: 'v1', kind: 'List', items: [{ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'c' } }] });
  assert.deepEqual(parseManifests(list).map((m) => m.kind), ['ConfigMap']);
});
