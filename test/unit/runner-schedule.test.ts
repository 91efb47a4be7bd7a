import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { Runner, type Clock, type ScheduledJob } from '../../src/runner/daemon.js';
import { JobHistory } from '../../src/runner/history.js';
import { Schedule } from '../../src/runner/schedule.js';
import { tempDir } from '../support/helpers.js';

/** A clock that only moves when the test (or a job) moves it; sleeping jumps ahead at once. */
class TestClock implements Clock {
  constructor(public time: Date) {}
  now(): Date {
    return new Date(this.time);
  }
  advance(ms: number): void {
    this.time = new Date(this.time.getTime() + ms);
  }
  async sleep(ms: number, signal: AbortSignal): Promise<void> {
    if (!signal.aborted) this.advance(ms);
    await new Promise((r) => setImmediate(r));
  }
}

async function history(t: TestContext): Promise<JobHistory> {
  const h = new JobHistory(join(await tempDir(t), 'history.sqlite'));
  t.after(() => h.close());
  return h;
}

test('schedules follow cron in a time zone, across daylight-saving changes', () => {
  const nightly = new Schedule('0 2 * * *', 'Europe/Berlin');
  assert.equal(nightly.next(new Date('2026-03-28T12:00:00Z')).toISOString(), '2026-03-29T01:00:00.000Z', '02:00 does not exist the night clocks go forward: the run comes right after the jump');
  assert.equal(nightly.next(new Date('2026-03-29T12:00:00Z')).toISOString(), '2026-03-30T00:00:00.000Z', 'then 02:00 CEST');
  assert.equal(nightly.next(new Date('2026-10-25T12:00:00Z')).toISOString(), '2026-10-26T01:00:00.000Z', 'back to 02:00 CET');
  assert.equal(new Schedule('0 2 * * *', 'UTC').next(new Date('2026-11-25T01:59:59Z')).toISOString(), '2026-11-25T02:00:00.000Z');
  const everySecond = new Schedule('* * * * * *');
  assert.equal(everySecond.next(new Date('2026-11-25T10:00:00.300Z')).toISOString(), '2026-11-25T10:00:01.000Z');
});

test('a run missed while the daemon was down is caught up once, and only when one was missed', () => {
  const nightly = new Schedule('0 2 * * *', 'UTC');
  const lastRun = new Date('2026-11-20T02:00:00Z');
  assert.equal(nightly.missed(lastRun, new Date('2026-11-21T01:59:00Z')), undefined, 'nothing due yet');
  assert.equal(nightly.missed(lastRun, new Date('2026-11-25T09:00:00Z'))?.toISOString(), '2026-11-21T02:00:00.000Z', 'four nights missed: one catch-up');
  assert.equal(nightly.missed(undefined, new Date('2026-11-25T09:00:00Z')), undefined, 'a new stack waits for its first night');
});

test('jobs run one at a time on schedule; a missed night is caught up at start; a failed step stops its chain', async (t) => {
  const clock = new TestClock(new Date('2026-11-25T09:00:00Z'));
  const h = await history(t);
  // The last backup ran four nights ago: one catch-up is due at start.
  const old = h.begin('backup', new Date('2026-11-21T02:00:00Z'), new Date('2026-11-21T02:00:00Z'));
  h.finish(old, { status: 'success', finished: new Date('2026-11-21T02:10:00Z'), durationMs: 600_000 });

  const ran: string[] = [];
  let running = 0;
  let checks = 0;
  const step = (name: string, minutes: number, fail?: () => boolean) => ({
    name,
    run: async () => {
      running++;
      assert.equal(running, 1, 'never two jobs at once');
      ran.push(`${name}@${clock.now().toISOString().slice(0, 16)}`);
      clock.advance(minutes * 60_000);
      running--;
      if (fail?.()) throw new Error(`${name} broke`);
      return {};
    },
  });
  const jobs: ScheduledJob[] = [
    { name: 'backup', schedule: new Schedule('0 2 * * *', 'UTC'), steps: [step('backup', 50), step('check', 20, () => ++checks === 1), step('after-check', 1)] },
    // The drill is due while the backup still runs: it waits, then runs.
    { name: 'drill', schedule: new Schedule('30 2 * * *', 'UTC'), steps: [step('drill', 30)] },
  ];
  const controller = new AbortController();
  const runner = new Runner({ jobs, history: h, clock, stack: 's', host: 'h' });
  const stopAt = new Date('2026-11-27T00:00:00Z');
  const loop = runner.run(controller.signal);
  while (clock.now() < stopAt) await new Promise((r) => setImmediate(r));
  controller.abort();
  await loop;

  assert.deepEqual(ran, [
    'backup@2026-11-25T09:00', // the catch-up
    'check@2026-11-25T09:50', // fails: after-check is not run
    'backup@2026-11-26T02:00',
    'check@2026-11-26T02:50',
    'after-check@2026-11-26T03:10',
    'drill@2026-11-26T03:11', // due 02:30, waited for the backup chain
  ]);
  const catchUp = h.recent(100).find((r) => r.job === 'backup' && r.started.startsWith('2026-11-25T09:00'));
  assert.equal(catchUp?.scheduledFor, '2026-11-22T02:00:00.000Z', 'the catch-up names the night it makes up for');
  assert.equal(h.last('check', 'failed')?.error, 'check broke');
});

test('a run cut short by a crash is marked interrupted when the runner starts again', async (t) => {
  const clock = new TestClock(new Date('2026-11-25T09:00:00Z'));
  const h = await history(t);
  h.begin('backup', new Date('2026-11-25T02:00:00Z'), new Date('2026-11-25T02:00:00Z'));
  const runner = new Runner({ jobs: [{ name: 'backup', schedule: new Schedule('0 2 * * *', 'UTC'), steps: [{ name: 'backup', run: async () => ({}) }] }], history: h, clock, stack: 's', host: 'h' });
  runner.plan();
  const last = h.last('backup')!;
  assert.equal(last.status, 'interrupted');
  assert.match(last.error!, /stopped during this run/);
  // This night's run was cut short: it is retried at once, not next night.
  assert.deepEqual({ ...runner.next.get('backup')!, at: runner.next.get('backup')!.at.toISOString() }, {
    at: '2026-11-25T09:00:00.000Z',
    scheduledFor: new Date('2026-11-25T02:00:00Z'),
    catchUp: false,
    attempt: 2,
  });
});

test('a failed backup is retried after 5, 20 and 60 minutes, then waits for its night; each retry is in the history', async (t) => {
  const clock = new TestClock(new Date('2026-11-25T02:00:00Z'));
  const h = await history(t);
  const ran: string[] = [];
  let failures = 4;
  const job: ScheduledJob = {
    name: 'backup',
    schedule: new Schedule('0 2 * * *', 'UTC'),
    steps: [
      {
        name: 'backup',
        run: async () => {
          ran.push(clock.now().toISOString().slice(11, 16));
          clock.advance(60_000);
          if (failures-- > 0) throw new Error('the share is not mounted');
          return {};
        },
      },
    ],
  };
  const controller = new AbortController();
  const runner = new Runner({ jobs: [job], history: h, clock, stack: 's', host: 'h' });
  runner.plan();
  runner.next.set('backup', { at: clock.now(), scheduledFor: clock.now(), catchUp: false, attempt: 1 });
  const loop = runner.run(controller.signal);
  while (clock.now() < new Date('2026-11-26T02:30:00Z')) await new Promise((r) => setImmediate(r));
  controller.abort();
  await loop;
  // Four failures: the scheduled run and three retries; the next night succeeds.
  assert.deepEqual(ran, ['02:00', '02:06', '02:27', '03:28', '02:00']);
  const runs = h.recent(100).reverse();
  assert.deepEqual(runs.map((r) => [r.attempt, r.status]), [[1, 'failed'], [2, 'failed'], [3, 'failed'], [4, 'failed'], [1, 'success']]);
  assert.ok(runs.slice(1, 4).every((r) => r.scheduledFor === '2026-11-25T02:00:00.000Z'), 'a retry names the night it retries');
  assert.equal(h.retries('backup'), 3);
});

test('a retry that succeeds ends the retries', async (t) => {
  const clock = new TestClock(new Date('2026-11-25T02:00:00Z'));
  const h = await history(t);
  let failures = 1;
  const job: ScheduledJob = { name: 'backup', schedule: new Schedule('0 2 * * *', 'UTC'), steps: [{ name: 'backup', run: async () => { clock.advance(60_000); if (failures-- > 0) throw new Error('connection reset'); return {}; } }] };
  const controller = new AbortController();
  const runner = new Runner({ jobs: [job], history: h, clock, stack: 's', host: 'h' });
  runner.plan();
  runner.next.set('backup', { at: clock.now(), scheduledFor: clock.now(), catchUp: false, attempt: 1 });
  const loop = runner.run(controller.signal);
  while (h.recent(10).filter((r) => r.status !== 'running').length < 2) await new Promise((r) => setImmediate(r));
  controller.abort();
  await loop;
  assert.deepEqual(h.recent(10).reverse().map((r) => [r.attempt, r.status, r.started.slice(11, 16)]), [[1, 'failed', '02:00'], [2, 'success', '02:06']]);
  assert.equal(runner.next.get('backup')!.attempt, 1);
  assert.equal(runner.next.get('backup')!.at.toISOString(), '2026-11-26T02:00:00.000Z');
});
