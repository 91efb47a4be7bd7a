import { DELETION_MARGIN_MS, DELETION_RECORDS_KEPT_MS, type DeletionRecord, type Repository } from '../../repo/repository.js';
import { encodeIndexFile } from '../../repo/master-index.js';
import { idFromKey, objectKey } from '../../repo/format/layout.js';
import type { PackedBlob } from '../../repo/format/pack.js';
import { backendExtra, type ObjectInfo } from '../../repo/backends/backend.js';
import { errorMessage } from '../../util/errors.js';
import { forgottenIds, listSnapshots, type ForgetRecord } from '../snapshot.js';
import { TreeLoader } from '../tree.js';

/**
 * A pack that no snapshot references yet may belong to a backup still running (its
 * snapshot is written last), or to an interrupted one whose packs the next backup reuses.
 * Such packs are not even recorded for deletion before they are this old.
 */
export const IN_FLIGHT_GRACE_MS = 24 * 3_600_000;
const DAY_MS = 86_400_000;

export interface PruneCandidate {
  key: string;
  size: number;
  created: string;
  /** when the immutability period (and the in-flight grace or the safety margin, for packs) ends */
  deletableAfter: string;
}

export interface PrunePlan {
  now: string;
  immutabilityDays: number;
  /** minutes between recording a pack for deletion and deleting it */
  safetyMarginMinutes: number;
  snapshotsKept: number;
  packs: number;
  /** packs still holding blobs of kept snapshots */
  packsUsed: number;
  /** bytes in used packs that no kept snapshot needs (freed only when the whole pack is unused) */
  unusedBytesInUsedPacks: number;
  /** packs this prune records for deletion (phase one): a prune at least the safety margin later deletes them */
  mark: PruneCandidate[];
  /** deleted by this prune (packs: recorded for deletion at least the safety margin ago, and still unused) */
  delete: {
    packs: PruneCandidate[];
    snapshots: PruneCandidate[];
    forgetRecords: PruneCandidate[];
    indexFiles: PruneCandidate[];
    deletionRecords: PruneCandidate[];
    staleUploads: PruneCandidate[];
  };
  /** not needed, but still inside the immutability period, the in-flight grace or the safety margin */
  keepForNow: { packs: PruneCandidate[]; snapshots: PruneCandidate[]; indexFiles: PruneCandidate[] };
  /** packs recorded for deletion that a snapshot committed since needs: kept */
  reprieved: string[];
  /** packs in no index: their headers were read, and the rewritten index lists them again */
  unindexedPacks: number;
  /** damaged objects found (reported, skipped, never deleted by this plan) */
  damaged: string[];
  /** why no pack is recorded for deletion this time, if so */
  markingHeldBack?: string;
  bytesFreed: number;
  /** index files the rewritten index supersedes: exactly those this plan saw */
  supersedeIndexFiles: string[];
}

export interface PruneOptions {
  now?: Date;
}

function candidate(info: ObjectInfo, minAgeMs: number, from = info.created): PruneCandidate {
  return {
    key: info.key,
    size: info.size,
    created: info.created.toISOString(),
    deletableAfter: new Date(Math.max(info.created.getTime() + minAgeMs, from.getTime() + minAgeMs)).toISOString(),
  };
}

/**
 * Decide what prune may do, changing nothing. Deleting a pack takes two prunes: one
 * records it for deletion (a deletion record), a later one at least DELETION_MARGIN_MS
 * after deletes it if still nothing needs it. Backups never deduplicate against a pack
 * so recorded and write again what they relied on from one (BlobWriter), so no snapshot
 * committed meanwhile can lose a blob. Other objects (forgotten snapshots, forget records,
 * superseded index files) go in one step once their immutability period has passed.
 */
export async function planPrune(repo: Repository, options: PruneOptions = {}): Promise<PrunePlan> {
  const now = options.now ?? new Date();
  const immutableMs = repo.config.immutabilityDays * DAY_MS;
  const packMinAge = Math.max(immutableMs, IN_FLIGHT_GRACE_MS);
  const past = (info: ObjectInfo, minAge: number) => now.getTime() - info.created.getTime() >= minAge;

  // Snapshots before the index: everything a listed snapshot references is then indexed.
  // Kept and forgotten from one reading of the forget records: a snapshot is deleted only
  // if that reading forgot it, never because it is missing from the kept list.
  const forgotten = await forgottenIds(repo);
  const kept = await listSnapshots(repo, { forgotten });
  await repo.loadIndex();
  const used = new Set<string>();
  const loader = new TreeLoader(repo, 64);
  const visitedTrees = new Set<string>();
  const markTree = async (treeId: string): Promise<void> => {
    if (visitedTrees.has(treeId)) return;
    visitedTrees.add(treeId);
    used.add(treeId);
    for (const node of (await loader.load(treeId)).nodes) {
      for (const id of node.content ?? []) used.add(id);
      if (node.subtree) await markTree(node.subtree);
    }
  };
  // A tree that cannot be read makes it impossible to know what is used: fail rather than guess.
  for (const ref of kept) await markTree(ref.snapshot.tree);

  const plan: PrunePlan = {
    now: now.toISOString(),
    immutabilityDays: repo.config.immutabilityDays,
    safetyMarginMinutes: DELETION_MARGIN_MS / 60_000,
    snapshotsKept: kept.length,
    packs: 0,
    packsUsed: 0,
    unusedBytesInUsedPacks: 0,
    mark: [],
    delete: { packs: [], snapshots: [], forgetRecords: [], indexFiles: [], deletionRecords: [], staleUploads: [] },
    keepForNow: { packs: [], snapshots: [], indexFiles: [] },
    reprieved: [],
    unindexedPacks: 0,
    damaged: [],
    bytesFreed: 0,
    supersedeIndexFiles: [],
  };

  // Packs no index lists (an interrupted backup's last packs, or those of a damaged index
  // file) are judged by their own headers, never deleted blind.
  const packInfos = await repo.listObjects('data');
  const unreadable = new Set<string>();
  for (const info of packInfos) {
    const packId = idFromKey(info.key);
    if (repo.index.packs().has(packId)) continue;
    try {
      repo.index.addPack(packId, await repo.readPackHeader(packId, info.size));
      plan.unindexedPacks++;
    } catch (err) {
      unreadable.add(packId);
      repo.reportDamage(info.key, err);
    }
  }
  const snapshotDamage = [...repo.damage.keys()].filter((key) => key.startsWith('snapshots/'));
  // A damaged forget record may have been an undo ("forget --undo"): the snapshots it
  // brought back would look forgotten. Nothing is let go, no snapshot deleted, until it reads again.
  const recordDamage = [...repo.damage.keys()].filter((key) => key.startsWith('forget/'));
  if (snapshotDamage.length > 0) {
    // A damaged manifest hides which packs its snapshot needs: nothing new is let go until
    // someone decides that snapshot is lost (forgets it).
    plan.markingHeldBack = `damaged snapshots (${snapshotDamage.map((k) => idFromKey(k).slice(0, 8)).join(', ')}) may need any unused pack: forget them ("stackvault forget <id>") to let prune go on`;
  } else if (recordDamage.length > 0) {
    plan.markingHeldBack = `damaged forget records (${recordDamage.map((k) => idFromKey(k).slice(0, 8)).join(', ')}) may have kept snapshots again ("forget --undo"): prune lets nothing go and deletes no snapshot until they read again (see "stackvault check")`;
  }

  /** earliest deletion record naming each pack */
  const recordedAt = new Map<string, Date>();
  for (const record of repo.knownDeletions()) {
    for (const packId of record.packs) {
      const known = recordedAt.get(packId);
      if (!known || record.info.created < known) recordedAt.set(packId, record.info.created);
    }
  }
  const packs = repo.index.packs();
  const infoOf = new Map(packInfos.map((i) => [idFromKey(i.key), i]));
  /** recorded long enough ago: deleted unless something needs them after all */
  const due = new Set<string>();
  for (const info of packInfos) {
    const packId = idFromKey(info.key);
    plan.packs++;
    if (unreadable.has(packId)) continue;
    const blobs = packs.get(packId) ?? [];
    const usedHere = blobs.filter((b) => used.has(b.id)).length;
    const recorded = recordedAt.get(packId);
    if (recorded && now.getTime() - recorded.getTime() >= DELETION_MARGIN_MS && past(info, immutableMs)) {
      // What a damaged snapshot or forget record hides may need it: it waits with the rest.
      if (plan.markingHeldBack) plan.keepForNow.packs.push(candidate(info, Math.max(immutableMs, DELETION_MARGIN_MS), recorded));
      else due.add(packId);
      continue;
    }
    if (recorded && usedHere === 0) {
      plan.keepForNow.packs.push(candidate(info, Math.max(immutableMs, DELETION_MARGIN_MS), recorded));
      continue;
    }
    if (usedHere > 0) {
      plan.packsUsed++;
      plan.unusedBytesInUsedPacks += blobs.filter((b) => !used.has(b.id)).reduce((n, b) => n + b.length, 0);
      continue;
    }
    if (!past(info, packMinAge)) plan.keepForNow.packs.push(candidate(info, packMinAge));
    else if (plan.markingHeldBack) plan.keepForNow.packs.push(candidate(info, packMinAge));
    else plan.mark.push(candidate(info, packMinAge));
  }
  // A recorded pack goes only if every used blob in it has a copy in a pack that stays
  // (a backup wrote it again); packs that cover each other cannot both go.
  const outside = new Set<string>();
  for (const [packId, blobs] of packs) if (!due.has(packId) && infoOf.has(packId)) for (const b of blobs) outside.add(b.id);
  for (let changed = true; changed; ) {
    changed = false;
    for (const packId of due) {
      if (packs.get(packId)!.every((b) => !used.has(b.id) || outside.has(b.id))) continue;
      due.delete(packId);
      plan.reprieved.push(packId);
      for (const b of packs.get(packId)!) outside.add(b.id);
      changed = true;
    }
  }
  plan.packsUsed += plan.reprieved.length;
  for (const packId of due) plan.delete.packs.push(candidate(infoOf.get(packId)!, immutableMs));

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

  const superseded = repo.supersededIndexFiles();
  // The rewritten index drops deleted packs and lists unindexed ones again (superseding any damaged index file).
  const rewriteIndex = plan.delete.packs.length > 0 || plan.unindexedPacks > 0;
  // Only index files this plan read: one a backup wrote since lists packs the new index does not.
  const read = new Set(repo.loadedIndexFiles());
  const indexInfos = (await repo.listObjects('index')).filter((i) => read.has(idFromKey(i.key)));
  if (rewriteIndex) plan.supersedeIndexFiles = indexInfos.map((i) => idFromKey(i.key)).sort();
  for (const info of indexInfos) {
    const id = idFromKey(info.key);
    // With a rewrite, the new index supersedes every index file read.
    if (!rewriteIndex && !superseded.includes(id)) continue;
    const c = candidate(info, immutableMs);
    if (past(info, immutableMs)) plan.delete.indexFiles.push(c);
    else plan.keepForNow.indexFiles.push(c);
  }

  // A deletion record goes once its packs are gone, and long after, for backups held up meanwhile.
  const remainingPacks = new Set(packInfos.map((i) => idFromKey(i.key)).filter((id) => !due.has(id)));
  for (const { info, packs: named } of repo.knownDeletions()) {
    if (named.some((p) => remainingPacks.has(p))) continue;
    if (past(info, Math.max(immutableMs, DELETION_RECORDS_KEPT_MS))) plan.delete.deletionRecords.push(candidate(info, DELETION_RECORDS_KEPT_MS));
  }

  const staleUploads = await backendExtra(repo.backend, 'staleUploads');
  if (staleUploads) {
    for (const info of await staleUploads(IN_FLIGHT_GRACE_MS, now)) plan.delete.staleUploads.push(candidate(info, IN_FLIGHT_GRACE_MS));
  }
  plan.damaged = [...repo.damage].map(([key, message]) => `${key}: ${message}`);
  plan.bytesFreed = Object.values(plan.delete)
    .flat()
    .reduce((n, c) => n + c.size, 0);
  return plan;
}

export interface PruneResult {
  deleted: number;
  bytesFreed: number;
  newIndex: string | null;
  /** the deletion record written for plan.mark */
  deletionRecord: string | null;
}

/**
 * Carry out a plan: the deletion record and the new index first, then deletions, so a
 * crash at any point leaves a valid repository. Index files written after the plan (a
 * concurrent backup) stay in force.
 */
export async function executePrune(repo: Repository, plan: PrunePlan): Promise<PruneResult> {
  let deletionRecord: string | null = null;
  if (plan.mark.length > 0) {
    const record: DeletionRecord = { version: 1, time: plan.now, packs: plan.mark.map((c) => idFromKey(c.key)).sort() };
    deletionRecord = await repo.saveObject('deletions', record);
  }
  let newIndex: string | null = null;
  if (plan.supersedeIndexFiles.length > 0) {
    await repo.loadIndex();
    const gone = new Set(plan.delete.packs.map((c) => idFromKey(c.key)));
    const remaining = new Map<string, PackedBlob[]>();
    for (const [packId, blobs] of repo.index.packs()) if (!gone.has(packId)) remaining.set(packId, blobs);
    newIndex = await repo.saveObject('index', encodeIndexFile(remaining, plan.supersedeIndexFiles));
  }
  let deleted = 0;
  const remove = async (key: string) => {
    try {
      await repo.backend.delete(key);
      deleted++;
    } catch (err) {
      throw new Error(`prune stopped: cannot delete ${key}: ${errorMessage(err)} (the repository is consistent; run prune again)`);
    }
  };
  for (const c of plan.delete.packs) await remove(c.key);
  for (const c of [...plan.delete.snapshots, ...plan.delete.forgetRecords, ...plan.delete.indexFiles, ...plan.delete.deletionRecords]) {
    if (newIndex && c.key === objectKey('index', newIndex)) continue;
    await remove(c.key);
  }
  const deleteStaleUpload = await backendExtra(repo.backend, 'deleteStaleUpload');
  for (const c of plan.delete.staleUploads) {
    await deleteStaleUpload?.(c.key);
    deleted++;
  }
  return { deleted, bytesFreed: plan.bytesFreed, newIndex, deletionRecord };
}
