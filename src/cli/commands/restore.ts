import type { Command } from 'commander';
import { resolve } from 'node:path';
import { parseTargetGtid, parseTargetTime, type ReplayTarget } from '../../sources/mariadb/binlog-select.js';
import { openSourceReader } from '../../snapshot/restore/streamed-source.js';
import { driverOf } from '../../sources/registry.js';
import { restore, startRestoreThreads } from '../../snapshot/restore/restore.js';
import type { WriterThreads } from '../../snapshot/restore/small-file-writers.js';
import { shortId } from '../../snapshot/snapshot.js';
import { ExitCode, StackvaultError, UsageError } from '../../util/errors.js';
import { formatBytes } from '../../util/format.js';
import type { CliContext } from '../context.js';
import { collect, emit, interruptSignal } from '../output.js';
import { createProgress } from '../progress.js';
import { addFilterOptions, filterFrom, resolveSnapshot } from './browse.js';

export interface RestoreFlags {
  target?: string;
  include: string[];
  source: string[];
  force?: boolean;
  host?: string;
  stack?: string;
  tag: string[];
  dbHost?: string;
  dbPort?: string;
  dbSocket?: string;
  dbUser?: string;
  dbPasswordEnv?: string;
  dbPasswordFile?: string;
  renameDb: string[];
  database: string[];
  users?: boolean;
  threads?: string;
  allowLossy?: boolean;
  toTime?: string;
  toGtid?: string;
}

function replayTarget(flags: RestoreFlags): ReplayTarget | undefined {
  if (flags.toTime !== undefined && flags.toGtid !== undefined) throw new UsageError('give --to-time or --to-gtid, not both');
  if (flags.toTime !== undefined) return { time: parseTargetTime(flags.toTime) };
  if (flags.toGtid !== undefined) return { gtid: parseTargetGtid(flags.toGtid) };
  return undefined;
}

export function registerRestoreCommand(program: Command, context: () => CliContext): void {
  addFilterOptions(
    program
      .command('restore')
      .description('restore a snapshot into a folder, or its database sources into a server')
      .argument('<snapshot>', 'snapshot id or "latest"')
      .option('-t, --target <folder>', 'restore files into this folder; must be empty unless --force')
      .option('-i, --include <path>', 'restore only this snapshot path, e.g. /data/prompts (repeatable)', collect, [])
      .option('-s, --source <name>', 'restore this source (repeatable); a database source goes into a server', collect, [])
      .option('--force', 'restore into a folder that is not empty, or replace databases that exist and are not empty')
      .option('--db-host <host>', 'database server to restore into (default: the source\'s server in stackvault.yaml)')
      .option('--db-port <port>', 'its port (default 3306)')
      .option('--db-socket <path>', 'its Unix socket, instead of host and port')
      .option('--db-user <user>', 'user to log in as (default: the source\'s user, or root)')
      .option('--db-password-env <var>', 'environment variable holding that user\'s password')
      .option('--db-password-file <file>', 'file whose first line is that user\'s password')
      .option('--rename-db <old=new>', 'restore database OLD under the name NEW (repeatable)', collect, [])
      .option('--database <name>', 'restore only this database of the source (repeatable)', collect, [])
      .option('--users', 'also create the users and grants the snapshot holds')
      .option('--threads <n>', 'connections loading data at once (default 2)')
      .option('--allow-lossy', 'exit 0 even when the server changed values while loading them (they are listed as warnings)')
      .option('--to-time <time>', 'point-in-time recovery: restore the newest snapshot before TIME ("2026-12-04 10:15:00", local time) and replay the archived binary log up to it')
      .option('--to-gtid <gtid>', 'point-in-time recovery: replay the archived binary log up to and including this transaction (domain-server-sequence)'),
  )
    .addHelpText(
      'after',
      `
Files: each source of the snapshot becomes a folder in the target (e.g. <target>/data); a
database source appears there as its dump files. A file whose data fails verification is
not written; it is reported and the exit code is 1.

Databases: --source NAME loads a database source into a server (the one in stackvault.yaml,
or --db-host/--db-socket). A database that exists and holds anything is left alone unless
--force is given; --rename-db restores beside it.

Examples:
  stackvault restore latest --target /tmp/restore
  stackvault restore 1a2b3c4d --target /srv/acme --include /data/prompts --force
  stackvault restore latest --source db                                  # into the configured server
  stackvault restore latest --source db --rename-db shop=shop_check      # beside the live database
  stackvault restore latest --source db --db-host 10.0.0.5 --db-user root --db-password-env NEW_DB_PW
  stackvault restore latest --source db --force --to-time "2026-12-04 10:15:00"  # point in time: "latest" is the newest snapshot before it`,
    )
    .action(async (snapshot: string, flags: RestoreFlags) => {
      // Files come back on writer threads, started now: they load while the repository
      // opens (its key derivation leaves a core idle), not beside the restore's first walk.
      const threads = flags.target ? startRestoreThreads() : undefined;
      try {
        await restoreCommand(context(), snapshot, flags, threads);
      } finally {
        await threads?.close();
      }
    });
}

async function restoreCommand(ctx: CliContext, snapshot: string, flags: RestoreFlags, threads: WriterThreads | undefined): Promise<void> {
  const repo = await ctx.openRepository();
  const target = replayTarget(flags);
  const ref = await resolveSnapshot(repo, snapshot, { ...filterFrom(flags), ...(target && 'time' in target && snapshot === 'latest' ? { before: target.time } : {}) });
  if (target && flags.source.length === 0) throw new UsageError('--to-time and --to-gtid roll a database source forward: give --source NAME');
  if (target && 'time' in target && Date.parse(ref.snapshot.time) > target.time.getTime()) {
    throw new UsageError(`snapshot ${shortId(ref.id)} was taken at ${ref.snapshot.time}, after --to-time: choose an older snapshot (or "latest", the newest before it)`);
  }
  const known = new Map(ref.snapshot.sources.map((s) => [s.name, s.kind]));
  const unknown = flags.source.filter((s) => !known.has(s));
  if (unknown.length) throw new UsageError(`snapshot ${shortId(ref.id)} has no source ${unknown.join(', ')} (it has ${[...known.keys()].join(', ')})`);
  const databaseSources = flags.source.filter((s) => known.get(s) === 'mariadb');
  const fileSources = flags.source.filter((s) => known.get(s) === 'files');
  // A repository (the stack's own, in every stack snapshot) is cloned into --target.
  const repositorySources = flags.source.filter((s) => known.get(s) === 'git');
  if (!flags.target && (fileSources.length > 0 || repositorySources.length > 0 || flags.source.length === 0)) {
    throw new UsageError(
      flags.source.length === 0
        ? 'give --target for files, or --source NAME to restore a database source into its server'
        : `--target is needed for the source ${[...fileSources, ...repositorySources].join(', ')}`,
    );
  }
  if (repositorySources.length > 0 && flags.source.length > 1) throw new UsageError(`restore the repository source ${repositorySources.join(', ')} on its own: it is cloned into --target`);
  if (repositorySources.length > 0) {
    const target = resolve(flags.target!);
    await driverOf('git').restore!(await openSourceReader(repo, ref, repositorySources[0]!), { kind: 'git', name: repositorySources[0]!, path: target }, { force: flags.force ?? false });
    emit(
      ctx,
      () => `restored source ${repositorySources[0]} of snapshot ${shortId(ref.id)}: a clone of the repository in ${target}`,
      () => ({ message_type: 'summary', snapshot_id: ref.id, source: repositorySources[0], target }),
    );
    return;
  }
  if (flags.target && (flags.source.length === 0 || fileSources.length > 0)) {
    const sink = createProgress('restore', { json: ctx.json, quiet: ctx.options.quiet ?? false, enabled: ctx.options.progress !== false });
    const target = resolve(flags.target);
    const include = flags.include.length > 0 || flags.source.length === 0 ? flags.include : fileSources.map((s) => `/${s}`);
    let result;
    try {
      result = await restore(repo, ref, {
        target,
        include,
        force: flags.force,
        signal: interruptSignal(),
        threads,
        progress:
          sink.active === false
            ? undefined
            : (p) => sink.update({ bytesDone: p.bytesDone, bytesTotal: p.bytesTotal, itemsDone: p.filesDone, itemsTotal: p.filesTotal, totalsFinal: true, errors: p.errors, current: p.currentPath }),
      });
    } finally {
      sink.stop();
    }
    emit(
      ctx,
      () =>
        [
          ...result.errors.map((e) => `error: ${e.path}: ${e.message}`),
          ...result.notRecreated.map((e) => `not recreated: ${e.path}: ${e.message}`),
          `restored snapshot ${shortId(ref.id)} to ${target}: ${result.files} files, ${result.dirs} folders, ${formatBytes(result.bytes)}` +
            (result.errors.length ? `; ${result.errors.length} FAILED` : ''),
        ].join('\n'),
      () => ({
        message_type: 'summary',
        snapshot_id: ref.id,
        target,
        files: result.files,
        dirs: result.dirs,
        specials: result.specials,
        bytes: result.bytes,
        errors: result.errors,
        not_recreated: result.notRecreated,
      }),
    );
    if (result.errors.length > 0) {
      throw new StackvaultError(`${result.errors.length} entries could not be restored (first: ${result.errors[0]!.path}: ${result.errors[0]!.message})`);
    }
    if (result.notRecreated.length > 0) {
      if (!ctx.json) process.stderr.write(`warning: ${result.notRecreated.length} entries of the snapshot were not recreated (listed above); everything else is restored\n`);
      process.exitCode = ExitCode.partial;
    }
  }
  if (databaseSources.length > 0) await (await import('./restore-databases.js')).restoreDatabases(ctx, repo, ref, databaseSources, flags, target);
}
