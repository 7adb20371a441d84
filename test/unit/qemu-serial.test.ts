// Pure parts of src/qemu: serial line splitting with host timestamps, heartbeat statistics, and
// the guest kernel command line that selects a workload.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { kernelCmdline } from '../../src/qemu/image.ts';
import { heartbeatStats, parseHeartbeats, SerialConsole } from '../../src/qemu/serial.ts';

test('serial console splits chunks into lines, drops CR, and waits for later lines only when asked', async () => {
  const s = new SerialConsole();
  s.feed('HB 1 10\r\nCLOUDNET READY work');
  s.feed(Buffer.from('load=idle\r\nHB 2 110\n'));
  assert.deepEqual(s.lines.map((l) => l.text), ['HB 1 10', 'CLOUDNET READY workload=idle', 'HB 2 110']);
  assert.equal((await s.waitFor(/READY workload=(\w+)/, 10)).match[1], 'idle');
  const later = s.waitFor(/HB (\d+)/, 1000, s.count);
  s.feed('HB 3 210\n');
  assert.equal((await later).match[1], '3');
  await assert.rejects(s.waitFor(/never/, 20), /no line matching/);
  s.close();
});

test('heartbeat stats find the largest host-side gap and counters going backwards', () => {
  const lines = [
    { at: 0, text: 'HB 1 100' },
    { at: 100, text: 'HB 2 200' },
    { at: 150, text: 'MW 1 3000' },
    { at: 700, text: 'HB 3 300' },
    { at: 800, text: 'HB 4 400' },
  ];
  const st = heartbeatStats(parseHeartbeats(lines));
  assert.equal(st.count, 4);
  assert.equal(st.maxGapMs, 600);
  assert.equal(st.maxGapAfterN, 2);
  assert.ok(st.monotonic);
  assert.equal(heartbeatStats(parseHeartbeats([...lines, { at: 900, text: 'HB 2 500' }])).monotonic, false);
});

test('kernel command line carries the workload and its options', () => {
  assert.equal(
    kernelCmdline({ name: ['memwriter', 'sqlload'], params: { 'wss-mb': 64, mix: 'zero:20,text:80' }, heartbeatMs: 50 }),
    'console=ttyS0 quiet panic=-1 cloudnet.workload=memwriter,sqlload cloudnet.hb_ms=50 cloudnet.wss_mb=64 cloudnet.mix=zero:20,text:80',
  );
  assert.throws(() => kernelCmdline({ name: 'idle', params: { bad: 'a b' } }), /bad workload parameter/);
});
