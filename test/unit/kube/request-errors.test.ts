// Request failures are worded for the cluster operator: what is wrong in the kubeconfig or at the
// address, never Node.js's advice about its own flags.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { describeRequestError } from '../../../src/kube/request-errors.ts';
import { KubeApiError } from '../../../src/kube/rest.ts';

const codeError = (message: string, code: string) => Object.assign(new TypeError('fetch failed'), { cause: Object.assign(new Error(message), { code }) });

test('an unknown CA names the kubeconfig field to fix and no Node.js flag', () => {
  const e = codeError('self-signed certificate; if the root CA is installed locally, try running Node.js with --use-system-ca', 'DEPTH_ZERO_SELF_SIGNED_CERT');
  const m = describeRequestError(e);
  assert.match(m, /certificate-authority-data/);
  assert.doesNotMatch(m, /Node\.js|--use-system-ca/);
});

test('known transport codes and API errors get plain words; other text loses Node hints', () => {
  assert.match(describeRequestError(codeError('connect ECONNREFUSED 127.0.0.1:1', 'ECONNREFUSED')), /^connection refused/);
  assert.match(describeRequestError(codeError('x', 'CERT_HAS_EXPIRED')), /has expired/);
  assert.equal(describeRequestError(new KubeApiError(403, 'Forbidden', 'secrets is forbidden')), 'HTTP 403 Forbidden: secrets is forbidden');
  assert.equal(describeRequestError(new Error('odd failure; try running Node.js with --foo')), 'odd failure');
  assert.equal(describeRequestError(Object.assign(new Error('The operation was aborted due to timeout'), { name: 'TimeoutError' })), 'the API server did not answer in time');
});
