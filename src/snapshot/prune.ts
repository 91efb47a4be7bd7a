import type { Repository } from '../repo/repository.js';
import { encodeIndexFile } from '../repo/index.js';
import { idFromKey, objectKey } from '../repo/layout.js';
import type { PackedBlob } from '../repo/pack.js';
import type { ObjectInfo } from '../repo/backends/backend.js';
import { listSnapshots, type ForgetRecord } from './snapshot.js';
import { TreeLoader } from './tree.js';

/**
 * A pack that no snapshot references yet may belong to a backup still running (its
 * snapshot is written last). Such packs are kept at least this long after they were written.
 */
export const IN_FLIGHT_GRACE_MS = 24 * 3_600_000;
const DAY_MS = 86_400_000;

export interface PruneCandidate {
  key: string;
  size: number;
  created: string;
  /** when the immutability period (and the in-flight grace, for packs) ends */
  deletableAfter: string;
}

export interface PrunePlan {
  now: string;
  immutabilityDays: number;
  snapshotsKept: number;
  packs: number;
  /** packs still holding blobs of kept snapshots */
  packsUsed: number;
  /** bytes in used packs that no kept snapshot needs (freed only when the whole pack is unused) */
  unusedBytesInUsedPacks: number;
  /** deleted by this prune */
  delete: { packs: PruneCandidate[]; snapshots: PruneCandidate[]; forgetRecords: PruneCandidate[]; indexFiles: PruneCandidate[]; staleUploads: PruneCandidate[] };
  /** not needed, but still inside the immutability period or the in-flight grace */
  keepForNow: { packs: PruneCandidate[]; snapshots: PruneCandidate[]; indexFiles: PruneCandidate[] };
  bytesFreed: number;
  /** index files the rewritten index supersedes: exactly those this plan saw */
  supersedeIndexFiles: string[];
}

export interface PruneOptions {
  now?: Date;
}

function candidate(info: ObjectInfo, minAgeMs: number): PruneCandidate {
  return {
    key: info.key,
    size: info.size,
    created: info.created.toISOString(),
    deletableAfter: new Date(info.created.getTime() + minAgeMs).toISOString(),
  };
}

/**
 * Decide what prune may delete: an object goes only when nothing kept needs it AND its
 * immutability period has passed. Nothing is changed here.
 */
export async function planPrune(repo: Repository, options: PruneOptions = {}): Promise<PrunePlan> {
  const now = options.now ?? new Date();
  const immutableMs = repo.config.immutabilityDays * DAY_MS;
  const packMinAge = Math.max(immutableMs, IN_FLIGHT_GRACE_MS);
  const past = (info: ObjectInfo, minAge: number) => now.getTime() - info.created.getTime() >= minAge;

  await repo.loadIndex();
  const kept = await listSnapshots(repo);
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
    snapshotsKept: kept.length,
    packs: 0,
    packsUsed: 0,
    unusedBytesInUsedPacks: 0,
    delete: { packs: [], snapshots: [], forgetRecords: [], indexFiles: [], staleUploads: [] },
    keepForNow: { packs: [], snapshots: [], indexFiles: [] },
    bytesFreed: 0,
    supersedeIndexFiles: [],
  };

  const indexed = repo.index.packs();
  for (const info of await repo.listObjects('data')) {
    plan.packs++;
    const blobs = indexed.get(idFromKey(info.key));
    const usedHere = blobs ? blobs.filter((b) => used.has(b.id)) : [];
    if (usedHere.length > 0) {
      plan.packsUsed++;
      plan.unusedBytesInUsedPacks += blobs!.filter((b) => !used.has(b.id)).reduce((n, b) => n + b.length, 0);
      continue;
    }
    const c = candidate(info, packMinAge);
    if (past(info, packMinAge)) plan.delete.packs.push(c);
    else plan.keepForNow.packs.push(c);
  }

  const keptIds = new Set(kept.map((r) => r.id));
  const snapshotInfos = await repo.listObjects('snapshots');
  const remainingSnapshots = new Set<string>();
  for (const info of snapshotInfos) {
    const id = idFromKey(info.key);
    if (keptIds.has(id)) {
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
  for (const info of await repo.listObjects('forget')) {
    const record = await repo.loadObject<ForgetRecord>('forget', idFromKey(info.key));
    if (record.snapshots.some((id) => remainingSnapshots.has(id))) continue;
    if (past(info, immutableMs)) plan.delete.forgetRecords.push(candidate(info, immutableMs));
  }

  const superseded = repo.supersededIndexFiles();
  const rewriteIndex = plan.delete.packs.length > 0;
  const indexInfos = await repo.listObjects('index');
  if (rewriteIndex) plan.supersedeIndexFiles = indexInfos.map((i) => idFromKey(i.key)).sort();
  for (const info of indexInfos) {
    const id = idFromKey(info.key);
    // With a rewrite, the new index supersedes every current index file.
    if (!rewriteIndex && !superseded.includes(id)) continue;
    const c = candidate(info, immutableMs);
    if (past(info, immutableMs)) plan.delete.indexFiles.push(c);
    else plan.keepForNow.indexFiles.push(c);
  }

  if (repo.backend.staleUploads) {
    for (const info of await repo.backend.staleUploads(IN_FLIGHT_GRACE_MS, now)) plan.delete.staleUploads.push(candidate(info, IN_FLIGHT_GRACE_MS));
  }
  plan.bytesFreed = Object.values(plan.delete)
    .flat()
    .reduce((n, c) => n + c.size, 0);
  return plan;
}

export interface PruneResult {
  deleted: number;
  bytesFreed: number;
  newIndex: string | null;
}

/**
 * Carry out a plan: the new index first, then deletions, so a crash at any point leaves a
 * valid repository. Index files written after the plan (a concurrent backup) stay in force.
 */
export async function executePrune(repo: Repository, plan: PrunePlan): Promise<PruneResult> {
  let newIndex: string | null = null;
  if (plan.delete.packs.length > 0) {
    await repo.loadIndex();
    const gone = new Set(plan.delete.packs.map((c) => idFromKey(c.key)));
    const remaining = new Map<string, PackedBlob[]>();
    for (const [packId, blobs] of repo.index.packs()) if (!gone.has(packId)) remaining.set(packId, blobs);
    newIndex = await repo.saveObject('index', encodeIndexFile(remaining, plan.supersedeIndexFiles));
  }
  let deleted = 0;
  for (const c of plan.delete.packs) {
    await repo.backend.delete(c.key);
    deleted++;
  }
  for (const c of [...plan.delete.snapshots, ...plan.delete.forgetRecords, ...plan.delete.indexFiles]) {
    if (newIndex && c.key === objectKey('index', newIndex)) continue;
    await repo.backend.delete(c.key);
    deleted++;
  }
  for (const c of plan.delete.staleUploads) {
    await repo.backend.deleteStaleUpload?.(c.key);
    deleted++;
  }
  return { deleted, bytesFreed: plan.bytesFreed, newIndex };
}
