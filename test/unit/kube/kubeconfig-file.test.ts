// The site gateway's peer kubeconfig as a mounted Secret (src/kube/kubeconfig-file.ts): loaded
// from the file, kept while the file stays the same, re-read after the kubelet's atomic update (a
// symlink swap of the ..data directory), missing until the Secret appears, and refused like a
// Site kubeconfig (exec, token files, unverified servers...) without quoting it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import yaml from 'js-yaml';
import { ClusterClientError } from '../../../src/kube/clusters.ts';
import { KubeconfigFileClient } from '../../../src/kube/kubeconfig-file.ts';

const kubeconfig = (server: string, user: Record<string, unknown>) => yaml.dump({
  apiVersion: 'v1', kind: 'Config', 'current-context': 'b',
  clusters: [{ name: 'b', cluster: { server, 'certificate-authority-data': 'Q0E=' } }],
  users: [{ name: 'gw', user }],
  contexts: [{ name: 'b', context: { cluster: 'b', user: 'gw' } }],
});

/** Writes `text` the way the kubelet updates a Secret volume: a new timestamped dir, then ..data swapped to it. */
function kubeletWrite(dir: string, n: number, text: string): void {
  const ts = join(dir, `..ts_${n}`);
  mkdirSync(ts);
  writeFileSync(join(ts, 'kubeconfig'), text, { mode: 0o400 });
  symlinkSync(`..ts_${n}`, join(dir, '..data_tmp'));
  renameSync(join(dir, '..data_tmp'), join(dir, '..data'));
  try { symlinkSync('..data/kubeconfig', join(dir, 'kubeconfig')); } catch { /* already links through ..data */ }
}

function reason(reasonWanted: string, notQuoting?: RegExp) {
  return (e: unknown) => {
    assert.ok(e instanceof ClusterClientError, String(e));
    assert.equal(e.reason, reasonWanted);
    if (notQuoting) assert.doesNotMatch(e.message, notQuoting);
    return true;
  };
}

test('a mounted peer kubeconfig is loaded, kept while unchanged, reloaded after a kubelet update, and refused like a Site kubeconfig', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'cn-kubeconfig-file-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const c = new KubeconfigFileClient({ path: join(dir, 'kubeconfig'), clusterName: 'site-b' });
  t.after(() => c.close());

  await assert.rejects(c.client(), reason('KubeconfigMissing'), 'no Secret mounted yet');

  kubeletWrite(dir, 1, kubeconfig('https://198.51.100.7:6443', { token: 'first-s3cr3t' }));
  const first = await c.client();
  assert.equal(first.rest.server, 'https://198.51.100.7:6443');
  assert.equal(await c.client(), first, 'unchanged file: the same client');
  assert.equal(c.loads, 1);

  // Same content rewritten (a kubelet resync): the client stays.
  kubeletWrite(dir, 2, kubeconfig('https://198.51.100.7:6443', { token: 'first-s3cr3t' }));
  assert.equal(await c.client(), first);
  assert.equal(c.loads, 1);

  // A rotated token: a new client.
  kubeletWrite(dir, 3, kubeconfig('https://198.51.100.8:6443', { token: 'second-s3cr3t' }));
  const second = await c.client();
  assert.notEqual(second, first);
  assert.equal(second.rest.server, 'https://198.51.100.8:6443');
  assert.equal(c.loads, 2);

  // The refusals of a Site kubeconfig, naming the entry, never the contents.
  kubeletWrite(dir, 4, kubeconfig('https://198.51.100.8:6443', { exec: { command: '/bin/sh', args: ['-c', 'id'] }, token: 'third-s3cr3t' }));
  await assert.rejects(c.client(), reason('KubeconfigInvalid', /s3cr3t|\/bin\/sh/));
  kubeletWrite(dir, 5, kubeconfig('https://198.51.100.8:6443', { 'token-file': '/var/run/secrets/kubernetes.io/serviceaccount/token' }));
  await assert.rejects(c.client(), reason('KubeconfigInvalid', /serviceaccount/));
  kubeletWrite(dir, 6, 'users: [token: "fourth-s3cr3t"\n  : : :');
  await assert.rejects(c.client(), reason('KubeconfigInvalid', /s3cr3t/));

  kubeletWrite(dir, 7, kubeconfig('https://198.51.100.9:6443', { token: 'fifth-s3cr3t' }));
  assert.equal((await c.client()).rest.server, 'https://198.51.100.9:6443', 'a fixed file is used again');

  rmSync(join(dir, 'kubeconfig'));
  await assert.rejects(c.client(), reason('KubeconfigMissing'), 'the Secret was removed');
});
