// The operator as `cloudnet operator` wires it (defaultControllerFactories) never contacts an
// address a user wrote. A WanMigration with storage.mode CloudNetPreCopy carries a trap URL in the
// old agent annotation and in every free-form string the API lets a user set; the VM carries it
// too. The trap counts every TCP connection and would answer with a marker body. While the
// migration runs (and stalls or fails in its storage step), the trap sees no connection and no
// Event carries the marker.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:net';
import { Res } from '../../src/api/resources.ts';
import { defaultControllerFactories } from '../../src/operator/controllers.ts';
import { createVM, ensure, eventsFor, getWM, useOperatorBed, wanMigration, type Bed } from '../standin/harness.ts';
import { waitFor } from '../helpers/poll.ts';

const MARKER = 'TRAP-BODY-3c9e1d';

let bed: Bed | undefined;
// With the agent image set, the storage launcher runs too: nothing it does may reach the trap either.
useOperatorBed((b) => { bed = b; }, { factories: defaultControllerFactories({ CLOUDNET_AGENT_IMAGE: 'cloudnet/operator:0.1.0' }) });

async function trap(): Promise<{ server: Server; port: number; connections: () => number }> {
  let n = 0;
  const server = createServer((s) => {
    n++;
    s.on('error', () => undefined);
    s.end(`HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nconnection: close\r\n\r\n{"phase":"Failed","reason":"${MARKER}","message":"${MARKER}","error":"${MARKER}"}`);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return { server, port: (server.address() as { port: number }).port, connections: () => n };
}

test('no WanMigration field or annotation makes the operator contact a URL the user chose', { timeout: 120_000 }, async () => {
  const b = bed!;
  const t = await trap();
  try {
    const url = `http://127.0.0.1:${t.port}/`;
    const ns = 'ssrf';
    await ensure(b.dst, Res.namespace, { metadata: { name: ns } });
    const urlAnnotations = {
      'cloudnet.io/storage-agent': url, 'cloudnet.io/storage-agents': `${url},${url}`, 'cloudnet.io/agent-url': url,
      'cloudnet.io/relay-stats': url, 'cloudnet.io/target': url,
    };
    await createVM(b.src, ns, 'vm', { annotations: urlAnnotations });
    await b.src.create(Res.wanMigration, wanMigration(ns, 'mig', {
      vmName: 'vm',
      storage: { mode: 'CloudNetPreCopy', storageClassMap: { 'local-path': url }, defaultStorageClass: url },
      relay: { enabled: true },
    }, urlAnnotations));
    // Through the preflight and the link step into the storage step, then a while in it.
    const wm = await waitFor(async () => {
      const w = await getWM(b.src, ns, 'mig');
      return w?.status?.phase && !['Pending', 'ConnectingLink'].includes(w.status.phase) ? w : undefined;
    }, { what: 'the storage step', timeoutMs: 60_000, intervalMs: 200 });
    const entered = Date.now();
    let reconciles = 0;
    let lastStatus = '';
    while (Date.now() - entered < 10_000) {
      const w = await getWM(b.src, ns, 'mig');
      const s = JSON.stringify(w?.status?.conditions);
      if (s !== lastStatus) { reconciles++; lastStatus = s; }
      await new Promise((r) => setTimeout(r, 250));
    }
    assert.ok(wm.status?.phase, 'the migration started');
    assert.equal(t.connections(), 0, `the operator connected to the user's URL ${t.connections()} time(s)`);
    const events = await eventsFor(b.src, ns, 'mig');
    assert.ok(events.length > 0, 'the migration recorded Events');
    for (const e of events) assert.ok(!(e.note ?? '').includes(MARKER), `Event ${e.reason} carries the trap's reply: ${e.note}`);
    const final = await getWM(b.src, ns, 'mig');
    assert.ok(!JSON.stringify(final?.status ?? {}).includes(MARKER), 'status carries the trap\'s reply');
    console.log(`[ssrf] phase ${final?.status?.phase}, ${events.length} Events, ${reconciles} status changes in 10 s, trap connections ${t.connections()}`);
  } finally {
    t.server.close();
  }
});
