import type { Repository } from '../repo/repository.js';
import type { DumpReader } from '../sources/dump-sink.js';
import type { ConnectOptions } from '../sources/mariadb/connection.js';
import { restoreMariadb, type MariadbRestoreOptions, type MariadbRestoreSummary } from '../sources/mariadb/restore.js';
import { verifyMariadb, type TableVerdict } from '../sources/mariadb/verify.js';
import { UsageError } from '../util/errors.js';
import { openDumpReader } from './dump-tree.js';
import type { SnapshotRef } from './snapshot.js';
import { TreeLoader } from './tree.js';

/** Restore one database source of a snapshot into a server. */
export async function restoreDatabaseSource(
  repo: Repository,
  ref: SnapshotRef,
  source: string,
  options: Omit<MariadbRestoreOptions, 'name'>,
): Promise<MariadbRestoreSummary> {
  return restoreMariadb(await databaseReader(repo, ref, source), { ...options, name: source });
}

/** Whether a server holds exactly the tables' rows of one database source of a snapshot (after a restore). */
export async function verifyDatabaseSource(
  repo: Repository,
  ref: SnapshotRef,
  source: string,
  options: { connection: ConnectOptions; rename?: Record<string, string> },
): Promise<TableVerdict[]> {
  return verifyMariadb(await databaseReader(repo, ref, source), { ...options, name: source });
}

async function databaseReader(repo: Repository, ref: SnapshotRef, source: string): Promise<DumpReader> {
  const record = ref.snapshot.sources.find((s) => s.name === source);
  if (!record) throw new UsageError(`snapshot ${ref.id.slice(0, 8)} has no source "${source}" (it has ${ref.snapshot.sources.map((s) => s.name).join(', ')})`);
  if (record.kind !== 'mariadb') throw new UsageError(`source "${source}" is a ${record.kind} source; restore it into a folder with --target`);
  await repo.loadIndex();
  const root = await new TreeLoader(repo).load(ref.snapshot.tree);
  const node = root.nodes.find((n) => n.name === source && n.type === 'dir');
  if (!node?.subtree) throw new UsageError(`snapshot ${ref.id.slice(0, 8)} holds no folder for source "${source}"`);
  return openDumpReader(repo, node.subtree, source);
}
