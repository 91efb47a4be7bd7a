import { errorMessage } from '../util/errors.js';
import { sleepUnlessAborted } from '../util/sleep.js';
import type { JobHistory, RunRecord, RunStatus } from './history.js';
import type { JobOutcome } from './jobs.js';
import type { JobEvent, Notifier } from './notify.js';
import type { Schedule } from './schedule.js';

/** Time as the daemon sees it: the system's, or a test's that it moves by hand. */
export interface Clock {
  now(): Date;
  /** resolves after ms, or early when the signal aborts */
  sleep(ms: number, signal: AbortSignal): Promise<void>;
}

export const systemClock: Clock = {
  now: () => new Date(),
  sleep: sleepUnlessAborted,
};

export interface Step {
  name: string;
  run(signal: AbortSignal): Promise<JobOutcome>;
}

/** A scheduled chain of steps: "backup" is backup, retention, check; "drill" is the restore drill. */
export interface ScheduledJob {
  name: string;
  schedule: Schedule;
  steps: Step[];
}

export type Log = (level: 'info' | 'warn' | 'error', message: string, fields?: Record<string, unknown>) => void;

export interface RunnerOptions {
  jobs: ScheduledJob[];
  history: JobHistory;
  clock?: Clock;
  notifier?: Notifier;
  log?: Log;
  stack: string;
  host: string;
  /** after each chain: e.g. measure the repository for the metrics */
  afterJob?: (job: string) => Promise<void>;
}

/** Never sleep longer than this at once, so a changed system clock is noticed. */
const MAX_SLEEP_MS = 60_000;
/**
 * A job whose first step (the backup, the drill) failed or was interrupted runs again
 * after these waits, unless its next scheduled run comes first: a passing fault (the
 * share remounting, the runner's container restarted mid-backup) costs minutes of
 * protection, not a night.
 */
export const RETRY_DELAYS_MS = [5 * 60_000, 20 * 60_000, 60 * 60_000];

/** Whether a job whose first step last ran as `last` gets another attempt. */
function wantsRetry(last: RunRecord): boolean {
  return (last.status === 'failed' || last.status === 'interrupted') && last.attempt <= RETRY_DELAYS_MS.length;
}

export interface NextRun {
  at: Date;
  scheduledFor: Date;
  catchUp: boolean;
  /** 1 for the scheduled run, 2 and up for a retry */
  attempt: number;
}

/**
 * The scheduler: one job at a time (a job whose time comes while another runs waits for
 * it), a run missed while the daemon was down is caught up once at start, and stopping
 * (the signal) abandons the current job safely: backups commit nothing until their
 * snapshot is written, so an abandoned one leaves only unreferenced data.
 */
export class Runner {
  readonly next = new Map<string, NextRun>();
  private planned = false;
  current: { job: string; step: string; started: Date } | null = null;
  private readonly clock: Clock;
  private readonly log: Log;

  constructor(private readonly options: RunnerOptions) {
    this.clock = options.clock ?? systemClock;
    this.log = options.log ?? (() => undefined);
  }

  /**
   * Plan the first run of every job: now for one that was missed or whose last run
   * failed or was cut short (a retry), else its next scheduled moment. Done once.
   */
  plan(): void {
    if (this.planned) return;
    this.planned = true;
    const now = this.clock.now();
    const interrupted = this.options.history.markInterrupted(now);
    if (interrupted > 0) this.log('warn', 'runs cut short by the last stop are marked interrupted', { runs: interrupted });
    for (const job of this.options.jobs) {
      const last = this.options.history.last(job.steps[0]!.name);
      const missed = job.schedule.missed(last ? new Date(last.started) : undefined, now);
      if (missed) {
        this.log('info', 'catching up a run missed while the task runner was down', { job: job.name, missed: missed.toISOString() });
        this.next.set(job.name, { at: now, scheduledFor: missed, catchUp: true, attempt: 1 });
      } else if (last && wantsRetry(last)) {
        // The wait has passed while the runner was down (or restarting): the retry is now.
        const scheduledFor = last.scheduledFor ? new Date(last.scheduledFor) : now;
        this.log('warn', `retrying a run that ${last.status === 'failed' ? 'failed' : 'was cut short'}`, { job: job.name, attempt: last.attempt + 1 });
        this.next.set(job.name, { at: now, scheduledFor, catchUp: false, attempt: last.attempt + 1 });
      } else {
        const at = job.schedule.next(now);
        this.next.set(job.name, { at, scheduledFor: at, catchUp: false, attempt: 1 });
      }
    }
  }

  /** After a run: a retry if its first step failed or was cut short and retries are left, else the next scheduled run. */
  private planAfter(job: ScheduledJob, ran: NextRun): void {
    const now = this.clock.now();
    const regular = job.schedule.next(now);
    const first = this.options.history.last(job.steps[0]!.name);
    const wait = first && wantsRetry(first) ? RETRY_DELAYS_MS[first.attempt - 1]! : undefined;
    if (wait !== undefined && now.getTime() + wait < regular.getTime()) {
      const at = new Date(now.getTime() + wait);
      this.log('warn', 'the job will be retried', { job: job.name, attempt: ran.attempt + 1, at: at.toISOString() });
      this.next.set(job.name, { at, scheduledFor: ran.scheduledFor, catchUp: false, attempt: ran.attempt + 1 });
      return;
    }
    // Moments that passed while the job ran are not run again: the job just ran.
    this.next.set(job.name, { at: regular, scheduledFor: regular, catchUp: false, attempt: 1 });
  }

  async run(signal: AbortSignal): Promise<void> {
    this.plan();
    while (!signal.aborted) {
      const [name, due] = [...this.next].sort((a, b) => a[1].at.getTime() - b[1].at.getTime())[0]!;
      const wait = due.at.getTime() - this.clock.now().getTime();
      if (wait > 0) {
        await this.clock.sleep(Math.min(wait, MAX_SLEEP_MS), signal);
        continue;
      }
      const job = this.options.jobs.find((j) => j.name === name)!;
      await this.runJob(job, due.scheduledFor, signal, due.attempt);
      // Stopping is no failure to retry: the next start plans again.
      if (!signal.aborted) this.planAfter(job, due);
    }
  }

  /** Run a job's steps in order; a step that throws stops the chain. Returns the status of the last step that did not succeed. */
  async runJob(job: ScheduledJob, scheduledFor: Date | null, signal: AbortSignal, attempt = 1): Promise<RunStatus> {
    const notifier = this.options.notifier;
    await notifier?.ping('start', `${job.name} started`);
    let overall: RunStatus = 'success';
    let firstError: string | undefined;
    for (const step of job.steps) {
      const started = this.clock.now();
      const id = this.options.history.begin(step.name, started, scheduledFor, attempt);
      this.current = { job: job.name, step: step.name, started };
      this.log('info', 'job started', { job: step.name, ...(attempt > 1 ? { attempt } : {}) });
      let status: Exclude<RunStatus, 'running'>;
      let outcome: JobOutcome = {};
      let error: string | undefined;
      try {
        outcome = await step.run(signal);
        status = outcome.problem ? 'failed' : 'success';
        error = outcome.problem;
      } catch (err) {
        status = signal.aborted ? 'interrupted' : 'failed';
        error = errorMessage(err);
      }
      const finished = this.clock.now();
      const durationMs = finished.getTime() - started.getTime();
      this.options.history.finish(id, { status, finished, durationMs, bytesAdded: outcome.bytesAdded, snapshot: outcome.snapshot, error, details: outcome.details });
      this.current = null;
      this.log(status === 'success' ? 'info' : 'error', `job ${status}`, { job: step.name, durationMs, error, snapshot: outcome.snapshot });
      if (status !== 'success') {
        overall = status;
        firstError ??= `${step.name}: ${error}`;
      }
      await notifier?.stepFinished({
        ...this.event(step.name, status, started),
        finished: finished.toISOString(),
        durationMs,
        error,
        snapshot: outcome.snapshot,
        bytesAdded: outcome.bytesAdded,
      });
      // A step that threw stops the chain; one that ran with a problem (a partial backup) does not.
      if (status !== 'success' && !outcome.problem) break;
      if (signal.aborted) break;
    }
    await this.options.afterJob?.(job.name).catch((err: unknown) => this.log('warn', 'measuring the repository failed', { error: errorMessage(err) }));
    await notifier?.ping(overall === 'success' ? 'success' : 'fail', firstError ?? `${job.name} done`);
    return overall;
  }

  private event(job: string, status: JobEvent['status'], started: Date): JobEvent {
    return { stack: this.options.stack, host: this.options.host, job, status, started: started.toISOString() };
  }
}
