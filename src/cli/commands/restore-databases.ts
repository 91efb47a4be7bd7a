import { resolveSources } from '../../config/sources.js';
import type { MariadbSource } from '../../sources/mariadb/dump.js';
import { restoreMariadb } from '../../sources/mariadb/restore.js';
import type { ReplayTarget } from '../../sources/mariadb/binlog-select.js';
import { planRollForward, rollForward } from '../../snapshot/binlog/point-in-time.js';
import { reachStackSources } from '../../stack/stack-sources.js';
import type { Repository } from '../../repo/repository.js';
import { openSourceReader } from '../../snapshot/restore/streamed-source.js';
import { shortId, type SnapshotRef } from '../../snapshot/snapshot.js';
import { StackvaultError, UsageError } from '../../util/errors.js';
import { formatBytes, formatDuration } from '../../util/format.js';
import { secretFromEnv, secretFromFile } from '../../util/secrets.js';
import type { CliContext } from '../context.js';
import { emit, interruptSignal } from '../output.js';
import { createProgress } from '../progress.js';
import type { RestoreFlags } from './restore.js';

/*
 * `restore --source NAME` for a database source: into its server, and rolled forward from
 * the binary log archive. Loaded only when a command restores a database (see restore.ts).
 */

function parseRenames(values: string[]): Record<string, string> {
  const renames: Record<string, string> = {};
  for (const v of values) {
    const m = /^([^=]+)=([^=]+)$/.exec(v);
    if (!m) throw new UsageError(`--rename-db ${v}: expected OLD=NEW`);
    renames[m[1]!] = m[2]!;
  }
  return renames;
}

function positiveInt(value: string | undefined, flag: string): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new UsageError(`${flag} ${value}: expected a whole number above 0`);
  return n;
}

/** The server to restore a database source into: flags first, then the source's settings in stackvault.yaml. */
async function targetServer(ctx: CliContext, source: string, flags: RestoreFlags): Promise<MariadbSource['connection']> {
  const loaded = ctx.config();
  const fromFlags = flags.dbHost !== undefined || flags.dbSocket !== undefined;
  // A database that runs as a compose service is reached inside the stack's network.
  const sources = loaded && !fromFlags ? await reachStackSources(loaded) : loaded ? resolveSources(loaded) : [];
  const configured = sources.find((s): s is MariadbSource => s.kind === 'mariadb' && s.name === source);
  if (!fromFlags && !configured) {
    throw new UsageError(`no server to restore "${source}" into: give --db-host (and --db-port) or --db-socket, or configure source "${source}" in stackvault.yaml`);
  }
  let password = fromFlags ? undefined : configured?.connection.password;
  if (flags.dbPasswordFile) password = secretFromFile(flags.dbPasswordFile, '--db-password-file');
  else if (flags.dbPasswordEnv) password = secretFromEnv(flags.dbPasswordEnv, '--db-password-env');
  const base = fromFlags ? { user: 'root' } : configured!.connection;
  return {
    ...base,
    host: fromFlags ? flags.dbHost : base.host,
    port: positiveInt(flags.dbPort, '--db-port') ?? (fromFlags ? undefined : base.port),
    socket: fromFlags ? flags.dbSocket : base.socket,
    user: flags.dbUser ?? base.user,
    password,
  };
}

export async function restoreDatabases(ctx: CliContext, repo: Repository, ref: SnapshotRef, names: string[], flags: RestoreFlags, target: ReplayTarget | undefined): Promise<void> {
  const renames = parseRenames(flags.renameDb);
  for (const name of names) {
    const connection = await targetServer(ctx, name, flags);
    // Refused before anything changes when the archive does not reach the target.
    const plan = target ? await planRollForward(repo, ref, name, target) : undefined;
    const sink = createProgress(`restore ${name}`, { json: ctx.json, quiet: ctx.options.quiet ?? false, enabled: ctx.options.progress !== false });
    const started = Date.now();
    const summary = await restoreMariadb(await openSourceReader(repo, ref, name), {
      name,
      connection,
      rename: renames,
      databases: flags.database.length ? flags.database : undefined,
      force: flags.force,
      users: flags.users,
      threads: positiveInt(flags.threads, '--threads'),
      signal: interruptSignal(),
      progress: (p) => sink.update({ bytesDone: p.bytesDone, bytesTotal: p.bytesTotal, itemsDone: p.rowsDone, itemsTotal: p.rowsTotal, totalsFinal: true, itemUnit: 'rows', current: `${p.phase} ${p.current}` }),
    }).finally(() => sink.stop());
    const replayed =
      plan && target
        ? await rollForward(repo, plan, target, connection, {
            databases: new Set(summary.databases.map((d) => d.from)),
            rename: Object.fromEntries(summary.databases.map((d) => [d.from, d.to])),
            signal: interruptSignal(),
          })
        : undefined;
    const seconds = (Date.now() - started) / 1000;
    emit(
      ctx,
      () =>
        [
          ...summary.warnings.map((w) => `warning: ${w}`),
          `restored source ${name} of snapshot ${shortId(ref.id)} in ${formatDuration(seconds)}: ` +
            summary.databases.map((d) => (d.from === d.to ? d.to : `${d.from} as ${d.to}`)).join(', ') +
            `; ${summary.tables} tables, ${summary.rows} rows, ${formatBytes(summary.bytes)}` +
            (replayed ? `; rolled forward ${replayed.transactions} transactions from the binary log archive` + (replayed.lastGtid ? ` to GTID ${replayed.lastGtid} (${new Date(replayed.lastTimestamp! * 1000).toISOString()})` : '') : ''),
        ].join('\n'),
      () => ({
        message_type: 'summary',
        snapshot_id: ref.id,
        source: name,
        seconds,
        ...summary,
        ...(replayed ? { rolled_forward: { transactions: replayed.transactions, events: replayed.events, last_gtid: replayed.lastGtid ?? null, last_time: replayed.lastTimestamp ? new Date(replayed.lastTimestamp * 1000).toISOString() : null } } : {}),
      }),
    );
    // The server changed values while loading them: the restored data is not the snapshot's.
    if (summary.warnings.length > 0 && !flags.allowLossy) {
      throw new StackvaultError(`the server could not take back ${summary.warnings.length} values of source ${name} as they were (the warnings above); the rest is restored. Give --allow-lossy to accept this`);
    }
  }
}
