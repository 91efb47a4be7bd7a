import type { Repository } from '../../repo/repository.js';
import { idFromKey } from '../../repo/format/layout.js';
import type { BlobMarks } from '../../repo/blob-marks.js';
import { candidate, emptyPlan, indexUnlistedPacks, judgeIndexAndRecords, judgePacks, planClock, type PrunePlan } from '../../repo/maintenance/prune-packs.js';
import { forgottenIds, listSnapshots, type ForgetRecord, type SnapshotRef } from '../snapshot.js';
import { isSplitContent, loadContentPart } from '../content-list.js';
import { TreeLoader } from '../tree.js';
import { judgeBinlogSegments } from './binlog-retention.js';

export { IN_FLIGHT_GRACE_MS, executePrune, type PruneCandidate, type PrunePlan, type PruneResult } from '../../repo/maintenance/prune-packs.js';

export interface PruneOptions {
  now?: Date;
  /** days back to which any moment can be recovered from the binary log archive (retention.pitr_days) */
  pitrDays?: number;
}

/**
 * Decide what prune may do, changing nothing: the blobs kept snapshots use, from their
 * trees; which packs, index files and deletion records may go (judgePacks and
 * judgeIndexAndRecords, beside the repository); and which forgotten snapshots and forget
 * records, which go in one step once their immutability period has passed.
 */
export async function planPrune(repo: Repository, options: PruneOptions = {}): Promise<PrunePlan> {
  const now = options.now ?? new Date();

  // Snapshots before the index: everything a listed snapshot references is then indexed.
  // Kept and forgotten from one reading of the forget records: a snapshot is deleted only
  // if that reading forgot it, never because it is missing from the kept list.
  const forgotten = await forgottenIds(repo);
  const kept = await listSnapshots(repo, { forgotten });
  await repo.loadIndex();
  // Packs no index lists are indexed from their headers before the blobs in use are marked.
  const listedPacks = await indexUnlistedPacks(repo);
  const used = await usedBlobs(repo, kept);

  const snapshotDamage = [...repo.damage.keys()].filter((key) => key.startsWith('snapshots/'));
  // A damaged forget record may have been an undo ("forget --undo"): the snapshots it
  // brought back would look forgotten. Nothing is let go, no snapshot deleted, until it reads again.
  const recordDamage = [...repo.damage.keys()].filter((key) => key.startsWith('forget/'));
  let markingHeldBack: string | undefined;
  if (snapshotDamage.length > 0) {
    // A damaged manifest hides which packs its snapshot needs: nothing new is let go until
    // someone decides that snapshot is lost (forgets it).
    markingHeldBack = `damaged snapshots (${snapshotDamage.map((k) => idFromKey(k).slice(0, 8)).join(', ')}) may need any unused pack: forget them ("stackvault forget <id>") to let prune go on`;
  } else if (recordDamage.length > 0) {
    markingHeldBack = `damaged forget records (${recordDamage.map((k) => idFromKey(k).slice(0, 8)).join(', ')}) may have kept snapshots again ("forget --undo"): prune lets nothing go and deletes no snapshot until they read again (see "stackvault check")`;
  }

  const plan = emptyPlan(repo, now, kept.length, markingHeldBack);
  // Before the packs are judged: the segments kept use blobs too.
  await judgeBinlogSegments(repo, plan, kept, options.pitrDays, used);
  const remainingPacks = judgePacks(repo, plan, used, listedPacks);
  const { immutableMs, past } = planClock(repo, plan);

  const remainingSnapshots = new Set<string>();
  for (const info of await repo.listObjects('snapshots')) {
    const id = idFromKey(info.key);
    // Only a forgotten snapshot goes: one that is not kept may be one a backup committed
    // after the listing above (with no immutability period, prune deleted it at once).
    // A damaged snapshot stays until it is forgotten.
    if (!forgotten.has(id) || recordDamage.length > 0) {
      remainingSnapshots.add(id);
      continue;
    }
    const c = candidate(info, immutableMs);
    if (past(info, immutableMs)) plan.delete.snapshots.push(c);
    else {
      plan.keepForNow.snapshots.push(c);
      remainingSnapshots.add(id);
    }
  }
  // A forget record must outlive the snapshots it forgets, or they would come back.
  const forgetInfos = new Map((await repo.listObjects('forget')).map((i) => [idFromKey(i.key), i]));
  for (const { id, value } of await repo.loadIntact<ForgetRecord>('forget', [...forgetInfos.keys()])) {
    const info = forgetInfos.get(id)!;
    if (!Array.isArray(value.snapshots) || value.snapshots.some((s) => remainingSnapshots.has(s))) continue;
    if (past(info, immutableMs)) plan.delete.forgetRecords.push(candidate(info, immutableMs));
  }

  await judgeIndexAndRecords(repo, plan, remainingPacks);
  return plan;
}

/**
 * Every blob the kept snapshots reference: their trees and the content they list, as marks
 * over the index's entries (a Set of ids took gigabytes at ten million blobs).
 */
async function usedBlobs(repo: Repository, kept: SnapshotRef[]): Promise<BlobMarks> {
  const used = repo.index.marks();
  const loader = new TreeLoader(repo, 64);
  // Apart from `used`: a file whose content is a tree's bytes has the tree's id, and its
  // mark must not pass for the tree walked.
  const visitedTrees = repo.index.marks();
  const markTree = async (treeId: string): Promise<void> => {
    if (!visitedTrees.mark(treeId)) return;
    used.mark(treeId);
    // A large folder's parts are blobs of their own: unmarked, they would be deleted.
    for (const part of await loader.pieces(treeId)) {
      used.mark(part);
      for (const node of await loader.part(part, treeId)) {
        if (isSplitContent(node.content)) {
          // A large file's content parts are tree blobs that list its data blobs; a part
          // seen before (the same file in another snapshot's folder) is read once.
          for (const part of node.content.parts) {
            used.mark(part);
            if (visitedTrees.mark(part)) for (const id of await loadContentPart(repo, part)) used.mark(id);
          }
        } else {
          for (const id of node.content ?? []) used.mark(id);
        }
        if (node.subtree) await markTree(node.subtree);
      }
    }
  };
  // A tree that cannot be read makes it impossible to know what is used: fail rather than guess.
  for (const ref of kept) await markTree(ref.snapshot.tree);
  return used;
}
