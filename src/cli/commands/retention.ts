import type { Command } from 'commander';
import { executePrune, planPrune, type PrunePlan } from '../../snapshot/maintenance/prune.js';
import { extendRetentionOfKept } from '../../snapshot/maintenance/extend-retention.js';
import { applyRetention, isEmptyPolicy, retentionPolicyOf, type GroupKey, type RetentionPolicy } from '../../snapshot/maintenance/retention.js';
import { findSnapshot, forgetSnapshots, forgottenIds, listSnapshots, matchesFilter, shortId } from '../../snapshot/snapshot.js';
import type { Repository } from '../../repo/repository.js';
import { UsageError, errorMessage } from '../../util/errors.js';
import { formatBytes, parseDuration, plural } from '../../util/format.js';
import type { CliContext } from '../context.js';
import { collect, emit } from '../output.js';
import { addFilterOptions, filterFrom } from './browse.js';

const count = (v: string) => {
  if (v === 'unlimited') return -1;
  const n = Number(v);
  if (!Number.isInteger(n) || n < -1) throw new UsageError(`"${v}" is not a count (a whole number, or "unlimited")`);
  return n;
};

function describePlan(plan: PrunePlan): string {
  const d = plan.delete;
  const k = plan.keepForNow;
  const marked = plan.mark.reduce((n, c) => n + c.size, 0);
  const lines = [
    `prune plan (immutability ${plan.immutabilityDays} days, safety margin ${plan.safetyMarginMinutes} minutes, now ${plan.now}):`,
    `  ${plan.snapshotsKept} snapshots kept; ${plan.packsUsed} of ${plan.packs} packs hold their data (${formatBytes(plan.unusedBytesInUsedPacks)} unused inside them)`,
    `  delete: ${d.packs.length} unused packs recorded for deletion earlier, ${d.snapshots.length} forgotten snapshots, ${d.forgetRecords.length} forget records, ${d.indexFiles.length} superseded index files, ${d.deletionRecords.length} deletion records, ${d.staleUploads.length} stale uploads: ${formatBytes(plan.bytesFreed)}`,
  ];
  if (d.binlogSegments.length > 0 || k.binlogSegments.length > 0) {
    lines.push(`  binary log archive: ${d.binlogSegments.length} segments older than any kept snapshot's recovery window deleted, ${k.binlogSegments.length} such segments still immutable`);
  }
  if (plan.mark.length > 0) {
    lines.push(`  record for deletion: ${plan.mark.length} unused packs (${formatBytes(marked)}); a prune at least ${plan.safetyMarginMinutes} minutes later deletes them, running backups write again what they need of them`);
  }
  if (plan.reprieved.length > 0) lines.push(`  kept: ${plan.reprieved.length} packs recorded for deletion that a snapshot saved since needs`);
  if (plan.unindexedPacks > 0) lines.push(`  indexed again from their headers: ${plan.unindexedPacks} packs no index listed`);
  if (plan.markingHeldBack) lines.push(`  held back: ${plan.markingHeldBack}`);
  for (const damage of plan.damaged) lines.push(`  damaged, skipped: ${damage}`);
  const waiting = [...k.packs, ...k.snapshots, ...k.indexFiles];
  if (waiting.length > 0) {
    const next = waiting.map((c) => c.deletableAfter).sort()[0];
    lines.push(`  not yet deletable (immutable, recorded less than the safety margin ago, or possibly in use by a running backup): ${k.packs.length} packs, ${k.snapshots.length} snapshots, ${k.indexFiles.length} index files; the first may go after ${next}`);
  }
  return lines.join('\n');
}

export async function runPrune(ctx: CliContext, repo: Repository, yes: boolean): Promise<void> {
  const plan = await planPrune(repo, { pitrDays: ctx.config()?.config.retention?.pitr_days });
  const nothing = Object.values(plan.delete).every((l) => l.length === 0) && plan.mark.length === 0 && !plan.rewriteIndex;
  if (!yes || nothing) {
    emit(
      ctx,
      () => describePlan(plan) + (nothing ? '\nnothing to delete' : '\nnothing was deleted: run again with --yes to carry out this plan'),
      () => ({ message_type: 'prune_plan', executed: false, ...plan }),
    );
    return;
  }
  const result = await executePrune(repo, plan);
  emit(
    ctx,
    () =>
      describePlan(plan) +
      `\ndeleted ${result.deleted} objects, freed ${formatBytes(result.bytesFreed)}` +
      (result.deletionRecord ? `; recorded ${plan.mark.length} packs for deletion (deletion record ${result.deletionRecord.slice(0, 8)})` : ''),
    () => ({ message_type: 'prune_plan', executed: true, ...plan, deleted: result.deleted, new_index: result.newIndex, deletion_record: result.deletionRecord }),
  );
}

interface ForgetFlags {
  undo?: boolean;
  keepLast?: number;
  keepHourly?: number;
  keepDaily?: number;
  keepWeekly?: number;
  keepMonthly?: number;
  keepYearly?: number;
  keepWithin?: string;
  keepTag: string[];
  groupBy: string;
  dryRun?: boolean;
  prune?: boolean;
  yes?: boolean;
  host?: string;
  stack?: string;
  tag: string[];
}

export function registerRetentionCommands(program: Command, context: () => CliContext): void {
  addFilterOptions(
    program
      .command('forget')
      .description('mark snapshots as forgotten, by id or by retention rules (nothing is deleted; prune frees space later)')
      .argument('[snapshots...]', 'snapshot ids to forget')
      .option('--keep-last <n>', 'keep the n newest snapshots', count)
      .option('--keep-hourly <n>', 'keep the newest snapshot of each of the last n hours that have one', count)
      .option('--keep-daily <n>', 'keep the newest snapshot of each of the last n days that have one', count)
      .option('--keep-weekly <n>', 'keep the newest snapshot of each of the last n weeks that have one', count)
      .option('--keep-monthly <n>', 'keep the newest snapshot of each of the last n months that have one', count)
      .option('--keep-yearly <n>', 'keep the newest snapshot of each of the last n years that have one', count)
      .option('--keep-within <duration>', 'keep all snapshots within this duration of the newest, e.g. 14d')
      .option('--keep-tag <tag>', 'keep snapshots with this tag (repeatable)', collect, [])
      .option('--group-by <keys>', 'apply the rules per group of host, stack, paths, tags', 'host,stack,paths')
      .option('-n, --dry-run', 'show what would be forgotten')
      .option('--undo', 'keep the given forgotten snapshots again (before prune has deleted them)')
      .option('--prune', 'run prune afterwards')
      .option('--yes', 'with --prune: carry out the prune plan'),
  )
    .addHelpText(
      'after',
      `
Without rules, the retention of stackvault.yaml applies. Rules follow restic's semantics.

Examples:
  stackvault forget --keep-daily 7 --keep-weekly 4 --keep-monthly 12 --dry-run
  stackvault forget 1a2b3c4d
  stackvault forget --undo 1a2b3c4d          # changed my mind: keep it (see snapshots --forgotten)
  stackvault forget --prune --yes`,
    )
    .action(async (ids: string[], flags: ForgetFlags) => {
      const ctx = context();
      // Bad input is refused before the repository is opened (or a password asked for).
      if (flags.keepWithin) {
        try {
          parseDuration(flags.keepWithin);
        } catch (err) {
          throw new UsageError(`--keep-within: ${errorMessage(err)}`);
        }
      }
      if (flags.undo && ids.length === 0) throw new UsageError('--undo: give the ids of the forgotten snapshots to keep again (see "stackvault snapshots --forgotten")');
      const repo = await ctx.openRepository();
      if (flags.undo) return undoForget(ctx, repo, ids, flags.dryRun ?? false);
      const all = await listSnapshots(repo);
      let forget: string[];
      let decisions: ReturnType<typeof applyRetention> = [];
      if (ids.length > 0) {
        forget = ids.map((id) => findSnapshot(all, id, {}, damagedSnapshotIds(repo)).id);
      } else {
        const policy = policyFrom(flags, ctx);
        if (isEmptyPolicy(policy)) throw new UsageError('no snapshots and no retention rules given: nothing to forget (give ids, --keep-* rules, or retention in stackvault.yaml)');
        const groupBy = flags.groupBy.split(',').map((g) => g.trim()) as GroupKey[];
        for (const g of groupBy) if (!['host', 'stack', 'paths', 'tags'].includes(g)) throw new UsageError(`--group-by: unknown key "${g}"`);
        decisions = applyRetention(all.filter((r) => matchesFilter(r.snapshot, filterFrom(flags))), policy, groupBy);
        forget = decisions.flatMap((d) => d.remove.map((r) => r.id));
      }
      if (!flags.dryRun) await forgetSnapshots(repo, forget);
      emit(
        ctx,
        () =>
          [
            ...decisions.flatMap((d) => [
              `group ${d.group || '(all)'}: keep ${d.keep.length}, forget ${d.remove.length}`,
              ...d.keep.map((k) => `  keep   ${shortId(k.ref.id)} ${k.ref.snapshot.time}  ${k.reasons.join(', ')}`),
              ...d.remove.map((r) => `  forget ${shortId(r.id)} ${r.snapshot.time}`),
            ]),
            `${flags.dryRun ? 'would forget' : 'forgot'} ${plural(forget.length, 'snapshot')}`,
          ].join('\n'),
        () => ({
          message_type: 'forget',
          dry_run: flags.dryRun ?? false,
          forgotten: forget,
          groups: decisions.map((d) => ({ group: d.group, keep: d.keep.map((k) => ({ id: k.ref.id, reasons: k.reasons })), remove: d.remove.map((r) => r.id) })),
        }),
      );
      if (flags.prune && !flags.dryRun) await runPrune(ctx, await ctx.openRepository(), flags.yes ?? false);
    });

  program
    .command('prune')
    .description('delete data no kept snapshot needs, once its immutability period has passed; shows the plan, deletes only with --yes')
    .option('--yes', 'carry out the plan')
    .addHelpText('after', `\nExamples:\n  stackvault prune            # show the plan\n  stackvault prune --yes      # carry it out`)
    .action(async (flags: { yes?: boolean }) => {
      const ctx = context();
      await runPrune(ctx, await ctx.openRepository(), flags.yes ?? false);
    });
  registerExtendRetention(program, context);
}

function registerExtendRetention(program: Command, context: () => CliContext): void {
  program
    .command('extend-retention')
    // The name of the first releases: scripts and cron lines keep working.
    .alias('extend-locks')
    .description("keep what kept snapshots need immutable for another full period (S3 Object Lock, Azure per-blob policies); run at least every half period")
    .option('--dry-run', 'count what would be extended, change nothing')
    .addHelpText('after', `\nAlso known as extend-locks, its former name.\n\nExamples:\n  stackvault extend-retention --dry-run\n  stackvault extend-retention --json`)
    .action(async (flags: { dryRun?: boolean }) => {
      const ctx = context();
      const result = await extendRetentionOfKept(await ctx.openRepository(), { dryRun: flags.dryRun });
      emit(
        ctx,
        () =>
          `${flags.dryRun ? 'would extend' : 'extended'} the locks of ${result.extended} objects to ${result.until}; ` +
          `${result.recent} recent objects keep the lock of their upload; ${result.unneeded} objects no kept snapshot needs are left to expire`,
        () => ({ message_type: 'extend_locks', dry_run: flags.dryRun ?? false, ...result }),
      );
    });
}

/** forget --undo: the forgotten snapshots named are kept again, as long as prune has not deleted them. */
async function undoForget(ctx: CliContext, repo: Repository, ids: string[], dryRun: boolean): Promise<void> {
  // One reading of the forget records: which snapshots are forgotten, and when.
  const records = await forgottenIds(repo);
  const forgotten = await listSnapshots(repo, { onlyForgotten: true, forgotten: records });
  const undo = ids.map((id) => {
    try {
      return findSnapshot(forgotten, id, {}).id;
    } catch (err) {
      throw new UsageError(`--undo ${id}: not a forgotten snapshot still in the repository (prune may have deleted it; see "stackvault snapshots --forgotten"): ${errorMessage(err)}`);
    }
  });
  // The newest record naming a snapshot decides: the undo is dated after the forget it undoes, even on a skewed clock.
  const after = Math.max(...undo.map((id) => Date.parse(records.get(id)?.time ?? '') + 1 || 0));
  if (!dryRun) await forgetSnapshots(repo, undo, new Date(Math.max(Date.now(), after)), { undo: true });
  emit(
    ctx,
    () => `${dryRun ? 'would keep' : 'kept'} ${plural(undo.length, 'snapshot')} again: ${undo.map(shortId).join(', ')}`,
    () => ({ message_type: 'forget_undo', dry_run: dryRun, kept: undo }),
  );
}

/** Damaged snapshots can be forgotten by id too: that is how an operator lets prune go on. */
function damagedSnapshotIds(repo: Repository): string[] {
  return [...repo.damage.keys()].filter((key) => key.startsWith('snapshots/')).map((key) => key.slice('snapshots/'.length));
}

function policyFrom(flags: ForgetFlags, ctx: CliContext): RetentionPolicy {
  const fromFlags: RetentionPolicy = {
    last: flags.keepLast,
    hourly: flags.keepHourly,
    daily: flags.keepDaily,
    weekly: flags.keepWeekly,
    monthly: flags.keepMonthly,
    yearly: flags.keepYearly,
    within: flags.keepWithin,
    tags: flags.keepTag.length ? flags.keepTag : undefined,
  };
  if (!isEmptyPolicy(fromFlags)) return fromFlags;
  return retentionPolicyOf(ctx.config()?.config.retention);
}
