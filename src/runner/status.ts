import type { Runner, ScheduledJob } from './daemon.js';
import type { JobHistory, RunRecord } from './history.js';
import type { StatusEndpoints } from './http.js';

export interface RepositoryStats {
  sizeBytes: number;
  objects: number;
  snapshots: number;
  measured: string;
}

/** A scheduled run later than this past its moment counts as overdue. */
const OVERDUE_GRACE_MS = 3_600_000;

/**
 * What the daemon tells about itself: health (every step's last run succeeded and no
 * job is overdue), Prometheus metrics and a JSON status, all read from the job history.
 */
export function statusEndpoints(options: {
  stack: string;
  jobs: ScheduledJob[];
  runner: Runner;
  history: JobHistory;
  repository: () => RepositoryStats | undefined;
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
    return { healthy: problems.length === 0, problems };
  };

  const metrics = () => {
    const label = (extra: Record<string, string> = {}) =>
      `{${Object.entries({ stack: options.stack, ...extra })
        .map(([k, v]) => `${k}="${v.replace(/["\\\n]/g, '_')}"`)
        .join(',')}}`;
    const out: string[] = [];
    const gauge = (name: string, help: string, samples: Array<[Record<string, string>, number | undefined]>) => {
      out.push(`# HELP ${name} ${help}`, `# TYPE ${name} gauge`);
      for (const [labels, value] of samples) if (value !== undefined && Number.isFinite(value)) out.push(`${name}${label(labels)} ${value}`);
    };
    const perStep = (get: (r: RunRecord | undefined, step: string) => number | undefined) => steps.map(({ step }): [Record<string, string>, number | undefined] => [{ job: step }, get(lastFinished(step), step)]);
    gauge('stackvault_job_last_success_timestamp_seconds', 'when the job last succeeded', perStep((_r, step) => {
      const s = options.history.last(step, 'success');
      return s?.finished ? Date.parse(s.finished) / 1000 : undefined;
    }));
    gauge('stackvault_job_last_duration_seconds', 'how long the last finished run took', perStep((r) => (r?.durationMs ?? undefined) === undefined ? undefined : r!.durationMs! / 1000));
    gauge('stackvault_job_last_success', '1 if the last finished run succeeded, else 0', perStep((r) => (r ? (r.status === 'success' ? 1 : 0) : undefined)));
    gauge('stackvault_job_running', '1 while the job runs', perStep((_r, step) => (options.runner.current?.step === step ? 1 : 0)));
    gauge('stackvault_job_last_attempt', 'the attempt of the last finished run: 1 as scheduled, 2 and up for retries', perStep((r) => r?.attempt));
    out.push('# HELP stackvault_job_retries_total runs that were retries after a failure or an interruption', '# TYPE stackvault_job_retries_total counter');
    for (const { step } of steps) out.push(`stackvault_job_retries_total${label({ job: step })} ${options.history.retries(step)}`);
    gauge('stackvault_backup_bytes_added', 'bytes the last successful backup added to the repository', [[{}, options.history.last('backup', 'success')?.bytesAdded ?? undefined]]);
    const repo = options.repository();
    gauge('stackvault_repository_size_bytes', 'bytes stored in the repository', [[{}, repo?.sizeBytes]]);
    gauge('stackvault_repository_objects', 'objects stored in the repository', [[{}, repo?.objects]]);
    gauge('stackvault_snapshots', 'snapshots in the repository that are not forgotten', [[{}, repo?.snapshots]]);
    const checked = options.history.last('check', 'success')?.details as { packsRead?: number; bytesRead?: number } | null | undefined;
    gauge('stackvault_check_packs_verified', 'packs the last successful check read back and verified', [[{}, checked?.packsRead]]);
    gauge('stackvault_check_bytes_verified', 'bytes the last successful check read back and verified', [[{}, checked?.bytesRead]]);
    const drill = options.history.last('drill', 'success')?.details as { rtoMs?: number } | null | undefined;
    gauge('stackvault_drill_rto_seconds', 'how long the last successful restore drill took to restore the stack', [[{}, drill?.rtoMs === undefined ? undefined : drill.rtoMs / 1000]]);
    gauge('stackvault_healthy', '1 if /healthz reports ok', [[{}, health().healthy ? 1 : 0]]);
    return out.join('\n') + '\n';
  };

  const status = () => ({
    stack: options.stack,
    now: now().toISOString(),
    health: health(),
    current: options.runner.current,
    next: Object.fromEntries([...options.runner.next].map(([job, n]) => [job, { at: n.at.toISOString(), catchUp: n.catchUp, attempt: n.attempt }])),
    repository: options.repository() ?? null,
    last: Object.fromEntries(steps.map(({ step }) => [step, options.history.last(step) ?? null])),
    recent: options.history.recent(20),
  });

  return { health, metrics, status };
}
