// The one polling helper: what it returns, when it gives up and what its failure says. No
// assertion here reads a clock: attempts are counted.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { waitFor } from '../../helpers/poll.ts';

test('resolves with the first value that is not undefined, null or false (0 and "" count as values)', async () => {
  const answers: unknown[] = [undefined, null, false, 0];
  let calls = 0;
  const v = await waitFor(() => answers[calls++], { what: 'a value', intervalMs: 1 });
  assert.equal(v, 0);
  assert.equal(calls, 4);
  assert.equal(await waitFor(async () => '', { what: 'an empty string' }), '');
});

test('a timeout names what was awaited, the attempts, the last error and the diagnostics', async () => {
  let calls = 0;
  const err = await waitFor(() => {
    calls++;
    throw new Error(`not yet #${calls}`);
  }, { what: 'the moon', timeoutMs: 0, diagnostics: () => 'tide: low' }).catch((e: unknown) => e as Error);
  assert.ok(err instanceof Error);
  assert.equal(calls, 1, 'timeoutMs 0: exactly one attempt');
  assert.match(err.message, /^timed out after 0 ms waiting for the moon \(1 attempts; last error: not yet #1\)\ntide: low$/);
});

test('errors are retried by default; with retryErrors: false the first one fails the wait', async () => {
  let calls = 0;
  const v = await waitFor(() => {
    if (++calls < 3) throw new Error('API server restarting');
    return 'up';
  }, { what: 'the server', intervalMs: 1 });
  assert.equal(v, 'up');
  assert.equal(calls, 3);

  calls = 0;
  await assert.rejects(waitFor(() => {
    calls++;
    throw new Error('gateway exited (1)');
  }, { what: 'the gateway', retryErrors: false }), /^Error: gateway exited \(1\)$/);
  assert.equal(calls, 1);
});
