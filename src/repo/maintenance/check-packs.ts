import { createHash } from 'node:crypto';
import type { Repository } from '../repository.js';
import { SEAL_OVERHEAD } from '../format/crypto.js';
import { idFromKey, isObjectId, objectKey } from '../format/layout.js';
import { PACK_TRAILER_BYTES, type PackedBlob } from '../format/pack.js';
import { verifyPack, type PackVerdict } from '../format/pack-verify.js';
import { DecodePool } from '../decode/decode-pool.js';
import { mapConcurrent } from '../../util/concurrency.js';
import { UsageError, errorMessage } from '../../util/errors.js';

export interface PackCheckOptions {
  readData?: boolean;
  /** read only a share of the packs: "n/t" (the n-th of t groups of packs) or "x%" (a random share of packs) */
  readDataSubset?: string;
  progress?: (p: PackCheckProgress) => void;
  /** called once the first packs are being read and verified (with read-data), or once nothing is to be read */
  reading?: () => void;
  /** threads to verify packs on, started by the caller (and closed by it); else checkPacks starts its own */
  verifier?: DecodePool;
}

export interface PackCheckProgress {
  phase: 'index' | 'snapshots' | 'data';
  packsDone: number;
  packsTotal: number;
  bytesDone: number;
  bytesTotal: number;
}

export interface PackCheckResult {
  errors: string[];
  warnings: string[];
  packs: number;
  packsRead: number;
  bytesRead: number;
  /** blob id -> why it cannot be read (a missing, unreadable or damaged pack, a damaged blob) */
  badBlobs: Map<string, string>;
}

const PACK_HEADER_ENTRY_BYTES = 42;

/**
 * The repository's own structure, below any snapshot: every indexed pack exists with the
 * size the index gives, packs no index lists are reported, and with read-data every (or a
 * subset of) pack is read, hashed against its name and every blob decrypted and re-hashed.
 * The index must be loaded. What cannot be read is returned per blob, for the caller to
 * map onto the snapshots that need it.
 */
export async function checkPacks(repo: Repository, options: PackCheckOptions = {}, progress: PackCheckProgress = { phase: 'index', packsDone: 0, packsTotal: 0, bytesDone: 0, bytesTotal: 0 }): Promise<PackCheckResult> {
  const result: PackCheckResult = { errors: [], warnings: [], packs: 0, packsRead: 0, bytesRead: 0, badBlobs: new Map() };
  const { badBlobs } = result;
  const subset = options.readDataSubset ? parseSubset(options.readDataSubset) : undefined;
  const stored = new Map<string, number>();
  for (const info of await repo.listObjects('data')) {
    const id = idFromKey(info.key);
    if (!isObjectId(id)) result.warnings.push(`unexpected object ${info.key}`);
    else stored.set(id, info.size);
  }
  for (const [key, message] of repo.damage) result.errors.push(`${key} is damaged and skipped: ${message}`);
  // One pack's blobs at a time: an index of ten million blobs does not fit in memory as objects.
  const listed = repo.index.packIdsListed();
  result.packs = listed.length;
  for (const packId of listed) {
    const blobs = repo.index.packBlobs(packId)!;
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
  const unindexed = [...stored].filter(([packId]) => !repo.index.hasPack(packId));
  if (unindexed.length > 0) {
    const bytes = unindexed.reduce((n, [, size]) => n + size, 0);
    result.warnings.push(
      `${unindexed.length} packs (${bytes} bytes) are in no index: left by interrupted backups, or listed by a damaged index file ("stackvault repair index" indexes them again; prune removes those no snapshot needs)`,
    );
  }

  // A subset means reading that share of the data: asking for one and reading nothing was the nightly check's bug.
  if (options.readData || subset) {
    progress.phase = 'data';
    const chosen = listed.filter((id) => stored.has(id) && (!subset || subset(id)));
    const selected = subset?.percent ? shuffled(chosen).slice(0, Math.max(1, Math.ceil((listed.length * subset.percent) / 100))) : chosen;
    // Largest first: the threads end together on the small ones, and each sizes its pack
    // memory once. In the index's order a small pack came first, then memory for a full
    // one, then, doubled, for a slightly larger one (util/scratch.ts), the freed ones kept
    // by malloc: a check of 1.24 GB peaked at 220-222 MiB instead of 183-188.
    selected.sort((a, b) => stored.get(b)! - stored.get(a)!);
    progress.packsTotal = selected.length;
    progress.bytesTotal = selected.reduce((n, id) => n + (stored.get(id) ?? 0), 0);
    // Packs are verified on worker threads, one per core, while the next ones are read.
    const verifier = options.verifier ?? (selected.length > 1 ? new DecodePool(repo.master) : undefined);
    try {
      // One pack per worker, and one more being read (by this thread, or for a folder
      // repository waiting in a worker's queue, which reads its packs itself).
      const read = mapConcurrent(selected, verifier ? verifier.size + 1 : 1, async (packId) => {
        await readPack(repo, packId, stored.get(packId)!, repo.index.packBlobs(packId)!, result, verifier);
        progress.packsDone++;
        progress.bytesDone += stored.get(packId) ?? 0;
        options.progress?.(progress);
      });
      options.reading?.();
      await read;
    } finally {
      if (verifier !== options.verifier) await verifier?.close();
    }
    result.packsRead = selected.length;
    result.bytesRead = progress.bytesDone;
  } else options.reading?.();
  return result;
}

function shortId(id: string): string {
  return id.slice(0, 8);
}

function expectedPackSize(blobs: PackedBlob[], encrypted: boolean): number {
  const blobBytes = blobs.reduce((n, b) => n + b.length, 0);
  return blobBytes + blobs.length * PACK_HEADER_ENTRY_BYTES + (encrypted ? SEAL_OVERHEAD : 0) + PACK_TRAILER_BYTES;
}

async function readPack(repo: Repository, packId: string, size: number, indexed: PackedBlob[], result: PackCheckResult, verifier?: DecodePool): Promise<void> {
  const unreadable = (why: string) => {
    result.errors.push(`pack ${shortId(packId)} cannot be read: ${why}`);
    for (const b of indexed) result.badBlobs.set(b.id, `pack ${shortId(packId)} cannot be read`);
  };
  // A folder repository's pack is read by the thread that verifies it.
  const file = verifier ? repo.localPackFile(packId) : undefined;
  let verdict: PackVerdict;
  if (file !== undefined) {
    verdict = await verifier!.verifyFile(packId, file, size, indexed);
    if (verdict.unreadable !== undefined) return unreadable(verdict.unreadable);
  } else {
    let bytes: Buffer;
    try {
      bytes = await repo.backend.get(objectKey('data', packId));
    } catch (err) {
      return unreadable(errorMessage(err));
    }
    verdict = verifier ? await verifier.verify(packId, bytes, indexed) : verifyPack(repo.master, packId, bytes, indexed);
  }
  const hashOk = verdict.hashOk;
  const damagedBlobs = verdict.damaged.length;
  for (const { id, message } of verdict.damaged) {
    result.badBlobs.set(id, message);
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

/** Which packs a subset reads; with `percent`, a random share of them. */
type SubsetFilter = ((packId: string) => boolean) & { percent?: number };

/** The packs --read-data-subset names; a UsageError for a spec that names none. */
export function parseSubset(spec: string): SubsetFilter {
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
