// The KubeVirt/CDI CRDs generated from the KubeVirt 1.7 types, on a real API server: the kinds
// are served with a status subresource, a decentralized migration is accepted as written, and a
// misspelled field is rejected with fieldValidation=Strict (what kubectl sends) or, without it,
// pruned (so a test that reads the object back catches it).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createNamespace, kubeRequest, KubeRequestError, useClusters, type Manifest } from '../env/index.ts';
import { waitFor } from '../helpers/poll.ts';

const env = useClusters(1);
const NS = 'vms';
const vmimPath = (name = '') => `/apis/kubevirt.io/v1/namespaces/${NS}/virtualmachineinstancemigrations${name ? `/${name}` : ''}`;

type Obj = Manifest & { spec?: Record<string, unknown>; status?: Record<string, unknown> };

function vmim(name: string, spec: Record<string, unknown>): Obj {
  return { apiVersion: 'kubevirt.io/v1', kind: 'VirtualMachineInstanceMigration', metadata: { name }, spec };
}

const create = (path: string, body: unknown, strict = false) =>
  kubeRequest<Obj>(env.clusters[0].credentials, 'POST', path, { body, query: strict ? { fieldValidation: 'Strict' } : {} });

function rejectedWith(code: number, pattern: RegExp) {
  return (e: unknown) => {
    assert.ok(e instanceof KubeRequestError, `expected an API error, got ${String(e)}`);
    assert.equal(e.code, code, e.message);
    assert.match(e.message, pattern);
    return true;
  };
}

/**
 * The resources discovery lists for `groupVersion`, once it lists every one of `wanted`: discovery
 * follows a CRD's Established condition asynchronously (a CI run once listed three of the four
 * KubeVirt kinds).
 */
async function servedOnceListed(groupVersion: string, wanted: readonly string[]): Promise<string[]> {
  let names: string[] = [];
  await waitFor(async () => {
    const list = await kubeRequest<{ resources: { name: string }[] }>(env.clusters[0].credentials, 'GET', `/apis/${groupVersion}`);
    names = list.resources.map((r) => r.name).sort();
    return wanted.every((w) => names.includes(w));
  }, { what: `${groupVersion} discovery listing ${wanted.join(', ')}`, timeoutMs: 30_000, intervalMs: 200, diagnostics: () => `served: ${names.join(', ')}` });
  return names;
}

test('KubeVirt and CDI kinds are served, with a status subresource', async () => {
  await createNamespace(env.clusters[0], NS);
  const plurals = ['kubevirts', 'virtualmachineinstancemigrations', 'virtualmachineinstances', 'virtualmachines'];
  const names = await servedOnceListed('kubevirt.io/v1', plurals.flatMap((p) => [p, `${p}/status`]));
  for (const plural of plurals) {
    assert.ok(names.includes(plural), `${plural} served`);
    assert.ok(names.includes(`${plural}/status`), `${plural}/status served`);
  }
  const cdiNames = await servedOnceListed('cdi.kubevirt.io/v1beta1', ['datavolumes', 'datavolumes/status']);
  assert.deepEqual(cdiNames, ['datavolumes', 'datavolumes/status']);
});

test('a VMIM with a misspelled field is rejected (spec.sendTo.connectUrl)', async () => {
  const bad = vmim('typo', { vmiName: 'vm1', sendTo: { connectUrl: '198.51.100.10:9185', migrationID: 'mig-1' } });
  // kubectl's default: strict field validation names the unknown field.
  await assert.rejects(create(vmimPath(), bad, true), rejectedWith(400, /unknown field "spec\.sendTo\.connectUrl"/));
  // Without Strict the unknown field is pruned, and the required connectURL is then missing.
  await assert.rejects(create(vmimPath(), bad), rejectedWith(422, /spec\.sendTo\.connectURL: Required value/));
});

test('without Strict, a misspelled optional field is silently pruned (and Strict rejects it)', async () => {
  const body = vmim('pruned', { vmiName: 'vm1', receive: { migrationID: 'mig-2' }, addedNodeSelectr: { zone: 'a' } });
  await assert.rejects(create(vmimPath(), body, true), rejectedWith(400, /unknown field "spec\.addedNodeSelectr"/));
  const created = await create(vmimPath(), body);
  assert.deepEqual(created.spec, { vmiName: 'vm1', receive: { migrationID: 'mig-2' } }, 'the typo vanished');
});

test('valid decentralized VMIMs (source sendTo, target receive) are accepted as written', async () => {
  const source = vmim('wan-source', {
    vmiName: 'vm1',
    sendTo: { connectURL: '198.51.100.10:9185', migrationID: 'wan-mig-7' },
  });
  const target = vmim('wan-target', { vmiName: 'vm1', receive: { migrationID: 'wan-mig-7' } });
  for (const obj of [source, target]) {
    const created = await create(vmimPath(), obj, true);
    assert.deepEqual(created.spec, obj.spec);
  }
  // Status is a subresource: the status endpoint writes status; the main endpoint ignores it.
  const creds = env.clusters[0].credentials;
  const current = await kubeRequest<Obj>(creds, 'GET', vmimPath('wan-source'));
  const withStatus = { ...current, status: { phase: 'Running', migrationState: { targetMemoryOverhead: '128Mi', mode: 'PreCopy' } } };
  const updated = await kubeRequest<Obj>(creds, 'PUT', vmimPath('wan-source/status'), {
    body: withStatus, query: { fieldValidation: 'Strict' },
  });
  assert.equal(updated.status?.phase, 'Running');
  const viaMain = await kubeRequest<Obj>(creds, 'PUT', vmimPath('wan-source'), { body: { ...updated, status: { phase: 'Failed' } } });
  assert.equal(viaMain.status?.phase, 'Running');
});

test('VirtualMachine, VMI, DataVolume and KubeVirt objects validate against the 1.7 schemas', async () => {
  const vm: Obj = {
    apiVersion: 'kubevirt.io/v1',
    kind: 'VirtualMachine',
    metadata: { name: 'vm1' },
    spec: {
      runStrategy: 'Always',
      dataVolumeTemplates: [{
        metadata: { name: 'vm1-disk' },
        spec: { storage: { resources: { requests: { storage: '1Gi' } } }, source: { blank: {} } },
      }],
      template: {
        metadata: { labels: { 'kubevirt.io/vm': 'vm1' }, annotations: { note: 'kept' } },
        spec: {
          domain: {
            cpu: { cores: 1 },
            memory: { guest: '128Mi' },
            resources: { requests: { memory: 134217728, cpu: '100m' } },
            devices: { disks: [{ name: 'root', disk: { bus: 'virtio' } }], interfaces: [{ name: 'default', masquerade: {} }] },
          },
          networks: [{ name: 'default', pod: {} }],
          volumes: [{ name: 'root', dataVolume: { name: 'vm1-disk' } }],
          readinessProbe: { tcpSocket: { port: 22 }, initialDelaySeconds: 5 },
        },
      },
    },
  };
  const created = await create(`/apis/kubevirt.io/v1/namespaces/${NS}/virtualmachines`, vm, true);
  assert.deepEqual(created.spec, vm.spec, 'nothing pruned: template metadata, quantities as numbers, probe port');

  const vmi: Obj = {
    apiVersion: 'kubevirt.io/v1', kind: 'VirtualMachineInstance', metadata: { name: 'vm1' },
    spec: { domain: { devices: {}, memory: { guest: '128Mi' } } },
  };
  await create(`/apis/kubevirt.io/v1/namespaces/${NS}/virtualmachineinstances`, vmi, true);
  await assert.rejects(
    create(`/apis/kubevirt.io/v1/namespaces/${NS}/virtualmachineinstances`, { ...vmi, metadata: { name: 'vm2' }, spec: { domain: { devices: {}, memroy: {} } } }, true),
    rejectedWith(400, /unknown field "spec\.domain\.memroy"/),
  );

  const dv: Obj = {
    apiVersion: 'cdi.kubevirt.io/v1beta1', kind: 'DataVolume', metadata: { name: 'disk1' },
    spec: { source: { http: { url: 'http://192.0.2.1/disk.img' } }, storage: { resources: { requests: { storage: '1Gi' } } } },
  };
  await create(`/apis/cdi.kubevirt.io/v1beta1/namespaces/${NS}/datavolumes`, dv, true);
  await assert.rejects(
    create(`/apis/cdi.kubevirt.io/v1beta1/namespaces/${NS}/datavolumes`, { ...dv, metadata: { name: 'disk2' }, spec: { sorce: {} } }, true),
    rejectedWith(400, /unknown field "spec\.sorce"/),
  );

  const kv: Obj = {
    apiVersion: 'kubevirt.io/v1', kind: 'KubeVirt', metadata: { name: 'kubevirt' },
    spec: { configuration: { developerConfiguration: { featureGates: ['DecentralizedLiveMigration'] } } },
  };
  const kvCreated = await create(`/apis/kubevirt.io/v1/namespaces/${NS}/kubevirts`, kv, true);
  assert.deepEqual(kvCreated.spec, kv.spec);
});
