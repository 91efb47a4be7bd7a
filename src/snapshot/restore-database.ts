import type { Repository } from '../repo/repository.js';
import { restoreMariadb, type MariadbRestoreOptions, type MariadbRestoreSummary } from '../sources/mariadb/restore.js';
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
  const record = ref.snapshot.sources.find((s) => s.name === source);
  if (!record) throw new UsageError(`snapshot ${ref.id.slice(0, 8)} has no source "${source}" (it has ${ref.snapshot.sources.map((s) => s.name).join(', ')})`);
  if (record.kind !== 'mariadb') throw new UsageError(`source "${source}" is a ${record.kind} source; restore it into a folder with --target`);
  await repo.loadIndex();
  const root = await new TreeLoader(repo).load(ref.snapshot.tree);
  const node = root.nodes.find((n) => n.name === source && n.type === 'dir');
  if (!node?.subtree) throw new UsageError(`snapshot ${ref.id.slice(0, 8)} holds no folder for source "${source}"`);
  const reader = await openDumpReader(repo, node.subtree, source);
  return restoreMariadb(reader, { ...options, name: source });
}
