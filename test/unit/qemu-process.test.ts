import assert from 'node:assert/strict';
import { test } from 'node:test';
import { qemuTree } from '../../src/qemu/process.ts';

test('CLOUDNET_QEMU_ROOT selects an extracted QEMU tree: its binary and its firmware directories', () => {
  assert.equal(qemuTree({}), undefined);
  assert.deepEqual(qemuTree({ CLOUDNET_QEMU_ROOT: '/c/qemu-bpo/10' }), {
    binary: '/c/qemu-bpo/10/usr/bin/qemu-system-x86_64',
    dataDirs: ['/c/qemu-bpo/10/usr/share/qemu', '/c/qemu-bpo/10/usr/share/seabios'],
  });
});
