import assert from 'node:assert/strict';
import { test } from 'node:test';
import { jitteredBackoff, linearBackoff, retry } from '../../src/util/retry.js';

test('retry: tries again what may pass, stops at what may not, and gives up with the last error', async () => {
  const seen: number[] = [];
  const result = await retry(
    async (attempt) => {
      if (attempt < 3) throw new Error(`busy ${attempt}`);
      return attempt;
    },
    { attempts: 5, retryable: (err) => /busy/.test(String(err)), delayMs: () => 1, onRetry: (_err, failures) => seen.push(failures) },
  );
  assert.equal(result, 3);
  assert.deepEqual(seen, [1, 2], 'told of each failure that is tried again');

  let tries = 0;
  await assert.rejects(
    retry(async () => {
      tries++;
      throw new Error('wrong password');
    }, { attempts: 5, retryable: (err) => /busy/.test(String(err)), delayMs: () => 1 }),
    /wrong password/,
  );
  assert.equal(tries, 1, 'what may not pass is not tried again');

  tries = 0;
  await assert.rejects(
    retry(async () => {
      throw new Error(`busy ${++tries}`);
    }, { attempts: 4, retryable: () => true, delayMs: () => 1 }),
    /busy 4/,
  );
});

test('retry: an abort ends the wait', async () => {
  const controller = new AbortController();
  const started = Date.now();
  setTimeout(() => controller.abort(new Error('interrupted')), 20);
  await assert.rejects(retry(async () => Promise.reject(new Error('busy')), { attempts: 3, retryable: () => true, delayMs: () => 60_000, signal: controller.signal }), /interrupted|aborted/);
  assert.ok(Date.now() - started < 5_000);
});

test('backoffs: jittered doubles up to its ceiling, linear grows by its step', () => {
  for (let i = 0; i < 100; i++) {
    assert.ok(jitteredBackoff(100, 1_000)(1) <= 100);
    assert.ok(jitteredBackoff(100, 1_000)(10) <= 1_000);
  }
  assert.equal(linearBackoff(500)(3), 1_500);
});
