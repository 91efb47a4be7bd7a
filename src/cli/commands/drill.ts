import type { Command } from 'commander';
import { drillDatabaseOf, drillStack } from '../../stack/drill-stack.js';
import { ExitCode } from '../../util/errors.js';
import { formatBytes, formatDuration, plural } from '../../util/format.js';
import type { CliContext } from '../context.js';
import { emit, interruptSignal } from '../output.js';

interface DrillDetails {
  snapshot: string;
  target: string;
  rtoMs: number;
  filesRestored: number;
  filesVerified: number;
  bytesVerified: number;
  databases: Array<Record<string, unknown>>;
  pointInTime?: Array<Record<string, unknown>>;
}

/** A point-in-time drill's line: one snapshot rolled forward to the next through the archived binary log. */
function describePointInTime(entry: Record<string, unknown>): string {
  const source = `  point in time, source ${String(entry.source)}`;
  if (entry.skipped) return `${source}: skipped (${String(entry.skipped)})`;
  return (
    `${source}: snapshot ${String(entry.from).slice(0, 8)} rolled forward ${String(entry.transactions)} transactions to snapshot ${String(entry.to).slice(0, 8)}, ` +
    `${String(entry.verified)} tables verified, in ${formatDuration(Number(entry.rtoMs) / 1000)}; a failure now would lose ${formatDuration(Number(entry.rpoSeconds))} (RPO)`
  );
}

/** One streamed source's line of the drill report: a database's tables, a repository's commits. */
function describeStreamedDrill(entry: Record<string, unknown>): string {
  const source = `  source ${String(entry.source)}`;
  if (entry.skipped) return `${source}: skipped (${String(entry.skipped)})`;
  if (entry.commits !== undefined) return `${source}: repository cloned and checked (git fsck), ${String(entry.commits)} commits, HEAD ${String(entry.head).slice(0, 12)}`;
  return `${source}: ${String(entry.tables)} tables, ${String(entry.rows)} rows restored and verified in ${formatDuration(Number(entry.restoreMs) / 1000)}`;
}

export function registerDrillCommand(program: Command, context: () => CliContext): void {
  program
    .command('drill')
    .description("a restore drill now: the stack's newest snapshot restored into a scratch place, verified against the snapshot, removed; prints the recovery time")
    .addHelpText(
      'after',
      `
Files go into drill.target of stackvault.yaml (a temporary folder when unset) and are
re-read and hashed as backup did; databases go into drill.database under drill_ names, are
read back table by table and compared with the dump, then dropped. The task runner runs
the same drill on its schedule (schedule.drill) and keeps its history.

Exit codes: 0 the restored data is the snapshot's; 1 it differs, or the drill failed.

Examples:
  stackvault drill
  stackvault drill --json | jq .rtoMs`,
    )
    .action(async () => {
      const ctx = context();
      const loaded = ctx.requireConfig('drill');
      const repo = await ctx.openRepository();
      const outcome = await drillStack(loaded, repo, { database: drillDatabaseOf(loaded), signal: interruptSignal() });
      const d = outcome.details as unknown as DrillDetails;
      emit(
        ctx,
        () =>
          [
            `drill of snapshot ${d.snapshot.slice(0, 8)}: restored and verified ${plural(d.filesVerified, 'file')} (${formatBytes(d.bytesVerified)}) in ${formatDuration(d.rtoMs / 1000)} (the recovery time)`,
            ...d.databases.map(describeStreamedDrill),
            ...(d.pointInTime ?? []).map(describePointInTime),
            ...(outcome.problem ? [`problem: ${outcome.problem}`] : []),
          ].join('\n'),
        () => ({ message_type: 'summary', ...d, problem: outcome.problem ?? null }),
      );
      if (outcome.problem) process.exitCode = ExitCode.error;
    });
}
