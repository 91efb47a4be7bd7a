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

test("one part per table at a time; a table's indexes as soon as its last part is in, ahead of other parts", async () => {
  const { log, finish, job, settle } = controlledJobs();
  const parts: Array<PartJob<string, string>> = [
    { table: 'calls', load: job('calls 1') },
    { table: 'calls', load: job('calls 2') },
    { table: 'events', load: job('events 1') },
    { table: 'logs', load: job('logs 1') },
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
  // calls is being loaded by B: A takes the next table's part, not calls 2.
  assert.deepEqual(log.slice(2), ['A:events 1']);
  finish.get('events 1')!.resolve();
  await settle();
  // events is loaded: its indexes come before logs 1.
  assert.deepEqual(log.slice(3), ['A:events indexes']);
  finish.get('events indexes')!.resolve();
  await settle();
  assert.deepEqual(log.slice(4), ['A:logs 1']);
  finish.get('logs 1')!.resolve();
  await settle();
  // Only calls 2 is left, and calls is still loading: A waits.
  assert.deepEqual(log.slice(5), []);
  finish.get('calls 1')!.resolve();
  await settle();
  assert.deepEqual(log.slice(5), ['B:calls 2']);
  finish.get('calls 2')!.resolve();
  await settle();
  assert.deepEqual(log.slice(6), ['B:calls indexes']);
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
