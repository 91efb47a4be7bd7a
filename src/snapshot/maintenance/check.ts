import { createHash } from 'node:crypto';
import type { Repository } from '../../repo/repository.js';
import { SEAL_OVERHEAD } from '../../repo/format/crypto.js';
import { idFromKey, isObjectId, objectKey } from '../../repo/format/layout.js';
import { PACK_TRAILER_BYTES, type PackedBlob } from '../../repo/format/pack.js';
import { DecodePool } from '../../repo/decode/decode-pool.js';
import { verifyPack } from '../../repo/format/pack-verify.js';
import { mapConcurrent } from '../../util/concurrency.js';
import { UsageError, errorMessage } from '../../util/errors.js';
import { listSnapshots, shortId, type SnapshotRef } from '../snapshot.js';
import { TreeLoader, childPath } from '../tree.js';

export interface CheckOptions {
  readData?: boolean;
  /** read only a share of the packs: "n/t" (the n-th of t groups of packs) or "x%" (a random share of packs) */
  readDataSubset?: string;
  progress?: (p: CheckProgress) => void;
}

export interface CheckProgress {
  phase: 'index' | 'snapshots' | 'data';
  packsDone: number;
  packsTotal: number;
  bytesDone: number;
  bytesTotal: number;
}

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

const PACK_HEADER_ENTRY_BYTES = 42;

/**
 * Structure: every index file, snapshot and tree loads and verifies, every referenced blob
 * is indexed, every indexed pack exists with the expected size. With read-data: every
 * (or a subset of) pack is read, hashed against its name, and every blob decrypted and
 * re-hashed. Damage is mapped back to the snapshots and paths it affects.
 */
export async function check(repo: Repository, options: CheckOptions = {}): Promise<CheckResult> {
  const result: CheckResult = { errors: [], warnings: [], affected: [], snapshots: 0, packs: 0, packsRead: 0, bytesRead: 0 };
  const progress: CheckProgress = { phase: 'index', packsDone: 0, packsTotal: 0, bytesDone: 0, bytesTotal: 0 };
  const subset = options.readDataSubset ? parseSubset(options.readDataSubset) : undefined;

  // Snapshots, then index, then packs: each is written before the next, so a backup or
  // prune running meanwhile cannot make a consistent repository look damaged.
  progress.phase = 'snapshots';
  options.progress?.(progress);
  const refs = await listSnapshots(repo);
  result.snapshots = refs.length;
  await repo.loadIndex();
  const stored = new Map<string, number>();
  for (const info of await repo.listObjects('data')) {
    const id = idFromKey(info.key);
    if (!isObjectId(id)) result.warnings.push(`unexpected object ${info.key}`);
    else stored.set(id, info.size);
  }
  for (const [key, message] of repo.damage) result.errors.push(`${key} is damaged and skipped: ${message}`);
  const packs = repo.index.packs();
  result.packs = packs.size;
  /** blob id -> why it cannot be read */
  const badBlobs = new Map<string, string>();
  for (const [packId, blobs] of packs) {
    const size = stored.get(packId);
    const expected = expectedPackSize(blobs, repo.master.encryptionKey !== null);
    if (size === undefined) {
      // Prune deletes only packs it recorded for deletion: their absence is damage only where a snapshot needs them.
      if (!repo.index.isDoomed(packId)) result.errors.push(`pack ${shortId(packId)} is missing (listed in the index)`);
      for (const b of blobs) if (repo.index.get(b.id)?.pack === packId) badBlobs.set(b.id, `pack ${shortId(packId)} is missing`);
    } else if (size !== expected) {
      result.errors.push(`pack ${shortId(packId)} has ${size} bytes, the index says ${expected}`);
    }
  }
  const unindexed = [...stored].filter(([packId]) => !packs.has(packId));
  if (unindexed.length > 0) {
    const bytes = unindexed.reduce((n, [, size]) => n + size, 0);
    result.warnings.push(
      `${unindexed.length} packs (${bytes} bytes) are in no index: left by interrupted backups, or listed by a damaged index file ("stackvault repair index" indexes them again; prune removes those no snapshot needs)`,
    );
  }
  const loader = new TreeLoader(repo, 64);

  // A subset means reading that share of the data: asking for one and reading nothing was the nightly check's bug.
  if (options.readData || subset) {
    progress.phase = 'data';
    const chosen = [...packs.keys()].filter((id) => stored.has(id) && (!subset || subset(id)));
    const selected = subset?.percent ? shuffled(chosen).slice(0, Math.max(1, Math.ceil((packs.size * subset.percent) / 100))) : chosen;
    progress.packsTotal = selected.length;
    progress.bytesTotal = selected.reduce((n, id) => n + (stored.get(id) ?? 0), 0);
    // Packs are verified on worker threads, one per core, while the next ones are read.
    const verifier = selected.length > 1 ? new DecodePool(repo.master) : undefined;
    try {
      // One pack per worker, and one more being read.
      await mapConcurrent(selected, verifier ? verifier.size + 1 : 1, async (packId) => {
        await readPack(repo, packId, packs.get(packId)!, result, badBlobs, verifier);
        progress.packsDone++;
        progress.bytesDone += stored.get(packId) ?? 0;
        options.progress?.(progress);
      });
    } finally {
      await verifier?.close();
    }
    result.packsRead = selected.length;
    result.bytesRead = progress.bytesDone;
  }

  await checkSnapshots(repo, refs, loader, badBlobs, result);
  return result;
}

function expectedPackSize(blobs: PackedBlob[], encrypted: boolean): number {
  const blobBytes = blobs.reduce((n, b) => n + b.length, 0);
  return blobBytes + blobs.length * PACK_HEADER_ENTRY_BYTES + (encrypted ? SEAL_OVERHEAD : 0) + PACK_TRAILER_BYTES;
}

async function readPack(repo: Repository, packId: string, indexed: PackedBlob[], result: CheckResult, badBlobs: Map<string, string>, verifier?: DecodePool): Promise<void> {
  let bytes: Buffer;
  try {
    bytes = await repo.backend.get(objectKey('data', packId));
  } catch (err) {
    result.errors.push(`pack ${shortId(packId)} cannot be read: ${errorMessage(err)}`);
    for (const b of indexed) badBlobs.set(b.id, `pack ${shortId(packId)} cannot be read`);
    return;
  }
  const verdict = verifier ? await verifier.verify(packId, bytes, indexed) : verifyPack(repo.master, packId, bytes, indexed);
  const hashOk = verdict.hashOk;
  const damagedBlobs = verdict.damaged.length;
  for (const { id, message } of verdict.damaged) {
    badBlobs.set(id, message);
    result.errors.push(message);
  }
  const headerOk = verdict.headerError === undefined;
  if (verdict.headerError !== undefined) result.errors.push(verdict.headerError);
  else if (verdict.headerMismatch) result.errors.push(`pack ${shortId(packId)}: its header does not match the index`);
  if (!hashOk) {
    const where = damagedBlobs > 0 ? `${damagedBlobs} blob(s) damaged` : headerOk ? 'every blob verifies' : 'its header is damaged, every blob verifies';
    result.errors.push(`pack ${shortId(packId)} is damaged: its content does not match its name (${where})`);
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

/** Which packs a subset reads; with `percent`, a random share of them. */
type SubsetFilter = ((packId: string) => boolean) & { percent?: number };

function parseSubset(spec: string): SubsetFilter {
  const group = /^(\d+)\/(\d+)$/.exec(spec);
  if (group) {
    const n = Number(group[1]);
    const t = Number(group[2]);
    if (t < 1 || n < 1 || n > t) throw new UsageError(`--read-data-subset ${spec}: need 1 <= n <= t in n/t`);
    return (packId) => parseInt(packId.slice(0, 8), 16) % t === n - 1;
  }
  const percent = /^(\d+(?:\.\d+)?)%$/.exec(spec);
  if (percent) {
    const p = Number(percent[1]);
    if (!(p > 0 && p <= 100)) throw new UsageError(`--read-data-subset ${spec}: the percentage must be above 0 and at most 100`);
    const filter: SubsetFilter = () => true;
    filter.percent = p;
    return filter;
  }
  throw new UsageError(`--read-data-subset ${spec}: expected n/t (e.g. 1/5) or a percentage (e.g. 10%)`);
}

/** A new random order each run, so repeated partial checks cover different packs over time. */
function shuffled(ids: string[]): string[] {
  const salt = Math.random().toString();
  const keyed = ids.map((id) => [createHash('sha256').update(salt).update(id).digest('hex'), id] as const);
  return keyed.sort((a, b) => (a[0] < b[0] ? -1 : 1)).map(([, id]) => id);
}
