import assert from 'node:assert/strict';
import { test } from 'node:test';
import { runTablePipeline, type PartJob } from '../../src/sources/mariadb/table-pipeline.js';

/** Jobs that log their start and end only when the test lets them, so that the order is the test's, not the timer's. */
function controlledJobs() {
  const log: string[] = [];
  const finish = new Map<string, { resolve: () => void; reject: (err: Error) => void }>();
  const job = (name: string) => (worker: string) => {
    log.push(`${worker}:${name}`);
    return new Promise<void>((resolve, reject) => finish.set(name, { resolve, reject }));
  };
  const settle = () => new Promise((resolve) => setImmediate(resolve));
  return { log, finish, job, settle };
}

test("a table's indexes are built as soon as its last part is loaded, ahead of other tables' parts, never before", async () => {
  const { log, finish, job, settle } = controlledJobs();
  const parts: Array<PartJob<string, string>> = [
    { table: 'calls', load: job('calls 1') },
    { table: 'calls', load: job('calls 2') },
    { table: 'events', load: job('events 1') },
    { table: 'events', load: job('events 2') },
  ];
  const indexes = new Map([
    ['calls', job('calls indexes')],
    ['events', job('events indexes')],
    ['empty', job('empty indexes')],
  ]);
  const done = runTablePipeline(['A', 'B'], parts, indexes);
  await settle();
  // A table without parts has its indexes ready at once.
  assert.deepEqual(log, ['A:empty indexes', 'B:calls 1']);
  finish.get('empty indexes')!.resolve();
  await settle();
  assert.deepEqual(log.slice(2), ['A:calls 2']);
  finish.get('calls 1')!.resolve();
  await settle();
  // calls 2 is still loading: calls' indexes must wait, so B goes on with the next part.
  assert.deepEqual(log.slice(3), ['B:events 1']);
  finish.get('calls 2')!.resolve();
  await settle();
  // calls is loaded: its indexes come before events 2, which is still waiting.
  assert.deepEqual(log.slice(4), ['A:calls indexes']);
  finish.get('events 1')!.resolve();
  await settle();
  assert.deepEqual(log.slice(5), ['B:events 2']);
  finish.get('events 2')!.resolve();
  await settle();
  assert.deepEqual(log.slice(6), ['B:events indexes']);
  finish.get('events indexes')!.resolve();
  finish.get('calls indexes')!.resolve();
  await done;
  assert.equal(log.length, 7);
});

test('a failed part stops the pipeline: nothing starts after it, no worker waits forever, the error comes back', async () => {
  const { log, finish, job, settle } = controlledJobs();
  const parts: Array<PartJob<string, string>> = [
    { table: 'calls', load: job('calls 1') },
    { table: 'events', load: job('events 1') },
  ];
  const indexes = new Map([
    ['calls', job('calls indexes')],
    ['events', job('events indexes')],
  ]);
  const done = runTablePipeline(['A', 'B', 'C'], parts, indexes);
  await settle();
  // C found nothing to take and waits for indexes that a part under way may make ready.
  assert.deepEqual(log, ['A:calls 1', 'B:events 1']);
  finish.get('calls 1')!.reject(new Error('the server went away'));
  await settle();
  // events is loaded after the failure: its indexes are not built.
  finish.get('events 1')!.resolve();
  const settled = await Promise.race([done.then(() => 'resolved', (err: Error) => err.message), new Promise((resolve) => setTimeout(() => resolve('hanging'), 2000))]);
  assert.equal(settled, 'the server went away');
  assert.deepEqual(log, ['A:calls 1', 'B:events 1'], 'a job started after a part failed');
});
