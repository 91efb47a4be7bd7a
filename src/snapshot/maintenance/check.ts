import type { Repository } from '../../repo/repository.js';
import { checkPacks, parseSubset, type PackCheckOptions, type PackCheckProgress } from '../../repo/maintenance/check-packs.js';
import { errorMessage } from '../../util/errors.js';
import { listSnapshots, shortId, type SnapshotRef } from '../snapshot.js';
import { TreeLoader, childPath } from '../tree.js';
import type { BinlogSegment } from '../binlog-segments.js';

export type CheckOptions = PackCheckOptions;
export type CheckProgress = PackCheckProgress;

/** A file or folder of a snapshot that damaged or missing data makes unrestorable. */
export interface AffectedPath {
  snapshot: string;
  time: string;
  path: string;
  blob: string;
}

export interface CheckResult {
  errors: string[];
  warnings: string[];
  affected: AffectedPath[];
  snapshots: number;
  packs: number;
  packsRead: number;
  bytesRead: number;
}

/**
 * Structure: every index file, snapshot and tree loads and verifies, every referenced blob
 * is indexed, every indexed pack exists with the expected size. With read-data: every
 * (or a subset of) pack is read, hashed against its name, and every blob decrypted and
 * re-hashed (checkPacks). Damage is mapped back to the snapshots and paths it affects.
 */
export async function check(repo: Repository, options: CheckOptions = {}): Promise<CheckResult> {
  // A subset that names no packs is refused before anything is read.
  if (options.readDataSubset) parseSubset(options.readDataSubset);
  const progress: CheckProgress = { phase: 'index', packsDone: 0, packsTotal: 0, bytesDone: 0, bytesTotal: 0 };
  // Snapshots, then index, then packs: each is written before the next, so a backup or
  // prune running meanwhile cannot make a consistent repository look damaged.
  progress.phase = 'snapshots';
  options.progress?.(progress);
  const refs = await listSnapshots(repo);
  // Binary log segments are read like snapshots: a damaged one is reported with the rest.
  const segments = await repo.loadIntact<BinlogSegment>('binlog', await repo.listIds('binlog'));
  await repo.loadIndex();
  const packs = await checkPacks(repo, options, progress);
  const result: CheckResult = { errors: packs.errors, warnings: packs.warnings, affected: [], snapshots: refs.length, packs: packs.packs, packsRead: packs.packsRead, bytesRead: packs.bytesRead };
  await checkSnapshots(repo, refs, new TreeLoader(repo, 64), packs.badBlobs, result);
  checkSegments(repo, segments, packs.badBlobs, result);
  return result;
}

/** Every blob of every binary log segment must be indexed and readable: else a point-in-time restore through it fails. */
function checkSegments(repo: Repository, segments: Array<{ id: string; value: BinlogSegment }>, badBlobs: Map<string, string>, result: CheckResult): void {
  for (const { id, value } of segments) {
    const bad = value.content.find((blob) => badBlobs.has(blob) || !repo.index.get(blob));
    if (!bad) continue;
    const why = badBlobs.get(bad) ?? 'no index entry';
    result.errors.push(
      `binary log segment ${shortId(id)} of ${value.source} (${value.start.file}:${value.start.position} to ${value.end.file}:${value.end.position}) cannot be replayed: blob ${shortId(bad)}: ${why}`,
    );
  }
}

/** Walk every snapshot; memoize per tree which relative paths are unreadable, so shared trees are walked once. */
async function checkSnapshots(
  repo: Repository,
  refs: SnapshotRef[],
  loader: TreeLoader,
  badBlobs: Map<string, string>,
  result: CheckResult,
): Promise<void> {
  const memo = new Map<string, Array<{ path: string; blob: string; why: string }>>();
  const visit = async (treeId: string): Promise<Array<{ path: string; blob: string; why: string }>> => {
    const known = memo.get(treeId);
    if (known) return known;
    const found: Array<{ path: string; blob: string; why: string }> = [];
    if (!repo.index.has(treeId)) {
      found.push({ path: '', blob: treeId, why: 'tree blob is not in the index' });
    } else if (badBlobs.has(treeId)) {
      found.push({ path: '', blob: treeId, why: badBlobs.get(treeId)! });
    } else {
      try {
        const tree = await loader.load(treeId);
        for (const node of tree.nodes) {
          if (node.type === 'file') {
            for (const id of node.content ?? []) {
              const why = !repo.index.has(id) ? 'data blob is not in the index' : badBlobs.get(id);
              if (why) {
                found.push({ path: node.name, blob: id, why });
                break;
              }
            }
          } else if (node.type === 'dir') {
            if (!node.subtree) {
              found.push({ path: node.name, blob: '', why: 'folder has no tree' });
              continue;
            }
            for (const sub of await visit(node.subtree)) {
              found.push({ path: sub.path ? `${node.name}/${sub.path}` : node.name, blob: sub.blob, why: sub.why });
            }
          }
        }
      } catch (err) {
        found.push({ path: '', blob: treeId, why: errorMessage(err) });
      }
    }
    memo.set(treeId, found);
    return found;
  };
  for (const ref of refs) {
    for (const hit of await visit(ref.snapshot.tree)) {
      const path = childPath('/', hit.path || '');
      result.affected.push({ snapshot: ref.id, time: ref.snapshot.time, path, blob: hit.blob });
      result.errors.push(`snapshot ${shortId(ref.id)} (${ref.snapshot.time}): ${path === '/' ? 'its root' : path} cannot be restored: ${hit.why}`);
    }
  }
}
