import { DELETION_MARGIN_MS, DELETION_RECORDS_KEPT_MS, type DeletionRecord, type Repository } from '../repository.js';
import { encodeIndexFiles } from '../master-index.js';
import { idFromKey, objectKey } from '../format/layout.js';
import type { PackedBlob } from '../format/pack.js';
import type { BlobMarks } from '../blob-marks.js';
import { backendExtra, type ObjectInfo } from '../backends/backend.js';
import { errorMessage } from '../../util/errors.js';

/*
 * Prune's repository half: given the blobs kept snapshots use (found by the snapshot
 * layer, which reads trees), which packs, index files and deletion records may go, and
 * carrying that out. Deleting a pack takes two prunes: one records it for deletion (a
 * deletion record), a later one at least DELETION_MARGIN_MS after deletes it if still
 * nothing needs it. Backups never deduplicate against a pack so recorded and write again
 * what they relied on from one (BlobWriter), so no snapshot committed meanwhile can lose a blob.
 */

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
    /** binary log segments older than any kept snapshot's recovery window needs */
    binlogSegments: PruneCandidate[];
  };
  /** not needed, but still inside the immutability period, the in-flight grace or the safety margin */
  keepForNow: { packs: PruneCandidate[]; snapshots: PruneCandidate[]; indexFiles: PruneCandidate[]; binlogSegments: PruneCandidate[] };
  /** packs recorded for deletion that a snapshot committed since needs: kept */
  reprieved: string[];
  /** packs in no index: their headers were read, and the rewritten index lists them again */
  unindexedPacks: number;
  /** damaged objects found (reported, skipped, never deleted by this plan) */
  damaged: string[];
  /** why no pack is recorded for deletion this time, if so */
  markingHeldBack?: string;
  bytesFreed: number;
  /** the index is written again: without the packs deleted, with the packs no index listed */
  rewriteIndex: boolean;
  /** index files the rewritten index supersedes: exactly those this plan saw */
  supersedeIndexFiles: string[];
}

export function candidate(info: ObjectInfo, minAgeMs: number, from = info.created): PruneCandidate {
  return {
    key: info.key,
    size: info.size,
    created: info.created.toISOString(),
    deletableAfter: new Date(Math.max(info.created.getTime() + minAgeMs, from.getTime() + minAgeMs)).toISOString(),
  };
}

/** An empty plan: what the judging below fills in. */
export function emptyPlan(repo: Repository, now: Date, snapshotsKept: number, markingHeldBack: string | undefined): PrunePlan {
  return {
    now: now.toISOString(),
    immutabilityDays: repo.config.immutabilityDays,
    safetyMarginMinutes: DELETION_MARGIN_MS / 60_000,
    snapshotsKept,
    packs: 0,
    packsUsed: 0,
    unusedBytesInUsedPacks: 0,
    mark: [],
    delete: { packs: [], snapshots: [], forgetRecords: [], indexFiles: [], deletionRecords: [], staleUploads: [], binlogSegments: [] },
    keepForNow: { packs: [], snapshots: [], indexFiles: [], binlogSegments: [] },
    reprieved: [],
    unindexedPacks: 0,
    damaged: [],
    bytesFreed: 0,
    rewriteIndex: false,
    supersedeIndexFiles: [],
    ...(markingHeldBack === undefined ? {} : { markingHeldBack }),
  };
}

/** How a plan judges ages: the repository's immutability period, and whether an object is older than an age at the plan's moment. */
export function planClock(repo: Repository, plan: PrunePlan): { immutableMs: number; past: (info: ObjectInfo, minAgeMs: number) => boolean } {
  const now = Date.parse(plan.now);
  return { immutableMs: repo.config.immutabilityDays * DAY_MS, past: (info, minAgeMs) => now - info.created.getTime() >= minAgeMs };
}

/** The repository's packs as listed for a plan, and those whose headers could not be read. */
export interface ListedPacks {
  infos: ObjectInfo[];
  unreadable: Set<string>;
  /** packs no index listed: indexed from their headers */
  unindexed: number;
}

/**
 * Lists the packs and indexes those no index lists (an interrupted backup's last packs, or
 * those of a damaged index file) from their own headers: they are judged like the rest,
 * never deleted blind, and the rewritten index lists them again. Before the blobs in use
 * are marked (see BlobMarks): marks cover only the entries there are when they are made.
 */
export async function indexUnlistedPacks(repo: Repository): Promise<ListedPacks> {
  const infos = await repo.listObjects('data');
  const unreadable = new Set<string>();
  let unindexed = 0;
  for (const info of infos) {
    const packId = idFromKey(info.key);
    if (repo.index.hasPack(packId)) continue;
    try {
      repo.index.addPack(packId, await repo.readPackHeader(packId, info.size));
      unindexed++;
    } catch (err) {
      unreadable.add(packId);
      repo.reportDamage(info.key, err);
    }
  }
  return { infos, unreadable, unindexed };
}

/**
 * Judge every pack listed against the blobs kept snapshots use: used, recorded for
 * deletion now, deleted (recorded long enough ago and still unused), or kept for now.
 * Returns the packs that remain after this plan.
 */
export function judgePacks(repo: Repository, plan: PrunePlan, used: BlobMarks, listed: ListedPacks): Set<string> {
  const now = new Date(plan.now);
  const { immutableMs, past } = planClock(repo, plan);
  const packMinAge = Math.max(immutableMs, IN_FLIGHT_GRACE_MS);
  const { infos: packInfos, unreadable } = listed;
  plan.unindexedPacks = listed.unindexed;
  /** earliest deletion record naming each pack */
  const recordedAt = new Map<string, Date>();
  for (const record of repo.knownDeletions()) {
    for (const packId of record.packs) {
      const known = recordedAt.get(packId);
      if (!known || record.info.created < known) recordedAt.set(packId, record.info.created);
    }
  }
  const infoOf = new Map(packInfos.map((i) => [idFromKey(i.key), i]));
  /** recorded long enough ago: deleted unless something needs them after all */
  const due = new Set<string>();
  for (const info of packInfos) {
    const packId = idFromKey(info.key);
    plan.packs++;
    if (unreadable.has(packId)) continue;
    // Counted from the marks alone: a pack's blobs are read only where some are used and some not.
    const range = repo.index.packRange(packId);
    const usedHere = range ? used.countIn(range.first, range.count) : 0;
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
      if (usedHere < range!.count) {
        const { first, blobs } = repo.index.packEntries(packId)!;
        plan.unusedBytesInUsedPacks += blobs.reduce((n, b, i) => (used.isMarked(first + i) ? n : n + b.length), 0);
      }
      continue;
    }
    if (!past(info, packMinAge)) plan.keepForNow.packs.push(candidate(info, packMinAge));
    else if (plan.markingHeldBack) plan.keepForNow.packs.push(candidate(info, packMinAge));
    else plan.mark.push(candidate(info, packMinAge));
  }
  // A recorded pack goes only if every used blob in it has a copy in a pack that stays
  // (a backup wrote it again); packs that cover each other cannot both go.
  const staysElsewhere = (n: number) => repo.index.otherCopies(n).some((pack) => !due.has(pack) && infoOf.has(pack));
  for (let changed = true; changed; ) {
    changed = false;
    for (const packId of due) {
      const entries = repo.index.packEntries(packId);
      // (A pack the index does not list cannot be judged: it stays.)
      if (entries && entries.blobs.every((_, i) => !used.isMarked(entries.first + i) || staysElsewhere(entries.first + i))) continue;
      due.delete(packId);
      plan.reprieved.push(packId);
      changed = true;
    }
  }
  plan.packsUsed += plan.reprieved.length;
  for (const packId of due) plan.delete.packs.push(candidate(infoOf.get(packId)!, immutableMs));

  return new Set(packInfos.map((i) => idFromKey(i.key)).filter((id) => !due.has(id)));
}

/**
 * Judge index files (superseded ones, or all read when the index is rewritten), deletion
 * records whose packs are gone, and uploads a backend left half-done; then total the plan.
 */
export async function judgeIndexAndRecords(repo: Repository, plan: PrunePlan, remainingPacks: ReadonlySet<string>): Promise<void> {
  const { immutableMs, past } = planClock(repo, plan);
  const superseded = repo.supersededIndexFiles();
  // The rewritten index drops deleted packs and lists unindexed ones again (superseding any damaged index file).
  const rewriteIndex = plan.delete.packs.length > 0 || plan.unindexedPacks > 0;
  // Only index files this plan read: one a backup wrote since lists packs the new index does not.
  const read = new Set(repo.loadedIndexFiles());
  const indexInfos = (await repo.listObjects('index')).filter((i) => read.has(idFromKey(i.key)));
  plan.rewriteIndex = rewriteIndex;
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
  for (const { info, packs: named } of repo.knownDeletions()) {
    if (named.some((p) => remainingPacks.has(p))) continue;
    if (past(info, Math.max(immutableMs, DELETION_RECORDS_KEPT_MS))) plan.delete.deletionRecords.push(candidate(info, DELETION_RECORDS_KEPT_MS));
  }

  const staleUploads = await backendExtra(repo.backend, 'staleUploads');
  if (staleUploads) {
    for (const info of await staleUploads(IN_FLIGHT_GRACE_MS, new Date(plan.now))) plan.delete.staleUploads.push(candidate(info, IN_FLIGHT_GRACE_MS));
  }
  plan.damaged = [...repo.damage].map(([key, message]) => `${key}: ${message}`);
  plan.bytesFreed = Object.values(plan.delete)
    .flat()
    .reduce((n, c) => n + c.size, 0);
}

export interface PruneResult {
  deleted: number;
  bytesFreed: number;
  /** the last file of the rewritten index (the one naming the files it supersedes) */
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
  /** every file of the rewritten index: never among those deleted */
  const newIndexFiles = new Set<string>();
  // Also where no index file was read (all damaged, or gone): the packs the plan found unlisted are listed again.
  if (plan.rewriteIndex) {
    await repo.loadIndex();
    const gone = new Set(plan.delete.packs.map((c) => idFromKey(c.key)));
    const remaining = function* (): Generator<[string, PackedBlob[]]> {
      for (const pack of repo.index.eachPack()) if (!gone.has(pack[0])) yield pack;
    };
    // In order: the last file supersedes the old ones once all the others are stored.
    for (const file of encodeIndexFiles(remaining(), plan.supersedeIndexFiles)) {
      newIndex = await repo.saveObject('index', file);
      newIndexFiles.add(objectKey('index', newIndex));
    }
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
  for (const c of [...plan.delete.snapshots, ...plan.delete.binlogSegments, ...plan.delete.forgetRecords, ...plan.delete.indexFiles, ...plan.delete.deletionRecords]) {
    if (newIndexFiles.has(c.key)) continue;
    await remove(c.key);
  }
  const deleteStaleUpload = await backendExtra(repo.backend, 'deleteStaleUpload');
  for (const c of plan.delete.staleUploads) {
    await deleteStaleUpload?.(c.key);
    deleted++;
  }
  return { deleted, bytesFreed: plan.bytesFreed, newIndex, deletionRecord };
}
