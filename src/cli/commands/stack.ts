import type { Command } from 'commander';
import { parseTargetTime } from '../../sources/mariadb/binlog-select.js';
import { Compose } from '../../stack/compose.js';
import type { LifecycleReport } from '../../stack/lifecycle.js';
import type { StackContext } from '../../stack/context.js';
import { StackvaultError, UsageError } from '../../util/errors.js';
import type { CliContext } from '../context.js';
import { emit, interruptSignal } from '../output.js';
import { openReleaseStore } from './release.js';

/** The lifecycle (and the git and YAML code under it) is loaded only by the commands that run it. */
const lifecycle = () => import('../../stack/lifecycle.js');

async function stackContext(ctx: CliContext, what: string): Promise<StackContext> {
  const loaded = ctx.requireConfig(what);
  const { loadConfig } = await import('../../config/load.js');
  const repo = await ctx.openRepository();
  const compose = await Compose.detect();
  if (!(await compose.engine.ping())) throw new UsageError(`no container engine answers at ${compose.engine.dockerHost}: start Docker or "podman system service", or set DOCKER_HOST`);
  return {
    loaded,
    reload: () => loadConfig(loaded.file),
    repo,
    compose,
    openReleaseStore: loaded.config.release_store ? () => openReleaseStore(ctx, {}) : undefined,
    log: (message) => {
      if (!ctx.options.quiet) process.stderr.write(`stackvault: ${message}\n`);
    },
    signal: interruptSignal(),
  };
}

/** Print what a step did; a step that failed and went back exits non-zero, saying both. */
function finish(ctx: CliContext, report: LifecycleReport): void {
  const short = (id: string) => id.slice(0, 8);
  if (report.failed) {
    if (ctx.json) process.stdout.write(JSON.stringify(report) + '\n');
    throw new StackvaultError(
      `${report.action} to version ${report.version} failed: ${report.failed.error}\n` +
        `went back to version ${report.failed.backTo.version} (incarnation ${short(report.failed.backTo.incarnation)}${report.preStepSnapshot ? `, data of snapshot ${short(report.preStepSnapshot)}` : ''}); the stack runs`,
    );
  }
  emit(
    ctx,
    () =>
      [
        report.restoredFrom
          ? `restored ${report.restoredFrom.kind} ${short(report.restoredFrom.id)} (version ${report.restoredFrom.version})` +
            (report.restoredFrom.toTime ? `, its databases rolled forward to ${report.restoredFrom.toTime}` : '')
          : '',
        report.preStepSnapshot ? `snapshot before the step: ${short(report.preStepSnapshot)}` : '',
        report.migrations.length ? `migrations applied: ${report.migrations.join(', ')}` : '',
        `stack runs version ${report.version}, incarnation ${short(report.incarnation)}, healthy`,
      ]
        .filter(Boolean)
        .join('\n'),
    () => report,
  );
}

export function registerStackCommands(program: Command, context: () => CliContext): void {
  program
    .command('up')
    .description('bring this host to the incarnation the stack repository is at: restore onto an empty host, migrate older data, start and health-check the containers')
    .addHelpText(
      'after',
      `
An empty host (no .stackvault/state.json) gets the newest snapshot of the stack. With no
snapshot, it gets the vanilla release of application.version only when the stack
repository has a single commit (a new stack) or --new-install says so: a stack with a
history has run somewhere, and finding none of its snapshots means the backup repository
is not the one it used (not mounted, a wrong url). Data of an older version
is snapshotted and migrated. Any failure restores the pre-step snapshot and the previous
incarnation. Disaster recovery and moving a stack are "git clone" of the stack repository
and "stackvault up" on the new host.

Examples:
  stackvault up
  stackvault up --new-install            # a vanilla install for a stack repository with a history
  stackvault up --to-time "2026-12-04 10:15:00"   # disaster recovery to a moment: databases rolled forward
  git clone ssh://git@example.com/stacks/customer-a.git && cd customer-a && stackvault up`,
    )
    .option('--new-install', 'install the vanilla release though the stack repository has a history (never over snapshots of the stack)')
    .option('--to-time <time>', 'on an empty host: the newest snapshot before TIME ("2026-12-04 10:15:00", local time), its databases rolled forward to it through the archived binary log')
    .action(async (flags: { newInstall?: boolean; toTime?: string }) => {
      const ctx = context();
      const toTime = flags.toTime === undefined ? undefined : parseTargetTime(flags.toTime);
      finish(ctx, await (await lifecycle()).up(await stackContext(ctx, 'up'), 'up', { newInstall: flags.newInstall, toTime }));
    });

  program
    .command('update')
    .description('change application.version in the stack repository, commit, and bring the host there (snapshot, migrations, containers)')
    .requiredOption('--to <version>', 'the version to run')
    .addHelpText('after', `\nExamples:\n  stackvault update --to 2.4.0`)
    .action(async (flags: { to: string }) => {
      const ctx = context();
      finish(ctx, await (await lifecycle()).update(await stackContext(ctx, 'update'), flags.to));
    });

  program
    .command('rollback')
    .description('go back to an incarnation or a snapshot: its config and its data together')
    .requiredOption('--to <incarnation|snapshot>', 'a commit of the stack repository (see history) or a snapshot id (see snapshots)')
    .addHelpText('after', `\nExamples:\n  stackvault rollback --to 3f2a91c0        # a commit: with the newest snapshot taken under it\n  stackvault rollback --to 7c0e5d12        # a snapshot: with the incarnation it was taken under`)
    .action(async (flags: { to: string }) => {
      const ctx = context();
      finish(ctx, await (await lifecycle()).rollback(await stackContext(ctx, 'rollback'), flags.to));
    });

  program
    .command('history')
    .description("list the stack's incarnations: the commits of its stack repository, with what each changed")
    .option('-n, --limit <n>', 'at most this many, newest first', '50')
    .addHelpText('after', `\nExamples:\n  stackvault history\n  stackvault history --json | jq '.[] | select(.versionChangedFrom != null)'`)
    .action(async (flags: { limit: string }) => {
      const ctx = context();
      const loaded = ctx.requireConfig('history');
      const limit = Number(flags.limit);
      if (!Number.isInteger(limit) || limit < 1) throw new UsageError(`--limit: expected a whole number of at least 1, found "${flags.limit}"`);
      const { stackHistory } = await import('../../stack/stack-repository.js');
      const incarnations = await stackHistory(loaded.file, { limit });
      emit(
        ctx,
        () =>
          incarnations.length === 0
            ? 'no commits yet: commit stackvault.yaml to make the first incarnation'
            : incarnations
                .map((i) => {
                  const version = i.versionChangedFrom !== undefined ? `version ${i.versionChangedFrom ?? '-'} -> ${i.version ?? '-'}` : `version ${i.version ?? '-'}`;
                  const files = i.files.map((f) => `${f.status} ${f.path}`).join(', ');
                  return `${i.commit.slice(0, 8)}  ${i.date.slice(0, 16).replace('T', ' ')}  ${i.author}\n    ${i.subject}\n    ${version}; ${files}`;
                })
                .join('\n'),
        () => incarnations,
      );
    });
}
