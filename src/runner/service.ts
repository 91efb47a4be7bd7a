import { closeSync, openSync, readFileSync, unlinkSync, writeSync } from 'node:fs';
import type { Server } from 'node:http';
import { stackHost } from '../stack/context.js';
import { resolve } from 'node:path';
import type { LoadedConfig } from '../config/load.js';
import { binlogArchivers } from '../stack/binlog-archivers.js';
import { drillDatabaseOf } from '../stack/drill-stack.js';
import { openBackend } from '../repo/backends/open.js';
import { Repository } from '../repo/repository.js';
import { listSnapshots } from '../snapshot/snapshot.js';
import { UsageError, errorMessage } from '../util/errors.js';
import { processLives } from '../util/process-alive.js';
import { Runner, systemClock, type Clock, type Log, type ScheduledJob } from './daemon.js';
import { JobHistory } from './history.js';
import { Console, type ConsoleContext } from './console/console.js';
import type { ConsoleSessions } from './console/session.js';
import { consolePassword, runnerToken } from './credentials.js';
import { consoleUnservable, startStatusServer } from './http.js';
import { backupJob, checkJob, drillJob, retentionJob, type JobContext } from './jobs.js';
import { Notifier } from './notify.js';
import { Schedule } from './schedule.js';
import { statusEndpoints, type RepositoryReach, type RepositoryStats } from './status.js';

export interface TaskRunnerOptions {
  loaded: LoadedConfig;
  /** repository location; repository.url of the config when omitted */
  repository?: string;
  password: string | undefined;
  /** host:port for health and metrics, false for none; runner.listen of the config when omitted */
  listen?: string | false;
  log: Log;
  clock?: Clock;
}

export interface TaskRunner {
  runner: Runner;
  history: JobHistory;
  jobs: ScheduledJob[];
  /** where /healthz, /metrics and /api/status answer */
  url: string | null;
  /** run one job now, outside the schedule (still one at a time) */
  runNow(job: string): Promise<string>;
  /** run on schedule until stop() */
  serve(): Promise<void>;
  /** abandon the current job safely and stop */
  stop(): Promise<void>;
}

/**
 * The task runner of a stack, put together from its stackvault.yaml: the scheduled jobs,
 * the history, notifications, and the status server. Only one runner may use a history.
 */
export async function startTaskRunner(options: TaskRunnerOptions): Promise<TaskRunner> {
  const { loaded, log } = options;
  const { config } = loaded;
  const schedule = config.schedule;
  const timeZone = schedule?.time_zone;
  const host = stackHost(config);
  const location = options.repository ?? config.repository.url;
  const ctx: JobContext = {
    loaded,
    openRepository: async () => Repository.open(openBackend(location, { baseDir: loaded.baseDir }), options.password),
    drillDatabase: drillDatabaseOf(loaded),
  };
  const jobs: ScheduledJob[] = [
    {
      name: 'backup',
      schedule: new Schedule(schedule?.backup ?? '0 2 * * *', timeZone),
      steps: [
        { name: 'backup', run: (signal) => backupJob(ctx, signal) },
        { name: 'retention', run: () => retentionJob(ctx) },
        { name: 'check', run: () => checkJob(ctx) },
      ],
    },
  ];
  const drill = schedule?.drill ?? '0 4 * * 0';
  if (drill !== false) jobs.push({ name: 'drill', schedule: new Schedule(drill, timeZone), steps: [{ name: 'drill', run: (signal) => drillJob(ctx, signal) }] });

  const historyFile = resolve(loaded.baseDir, config.runner?.history ?? '.stackvault/history.sqlite');
  const history = new JobHistory(historyFile);
  const releaseLock = lockHistory(historyFile, history);
  let repository: RepositoryStats | undefined;
  let reach: RepositoryReach | undefined;
  const measure = async () => {
    try {
      const repo = await ctx.openRepository();
      let sizeBytes = 0;
      let objects = 0;
      for await (const info of repo.backend.list('')) {
        sizeBytes += info.size;
        objects++;
      }
      repository = { sizeBytes, objects, snapshots: (await listSnapshots(repo)).length, immutabilityDays: repo.config.immutabilityDays, measured: new Date().toISOString() };
      reach = { reachable: true, at: repository.measured };
    } catch (err) {
      reach = { reachable: false, at: new Date().toISOString(), error: errorMessage(err) };
      throw err;
    }
  };
  const notify = config.notify;
  const runner = new Runner({
    jobs,
    history,
    clock: options.clock ?? systemClock,
    notifier: notify ? new Notifier({ webhook: notify.webhook, pingUrl: notify.ping_url, onSuccess: notify.on_success }, (m, f) => log('warn', m, f)) : undefined,
    log,
    stack: config.stack,
    host,
    afterJob: measure,
  });
  // The binary log is archived all the time the runner serves, beside the scheduled jobs.
  const archiving = new AbortController();
  const archivers = binlogArchivers(loaded, ctx.openRepository, archiving.signal, (level, message) => log(level, message));
  const binlog = () =>
    archivers.map((a) => {
      const entry = config.sources.find((s) => s.name === a.status.source);
      const segmentSeconds = (entry && 'binlog_segment_seconds' in entry ? entry.binlog_segment_seconds : undefined) ?? 60;
      // A few segments late, or an hour idle without a word from the server, is a problem.
      return { status: a.status, maxLagSeconds: Math.max(5 * segmentSeconds, 300) };
    });
  const endpoints = statusEndpoints({ stack: config.stack, host, jobs, runner, history, repository: () => repository, reach: () => reach, binlog, now: () => (options.clock ?? systemClock).now() });
  const controller = new AbortController();
  let oneAtATime: Promise<unknown> = Promise.resolve();
  const runNow = (name: string) => {
    const job = jobs.find((j) => j.name === name);
    if (!job) throw new UsageError(`no job "${name}" (jobs: ${jobs.map((j) => j.name).join(', ')})`);
    const run = oneAtATime.then(() => runner.runJob(job, null, controller.signal));
    oneAtATime = run.catch(() => undefined);
    return run;
  };
  const listen = options.listen ?? config.runner?.listen ?? '127.0.0.1:9180';
  const console = (sessions: ConsoleSessions) =>
    new Console(
      {
        stack: config.stack,
        openRepository: ctx.openRepository,
        status: () => endpoints.status() as ReturnType<ConsoleContext['status']>,
        history,
        configFile: loaded.file,
        jobs: jobs.map((j) => j.name),
        runNow,
      },
      sessions,
    );
  let server: Server | undefined;
  try {
    const token = runnerToken(loaded);
    const consolePasswordHash = consolePassword(loaded);
    const login = { token, consolePasswordHash, consoleLogin: config.runner?.console_login };
    // Asked for a login on loopback too, and none set: refused. (Beyond loopback without one, the status endpoints are served without the console.)
    const unservable = login.consoleLogin ? consoleUnservable(listen || '127.0.0.1:0', login) : undefined;
    if (unservable) throw new UsageError(unservable);
    server = listen === false ? undefined : await startStatusServer(listen, endpoints, { ...login, console });
  } catch (err) {
    releaseLock();
    history.close();
    throw err;
  }
  const address = server?.address();
  const url = address && typeof address === 'object' ? `http://${address.address}:${address.port}` : null;
  measure().catch(() => undefined);

  let serving: Promise<void> | undefined;
  let stopping: Promise<void> | undefined;
  return {
    runner,
    history,
    jobs,
    url,
    runNow,
    serve: () => (serving ??= Promise.all([runner.run(controller.signal), ...archivers.map((a) => a.run())]).then(() => undefined)),
    stop: () =>
      (stopping ??= (async () => {
        controller.abort();
        archiving.abort();
        await serving?.catch(() => undefined);
        await oneAtATime;
        await new Promise<void>((r) => (server ? server.close(() => r()) : r()));
        history.close();
        releaseLock();
      })()),
  };
}

/** One runner per history: a second would run jobs on top of the first one's. */
function lockHistory(historyFile: string, history: JobHistory): () => void {
  const lock = `${historyFile}.lock`;
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fd = openSync(lock, 'wx');
      writeSync(fd, String(process.pid));
      closeSync(fd);
      return () => {
        try {
          unlinkSync(lock);
        } catch {
          /* already gone */
        }
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const pid = Number(readFileSync(lock, 'utf8'));
      if (pid && processLives(pid)) {
        history.close();
        throw new UsageError(`another task runner (pid ${pid}) uses ${historyFile}; stop it first`);
      }
      // Left by a runner that was killed: take it over.
      unlinkSync(lock);
    }
  }
  throw new UsageError(`cannot lock ${historyFile}`);
}
