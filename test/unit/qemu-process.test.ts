import assert from 'node:assert/strict';
import { test } from 'node:test';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { qemuTree } from '../../src/qemu/process.ts';

test('CLOUDNET_QEMU_ROOT selects an extracted QEMU tree: its binary and its firmware directories', () => {
  assert.equal(qemuTree({ CLOUDNET_QEMU_ROOT: '' }), undefined, 'set but empty: the system QEMU');
  assert.deepEqual(qemuTree({ CLOUDNET_QEMU_ROOT: '/c/qemu-bpo/10' }), {
    binary: '/c/qemu-bpo/10/usr/bin/qemu-system-x86_64',
    dataDirs: ['/c/qemu-bpo/10/usr/share/qemu', '/c/qemu-bpo/10/usr/share/seabios'],
  });
});

test('without CLOUDNET_QEMU_ROOT, the newest tree that hack/fetch-qemu.sh put into the cache', (t) => {
  const cache = fs.mkdtempSync(path.join(os.tmpdir(), 'qemu-tree-'));
  t.after(() => fs.rmSync(cache, { recursive: true, force: true }));
  assert.equal(qemuTree({ CLOUDNET_CACHE: cache }), undefined, 'nothing fetched: the system QEMU');
  const tree = (v: string): string => {
    const bin = path.join(cache, 'qemu-bpo', v, 'usr/bin');
    fs.mkdirSync(bin, { recursive: true });
    fs.writeFileSync(path.join(bin, 'qemu-system-x86_64'), '');
    return path.join(cache, 'qemu-bpo', v);
  };
  tree('1_9.2.1_ds-1_bpo12_1');
  const newest = tree('1_10.0.7_ds-0_deb12u1_bpo12_1');
  fs.mkdirSync(path.join(cache, 'qemu-bpo', '1_11.0.0_ds-1.tmp', 'usr/bin'), { recursive: true }); // an extraction cut short
  assert.equal(qemuTree({ CLOUDNET_CACHE: cache })?.binary, path.join(newest, 'usr/bin/qemu-system-x86_64'));
  assert.equal(qemuTree({ CLOUDNET_CACHE: cache, CLOUDNET_QEMU_ROOT: '' }), undefined, 'an empty CLOUDNET_QEMU_ROOT still means the system QEMU');
});
