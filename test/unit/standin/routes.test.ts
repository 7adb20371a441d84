// The stand-in's stream routes: KubeVirt's port pair per slot (memory, NBD disks), and relay flags
// that match what relayRoute hands the QEMUs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { MigrationJob } from '../../standin/driver.ts';
import { directRoute, relayRoute, relaySlotFlags } from '../../standin/qemu-driver.ts';

const job = {} as MigrationJob;
const target = { netns: 'b', nodeIp: '198.51.100.10' };

test('direct route: slot 0 is KubeVirt 49152/49153, each slot its own pair, released slots are reused', () => {
  const r = directRoute(49152, 2);
  const a = r.acquire(job, target);
  const b = r.acquire(job, target);
  assert.equal(a.uri, 'tcp:198.51.100.10:49152');
  assert.deepEqual(a.disk.connect, { host: '198.51.100.10', port: 49153 });
  assert.deepEqual(a.disk.listen, a.disk.connect);
  assert.equal(b.incomingUri, 'tcp:0.0.0.0:49154');
  assert.equal(b.disk.listen.port, 49155);
  assert.throws(() => r.acquire(job, target), /no free migration port/);
  a.release();
  assert.equal(r.acquire(job, target).disk.listen.port, 49153);
});

test('relay route and relaySlotFlags agree on listeners and targets, disks in NBD mode', () => {
  const flags = relaySlotFlags(2, undefined, undefined, target.nodeIp);
  const r = relayRoute(2);
  for (let i = 0; i < 2; i++) {
    const p = r.acquire(job, target);
    const port = (uri: string): string => uri.split(':').at(-1)!;
    assert.ok(flags.send.includes(`127.0.0.1:${port(p.uri)}/${p.label}`));
    assert.ok(flags.receive.includes(`${p.label}=127.0.0.1:${port(p.incomingUri)}`));
    assert.ok(flags.send.includes(`127.0.0.1:${p.disk.connect.port}/${p.disk.label}@nbd`));
    assert.ok(flags.receive.includes(`${p.disk.label}=${p.disk.listen.host}:${p.disk.listen.port}`));
  }
  assert.deepEqual(relaySlotFlags(1), { send: ['--listen', '127.0.0.1:49152/mem0'], receive: ['--target', 'mem0=127.0.0.1:49252'] });
});
