import assert from 'node:assert/strict';
import { test } from 'node:test';
import { TaskLimiter } from '../../src/util/concurrency.js';

test('a task limiter that saw a task fail refuses every submit still waiting for a slot, none left hanging', async () => {
  const limiter = new TaskLimiter(1);
  let fail!: (err: Error) => void;
  await limiter.submit(() => new Promise((_, reject) => (fail = reject)));
  // Three wait for the one slot; the task in it then fails.
  const waiting = [1, 2, 3].map(() => limiter.submit(async () => undefined));
  fail(new Error('the upload failed'));
  const settled = await Promise.race([Promise.allSettled(waiting), new Promise((resolve) => setTimeout(() => resolve('hanging'), 2000))]);
  assert.notEqual(settled, 'hanging', 'a submit waited for a slot forever');
  for (const s of settled as PromiseSettledResult<void>[]) assert.equal(s.status === 'rejected' && (s.reason as Error).message, 'the upload failed');
  await assert.rejects(limiter.drain(), /the upload failed/);
});
