import type { LoadedConfig } from '../config/load.js';
import { backendExtra } from '../repo/backends/backend.js';
import type { Repository } from '../repo/repository.js';
import { check } from '../snapshot/maintenance/check.js';
import { extendRetentionOfKept } from '../snapshot/maintenance/extend-retention.js';
import { executePrune, planPrune } from '../snapshot/maintenance/prune.js';
import { applyRetention, isEmptyPolicy, retentionPolicyOf } from '../snapshot/maintenance/retention.js';
import { forgetSnapshots, listSnapshots } from '../snapshot/snapshot.js';
import type { ConnectOptions } from '../sources/mariadb/connection.js';
import { backupStack } from '../stack/backup-stack.js';
import { changedWhileReadWarning, type BackupResult } from '../snapshot/backup/backup.js';
import { drillStack } from '../stack/drill-stack.js';

/** What a job reports when it is done; a thrown error is a failed job. */
export interface JobOutcome {
  snapshot?: string;
  bytesAdded?: number;
  /** set when the job ran but its result needs attention (a partial backup, damage found) */
  problem?: string;
  details?: Record<string, unknown>;
}

/** What jobs need from the daemon: the stack's configuration and its repository. */
export interface JobContext {
  loaded: LoadedConfig;
  openRepository(): Promise<Repository>;
  /** the scratch database server of drills, when configured */
  drillDatabase?: ConnectOptions;
}

export async function backupJob(ctx: JobContext, signal: AbortSignal): Promise<JobOutcome> {
  // Asked each night: the incarnation, the version and the database's address change with updates.
  const result = await backupStack(ctx.loaded, { repository: () => ctx.openRepository(), signal });
  const bytesAdded = result.snapshot.sources.reduce((n, s) => n + s.stats.bytesAdded, 0);
  return {
    snapshot: result.id,
    bytesAdded,
    problem: backupProblem(result),
    details: { sources: result.snapshot.sources.map((s) => ({ name: s.name, ...s.stats, unreadable: s.errors.length, changedWhileRead: s.changedWhileRead?.length ?? 0 })) },
  };
}

/** What a nightly backup that saved its snapshot still asks the operator to look at. */
function backupProblem(result: BackupResult): string | undefined {
  const problems = [...(result.errorCount > 0 ? [`${result.errorCount} entries could not be read`] : []), ...(result.changedCount > 0 ? [changedWhileReadWarning(result.changedCount, result.snapshot)] : [])];
  return problems.length > 0 ? `snapshot ${result.id.slice(0, 8)} saved, but ${problems.join('; ')}` : undefined;
}

/** Forget by the retention rules, prune within the immutability rules, keep locks alive. */
export async function retentionJob(ctx: JobContext): Promise<JobOutcome> {
  const repo = await ctx.openRepository();
  const { config } = ctx.loaded;
  const policy = retentionPolicyOf(config.retention);
  let forgotten: string[] = [];
  if (!isEmptyPolicy(policy)) {
    const mine = (await listSnapshots(repo)).filter((s) => s.snapshot.stack === config.stack);
    forgotten = applyRetention(mine, policy).flatMap((d) => d.remove.map((x) => x.id));
    await forgetSnapshots(repo, forgotten);
  }
  const details: Record<string, unknown> = { forgotten: forgotten.length };
  if (config.schedule?.prune ?? true) {
    const plan = await planPrune(repo, { pitrDays: config.retention?.pitr_days });
    const pruned = await executePrune(repo, plan);
    Object.assign(details, { deleted: pruned.deleted, bytesFreed: pruned.bytesFreed, packsRecordedForDeletion: plan.mark.length });
  }
  if (repo.config.immutabilityDays > 0 && (await backendExtra(repo.backend, 'extendRetention'))) {
    details.locksExtended = (await extendRetentionOfKept(await ctx.openRepository())).extended;
  }
  return { details };
}

export async function checkJob(ctx: JobContext): Promise<JobOutcome> {
  const repo = await ctx.openRepository();
  const subset = ctx.loaded.config.schedule?.check_subset ?? '5%';
  const result = await check(repo, subset === false ? {} : { readDataSubset: subset });
  return {
    problem: result.errors.length > 0 ? `check found ${result.errors.length} problems: ${result.errors.slice(0, 3).join('; ')}` : undefined,
    details: { snapshots: result.snapshots, packs: result.packs, packsRead: result.packsRead, bytesRead: result.bytesRead, errorCount: result.errors.length, errors: result.errors.slice(0, 20) },
  };
}

/** The stack's restore drill (stack/drill-stack.ts), as a job. */
export async function drillJob(ctx: JobContext, signal: AbortSignal): Promise<JobOutcome> {
  return drillStack(ctx.loaded, await ctx.openRepository(), { database: ctx.drillDatabase, signal });
}
