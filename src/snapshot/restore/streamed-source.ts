import type { Repository } from '../../repo/repository.js';
import type { DumpReader } from '../../sources/dump-sink.js';
import { driverOf } from '../../sources/registry.js';
import { UsageError } from '../../util/errors.js';
import { openDumpReader } from '../dump-tree.js';
import type { SnapshotRef } from '../snapshot.js';
import { TreeLoader } from '../tree.js';

/**
 * The files a streamed source (a database dump) wrote into a snapshot, for its driver to
 * restore or verify from. A files source is restored into a folder instead.
 */
export async function openSourceReader(repo: Repository, ref: SnapshotRef, source: string): Promise<DumpReader> {
  const record = ref.snapshot.sources.find((s) => s.name === source);
  if (!record) throw new UsageError(`snapshot ${ref.id.slice(0, 8)} has no source "${source}" (it has ${ref.snapshot.sources.map((s) => s.name).join(', ')})`);
  if (!driverOf(record.kind).restore) throw new UsageError(`source "${source}" is a ${record.kind} source; restore it into a folder with --target`);
  await repo.loadIndex();
  const root = await new TreeLoader(repo).load(ref.snapshot.tree);
  const node = root.nodes.find((n) => n.name === source && n.type === 'dir');
  if (!node?.subtree) throw new UsageError(`snapshot ${ref.id.slice(0, 8)} holds no folder for source "${source}"`);
  return openDumpReader(repo, node.subtree, source);
}
