import type { Repository } from '../../repo/repository.js';
import { checkPacks, parseSubset, type PackCheckOptions, type PackCheckProgress } from '../../repo/maintenance/check-packs.js';
import { DecodePool } from '../../repo/decode/decode-pool.js';
import { errorMessage } from '../../util/errors.js';
import { listSnapshots, shortId, type SnapshotRef } from '../snapshot.js';
import { isSplitContent, loadContentPart } from '../content-list.js';
import { TreeLoader, childPath, type TreeNode } from '../tree.js';
import type { BinlogSegment } from '../binlog-segments.js';
import { EventLoopTurns } from '../../util/event-loop-turns.js';

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
  progress.phase = 'snapshots';
  options.progress?.(progress);
  // The verifier threads load their modules (about 0.1 s of a core each) while this one
  // lists and loads the index: started with the reading, they began it 0.1 s late.
  const verifier = options.readData || options.readDataSubset ? new DecodePool(repo.master) : undefined;
  try {
    return await checkWith(repo, options, progress, verifier);
  } finally {
    await verifier?.close();
  }
}

async function checkWith(repo: Repository, options: CheckOptions, progress: CheckProgress, verifier: DecodePool | undefined): Promise<CheckResult> {
  // Snapshots, then index, then packs: each is written before the next, so a backup or
  // prune running meanwhile cannot make a consistent repository look damaged.
  const refs = await listSnapshots(repo);
  // Binary log segments are read like snapshots: a damaged one is reported with the rest.
  const segments = await repo.loadIntact<BinlogSegment>('binlog', await repo.listIds('binlog'));
  await repo.loadIndex();
  const loader = new TreeLoader(repo, 64);
  // The trees are walked while the packs are read: the reading keeps the verifier threads
  // busy and leaves this one mostly idle, and walked after it, the trees of 37,000 entries
  // took 0.3 s of a 2.2 s check with the other threads done. Damage found in the packs
  // needs a second walk to name the paths it affects; a sound repository needs none.
  let walked: Promise<Unrestorable[]> | undefined;
  const walk = () => {
    if (walked) return;
    walked = walkSnapshots(repo, refs, loader, NO_DAMAGE);
    // Awaited once the packs are read; should their reading fail first, nobody awaits it.
    walked.catch(() => undefined);
  };
  const packs = await checkPacks(repo, { ...options, reading: walk, verifier }, progress);
  walk();
  const result: CheckResult = { errors: packs.errors, warnings: packs.warnings, affected: [], snapshots: refs.length, packs: packs.packs, packsRead: packs.packsRead, bytesRead: packs.bytesRead };
  const found = await walked!;
  reportAffected(packs.badBlobs.size === 0 ? found : await walkSnapshots(repo, refs, loader, packs.badBlobs), result);
  checkSegments(repo, segments, packs.badBlobs, result);
  return result;
}

const NO_DAMAGE: ReadonlyMap<string, string> = new Map();

/** What a snapshot cannot restore: a path in it, the blob that makes it so and why. */
interface Unrestorable {
  ref: SnapshotRef;
  path: string;
  blob: string;
  why: string;
}

function reportAffected(found: Unrestorable[], result: CheckResult): void {
  for (const { ref, path, blob, why } of found) {
    result.affected.push({ snapshot: ref.id, time: ref.snapshot.time, path, blob });
    result.errors.push(`snapshot ${shortId(ref.id)} (${ref.snapshot.time}): ${path === '/' ? 'its root' : path} cannot be restored: ${why}`);
  }
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

/**
 * Walk every snapshot for paths that cannot be restored: blobs the index lacks, trees that
 * do not load, and blobs `badBlobs` names. Memoized per tree, so shared trees are walked once.
 */
async function walkSnapshots(repo: Repository, refs: SnapshotRef[], loader: TreeLoader, badBlobs: ReadonlyMap<string, string>): Promise<Unrestorable[]> {
  type Found = Array<{ path: string; blob: string; why: string }>;
  const memo = new Map<string, Found>();
  const turns = new EventLoopTurns();
  /** Why a tree blob (a folder's, or a part of one) cannot be read, if the index or the read of its pack says so. */
  const treeBlobTrouble = (id: string, what: string) => (!repo.index.has(id) ? `${what} is not in the index` : badBlobs.get(id));
  const visit = async (treeId: string): Promise<Found> => {
    const known = memo.get(treeId);
    if (known) return known;
    // Trees mostly load from memory at once: without a turn now and then, the walk kept
    // this thread from handing the verifier threads their packs (they started 0.45 s late).
    if (turns.due) await turns.take();
    const found: Found = [];
    const trouble = treeBlobTrouble(treeId, 'tree blob');
    if (trouble) {
      found.push({ path: '', blob: treeId, why: trouble });
    } else {
      try {
        for (const part of await loader.pieces(treeId)) {
          const partTrouble = part === treeId ? undefined : treeBlobTrouble(part, 'tree part');
          if (partTrouble) found.push({ path: '', blob: part, why: partTrouble });
          else await visitNodes(await loader.part(part, treeId), found);
        }
      } catch (err) {
        found.push({ path: '', blob: treeId, why: errorMessage(err) });
      }
    }
    memo.set(treeId, found);
    return found;
  };
  /** The first of a file's blobs that cannot be read, and why. */
  const dataTrouble = (ids: readonly string[]): { blob: string; why: string } | undefined => {
    for (const id of ids) {
      const why = !repo.index.has(id) ? 'data blob is not in the index' : badBlobs.get(id);
      if (why) return { blob: id, why };
    }
    return undefined;
  };
  /** The same for a file of many blobs, its content parts read one at a time. */
  const partsTrouble = async (parts: readonly string[]): Promise<{ blob: string; why: string } | undefined> => {
    for (const part of parts) {
      const why = treeBlobTrouble(part, 'content part');
      if (why) return { blob: part, why };
      let ids: string[];
      try {
        ids = await loadContentPart(repo, part);
      } catch (err) {
        return { blob: part, why: errorMessage(err) };
      }
      const trouble = dataTrouble(ids);
      if (trouble) return trouble;
    }
    return undefined;
  };
  const visitNodes = async (nodes: readonly TreeNode[], found: Found): Promise<void> => {
    for (const node of nodes) {
      if (node.type === 'file') {
        const trouble = isSplitContent(node.content) ? await partsTrouble(node.content.parts) : dataTrouble(node.content ?? []);
        if (trouble) found.push({ path: node.name, ...trouble });
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
  };
  const unrestorable: Unrestorable[] = [];
  for (const ref of refs) {
    for (const hit of await visit(ref.snapshot.tree)) unrestorable.push({ ref, path: childPath('/', hit.path || ''), blob: hit.blob, why: hit.why });
  }
  return unrestorable;
}
