import { archiveLagSeconds, type ArchiverStatus } from '../snapshot/binlog/archiver.js';
import type { Runner, ScheduledJob } from './daemon.js';
import type { JobHistory, RunRecord } from './history.js';
import type { StatusEndpoints } from './http.js';

export interface RepositoryStats {
  sizeBytes: number;
  objects: number;
  snapshots: number;
  /** days every object stays immutable (0: none) */
  immutabilityDays: number;
  measured: string;
}

/** Whether the runner's last look at the repository (after each job) reached it. */
export interface RepositoryReach {
  reachable: boolean;
  at: string;
  error?: string;
}

/** A scheduled run later than this past its moment counts as overdue. */
const OVERDUE_GRACE_MS = 3_600_000;

/**
 * What the daemon tells about itself: health (every step's last run succeeded and no
 * job is overdue), Prometheus metrics and a JSON status, all read from the job history.
 */
export function statusEndpoints(options: {
  stack: string;
  /** the host name the stack's snapshots record (stackHost) */
  host: string;
  jobs: ScheduledJob[];
  runner: Pick<Runner, 'current' | 'next'>;
  history: JobHistory;
  repository: () => RepositoryStats | undefined;
  reach?: () => RepositoryReach | undefined;
  /** binary log archives, with the lag each may reach before the runner is unhealthy */
  binlog?: () => Array<{ status: ArchiverStatus; maxLagSeconds: number }>;
  now?: () => Date;
}): StatusEndpoints {
  const now = options.now ?? (() => new Date());
  const steps = options.jobs.flatMap((j) => j.steps.map((s) => ({ job: j, step: s.name })));
  const lastFinished = (step: string): RunRecord | undefined => {
    const last = options.history.last(step);
    return last?.status === 'running' ? options.history.recent(200).find((r) => r.job === step && r.status !== 'running') : last;
  };

  const health = () => {
    const problems: string[] = [];
    for (const { step } of steps) {
      const last = lastFinished(step);
      if (last && last.status !== 'success') problems.push(`${step} ${last.status} at ${last.finished ?? last.started}: ${last.error ?? ''}`.trim());
    }
    for (const job of options.jobs) {
      const success = options.history.last(job.steps[0]!.name, 'success');
      const since = success ? new Date(success.started) : undefined;
      const due = since ? job.schedule.next(since) : undefined;
      const running = options.runner.current?.job === job.name;
      if (due && !running && now().getTime() - due.getTime() > OVERDUE_GRACE_MS) problems.push(`${job.name} overdue: no success since ${since!.toISOString()}`);
    }
    for (const { status, maxLagSeconds } of options.binlog?.() ?? []) {
      const lag = archiveLagSeconds(status, now().getTime());
      if (lag > maxLagSeconds) {
        problems.push(
          `binary log archive of ${status.source} ${Number.isFinite(lag) ? `is ${Math.round(lag)} s behind` : 'has committed nothing yet'}` +
            (status.lastError ? `: ${status.lastError}` : status.connected ? '' : ': not connected'),
        );
      }
    }
    return { healthy: problems.length === 0, problems };
  };

  /**
   * Prometheus text format. Every sample carries `stack` and `host`, so one Prometheus can
   * watch a vendor's whole fleet (deploy/monitoring/ has alert rules and a dashboard over
   * these names); names follow Prometheus' conventions, checked by `promtool check metrics`.
   */
  const metrics = () => {
    const label = (extra: Record<string, string> = {}) =>
      `{${Object.entries({ stack: options.stack, host: options.host, ...extra })
        .map(([k, v]) => `${k}="${v.replace(/["\\\n]/g, '_')}"`)
        .join(',')}}`;
    const out: string[] = [];
    const family = (name: string, type: 'gauge' | 'counter', help: string, samples: Array<[Record<string, string>, number | undefined]>) => {
      out.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
      for (const [labels, value] of samples) if (value !== undefined && Number.isFinite(value)) out.push(`${name}${label(labels)} ${value}`);
    };
    const gauge = (name: string, help: string, samples: Array<[Record<string, string>, number | undefined]>) => family(name, 'gauge', help, samples);
    const one = (value: number | undefined): Array<[Record<string, string>, number | undefined]> => [[{}, value]];
    const seconds = (iso: string | null | undefined) => (iso ? Date.parse(iso) / 1000 : undefined);
    const perStep = (get: (r: RunRecord | undefined, step: string) => number | undefined) => steps.map(({ step }): [Record<string, string>, number | undefined] => [{ job: step }, get(lastFinished(step), step)]);
    gauge('stackvault_job_last_success_timestamp_seconds', 'when the job last succeeded', perStep((_r, step) => seconds(options.history.last(step, 'success')?.finished)));
    gauge('stackvault_job_last_duration_seconds', 'how long the last finished run took', perStep((r) => (r?.durationMs ?? undefined) === undefined ? undefined : r!.durationMs! / 1000));
    gauge('stackvault_job_last_success', '1 if the last finished run succeeded, else 0', perStep((r) => (r ? (r.status === 'success' ? 1 : 0) : undefined)));
    gauge('stackvault_job_running', '1 while the job runs', perStep((_r, step) => (options.runner.current?.step === step ? 1 : 0)));
    gauge('stackvault_job_last_attempt', 'the attempt of the last finished run: 1 as scheduled, 2 and up for retries', perStep((r) => r?.attempt));
    gauge(
      'stackvault_job_next_run_timestamp_seconds',
      'when the job runs next (a retry or a catch-up included)',
      options.jobs.map((j): [Record<string, string>, number | undefined] => [{ job: j.name }, seconds(options.runner.next.get(j.name)?.at.toISOString())]),
    );
    family('stackvault_job_retries_total', 'counter', 'runs that were retries after a failure or an interruption', steps.map(({ step }) => [{ job: step }, options.history.retries(step)]));
    gauge('stackvault_backup_added_bytes', 'bytes the last successful backup added to the repository', one(options.history.last('backup', 'success')?.bytesAdded ?? undefined));
    const repo = options.repository();
    gauge('stackvault_repository_size_bytes', 'bytes stored in the repository', one(repo?.sizeBytes));
    gauge('stackvault_repository_objects', 'objects stored in the repository', one(repo?.objects));
    gauge('stackvault_repository_immutability_seconds', 'how long every object stays immutable (0: not at all)', one(repo === undefined ? undefined : repo.immutabilityDays * 86_400));
    const reach = options.reach?.();
    gauge('stackvault_repository_reachable', '1 if the runner reached the repository the last time it looked (after each job), else 0', one(reach === undefined ? undefined : reach.reachable ? 1 : 0));
    gauge('stackvault_snapshots', 'snapshots in the repository that are not forgotten', one(repo?.snapshots));
    const checked = options.history.last('check', 'success')?.details as { packsRead?: number; bytesRead?: number } | null | undefined;
    gauge('stackvault_check_verified_packs', 'packs the last successful check read back and verified', one(checked?.packsRead));
    gauge('stackvault_check_verified_bytes', 'bytes the last successful check read back and verified', one(checked?.bytesRead));
    const lastCheck = lastFinished('check');
    const found = lastCheck?.details as { errorCount?: number; errors?: unknown[] } | null | undefined;
    gauge('stackvault_check_errors', 'problems (damage, missing data) the last finished check found', one(lastCheck ? (found?.errorCount ?? found?.errors?.length ?? (lastCheck.status === 'success' ? 0 : undefined)) : undefined));
    const drill = options.history.last('drill', 'success')?.details as { rtoMs?: number } | null | undefined;
    gauge('stackvault_drill_rto_seconds', 'how long the last successful restore drill took to restore the stack', one(drill?.rtoMs === undefined ? undefined : drill.rtoMs / 1000));
    // Locks are renewed by the retention step, where the repository enforces immutability.
    const retention = options.history.last('retention', 'success');
    const renewed = (retention?.details as { locksExtended?: number } | null | undefined)?.locksExtended === undefined ? undefined : retention;
    gauge(
      'stackvault_retention_locks_expiry_timestamp_seconds',
      'when the immutability of what kept snapshots need runs out unless renewed (the last renewal plus the immutability period)',
      one(renewed?.finished && repo?.immutabilityDays ? Date.parse(renewed.finished) / 1000 + repo.immutabilityDays * 86_400 : undefined),
    );
    const archives = options.binlog?.() ?? [];
    if (archives.length > 0) {
      const per = (get: (s: ArchiverStatus) => number | undefined) => archives.map(({ status }): [Record<string, string>, number | undefined] => [{ source: status.source }, get(status)]);
      gauge('stackvault_binlog_archive_lag_seconds', "seconds of the database's binary log a host failure now would lose (events read but not yet committed, or the time since the archive was last known complete)", per((s) => archiveLagSeconds(s, now().getTime())));
      gauge('stackvault_binlog_archive_connected', '1 while the archiver reads the server\'s binary log', per((s) => (s.connected ? 1 : 0)));
      gauge('stackvault_binlog_archive_complete_timestamp_seconds', 'the moment up to which the binary log archive is complete', per((s) => (s.coveredUntil ? s.coveredUntil / 1000 : undefined)));
      family('stackvault_binlog_archive_segments_total', 'counter', 'binary log segments committed since the runner started', per((s) => s.segments));
      family('stackvault_binlog_archive_bytes_total', 'counter', 'binary log bytes archived since the runner started', per((s) => s.bytes));
    }
    gauge('stackvault_healthy', '1 if /healthz reports ok', one(health().healthy ? 1 : 0));
    return out.join('\n') + '\n';
  };

  const status = () => ({
    stack: options.stack,
    now: now().toISOString(),
    health: health(),
    current: options.runner.current,
    next: Object.fromEntries([...options.runner.next].map(([job, n]) => [job, { at: n.at.toISOString(), catchUp: n.catchUp, attempt: n.attempt }])),
    repository: options.repository() ?? null,
    binlog: (options.binlog?.() ?? []).map(({ status }) => ({ ...status, lagSeconds: archiveLagSeconds(status, now().getTime()) })),
    last: Object.fromEntries(steps.map(({ step }) => [step, options.history.last(step) ?? null])),
    recent: options.history.recent(20),
  });

  return { health, metrics, status };
}
