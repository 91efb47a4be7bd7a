import { Condition, TaskLimiter } from '../../util/concurrency.js';
import { ObjectNotFoundError, StackvaultError } from '../../util/errors.js';
import { compressIfSmaller, type ContentKind } from '../format/compression.js';
import type { EncodedBlob } from './file-encoder.js';
import { seal } from '../format/crypto.js';
import { encodeIndexFile, MAX_BLOBS_PER_INDEX_FILE } from '../master-index.js';
import { objectKey } from '../format/layout.js';
import { MemoryPackBody, PackBuilder, PackMemory, type BlobType, type PackedBlob } from '../format/pack.js';
import { backendExtra, type ObjectFile } from '../backends/backend.js';
import { DELETION_MARGIN_MS, DELETION_RECORDS_KEPT_MS, type Repository } from '../repository.js';

/*
 * Index checkpoints: an interrupted backup's packs are known to the next one, which
 * deduplicates against them instead of uploading everything again (on WORM storage an
 * orphan pack costs its bytes for the whole immutability period). Packs are indexed once
 * 16 MiB or a twentieth of what the writer uploaded so far is unindexed, whichever is
 * more, or after a minute: an interruption loses at most that, while a 50 GB backup
 * writes about 120 index files, not thousands (each is a request for every later reader).
 */
const INDEX_CHECKPOINT_MIN_BYTES = 16 * 1024 * 1024;
const INDEX_CHECKPOINT_SHARE = 0.05;
const INDEX_FLUSH_INTERVAL_MS = 60_000;
/**
 * New deletion records are looked for at least this often, uploads or not: a backup
 * that finds nothing new to store (it only deduplicates) must see them too, long before
 * prune's safety margin runs out.
 */
const DELETION_CHECK_INTERVAL_MS = 60_000;

export interface SaveResult {
  id: string;
  /** false when the repository already had the blob */
  added: boolean;
  /** bytes stored for it (0 when deduplicated) */
  storedBytes: number;
}

/**
 * Turns blobs into packs: deduplicates against the index, compresses, encrypts, fills
 * packs per blob type, uploads full packs (a few at a time) and writes index files for
 * uploaded packs. commit() stores the object (a snapshot) that references the blobs.
 *
 * Prune deletes in two phases (docs/format.md, "Deleting"): it first writes a deletion
 * record naming packs, and deletes them only DELETION_MARGIN_MS later. The writer never
 * deduplicates against a pack so named; it watches for new records at every index
 * checkpoint and before it commits, and writes again every blob it relied on from a
 * pack that a new record names. So a committed object never references a blob that a
 * prune could delete.
 */
export class BlobWriter {
  private readonly packMemory: PackMemory;
  /** the packs filling, one per blob type, begun with their first blob */
  private readonly packers: Partial<Record<BlobType, PackBuilder>> = {};
  /** packs finished and not yet stored (or dropped) */
  private readonly finishing = new Set<Promise<void>>();
  /** the run failed: packs still waiting are dropped */
  private discarded = false;
  /** the backend's files for data packs; null where it takes objects only whole, undefined until looked up */
  private objectFiles: (() => ObjectFile) | null | undefined;
  /** ids written in this session whose pack is not in the index yet */
  private readonly pending = new Set<string>();
  private readonly uploads = new TaskLimiter(2);
  private unindexed = new Map<string, PackedBlob[]>();
  private unindexedBlobs = 0;
  private unindexedBytes = 0;
  private lastIndexWrite = Date.now();
  /**
   * Packs of earlier writers holding blobs that what this writer stores references. Packs,
   * not blobs: a no-change backup relies on every blob of its parent, and a set of those
   * cost a tenth of its time; should a prune record such a pack, all its blobs are
   * written again (rare, and bounded by the pack's size).
   */
  private readonly reliedPacks = new Set<string>();
  /** the pack has() last relied on: consecutive blobs mostly come from one pack */
  private lastReliedPack: string | undefined;
  /** packs this writer uploaded */
  private readonly ownPacks = new Set<string>();
  private lastDeletionCheck = Date.now();
  /** a deletion record may have come and gone between two checks: confirm every pack relied on before committing */
  private checkGapTooLong = false;
  private deletionCheckDue = false;
  private deletionCheck: Promise<void> | undefined;
  private failure: unknown;
  private lookups = 0;
  packsWritten = 0;
  bytesUploaded = 0;
  /** blobs written again because a prune means to delete the pack they were in */
  blobsRewritten = 0;

  constructor(private readonly repo: Repository) {
    // Room for a full pack, the usual overshoot of its last blob and its header; a pack that needs more grows its memory.
    this.packMemory = new PackMemory(repo.config.packSize + 1024 * 1024);
  }

  private async lookUpObjectFiles(): Promise<void> {
    this.objectFiles ??= (await backendExtra(this.repo.backend, 'createObjectFile')) ?? null;
  }

  /**
   * Adds a blob to the pack of its type, and finishes that pack when full; resolves once
   * the blob's bytes are copied and, when it filled the pack, the pack is stored.
   */
  private async addToPack(type: BlobType, id: string, rawLength: number, compressed: boolean, stored: Uint8Array): Promise<void> {
    if (this.objectFiles === undefined) await this.lookUpObjectFiles();
    const packer = (this.packers[type] ??= new PackBuilder(this.newPackBody(type)));
    const copied = packer.add(id, type, rawLength, compressed, stored);
    // Decided before waiting: meanwhile another blob may finish this pack and begin the next.
    const full = packer.size >= this.repo.config.packSize ? this.finishPack(type) : undefined;
    // Both awaited at once: when the copy fails (a full disk), so does the finish, and its failure must not go unhandled.
    if (copied || full) await Promise.all([copied, full]);
  }

  /**
   * A data pack goes into a file of the backend's own where it has them (a folder
   * repository), so that no pack is whole in memory. Tree packs stay in memory: a backup
   * writes trees from its start to its end, and the file of its tree pack would lie among
   * the temporary uploads all that time.
   */
  private newPackBody(type: BlobType): ObjectFile {
    // Once discarded, what tasks of the failed run still add goes to memory, never to a new file.
    if (type === 'data' && this.objectFiles && !this.discarded) return this.objectFiles();
    return new MemoryPackBody(this.packMemory, (key, data) => this.repo.backend.put(key, data));
  }

  /**
   * Whether the blob is stored (or being stored) where no prune will delete it: this
   * writer's own, or indexed in a pack no deletion record names. A blob found in the
   * index is remembered, to be written again should a deletion record name its pack.
   */
  has(id: string): boolean {
    // Cheap enough to ask on every call, but a clock read per blob is not needed.
    if (++this.lookups % 1024 === 0) this.watchDeletions();
    if (this.pending.has(id)) return true;
    const pack = this.repo.index.packOf(id);
    if (pack === undefined) return false;
    if (pack !== this.lastReliedPack) {
      if (this.repo.index.isDoomed(pack)) return false;
      this.reliedPacks.add(pack);
      this.lastReliedPack = pack;
    }
    return true;
  }

  /** `kind`: what the bytes are, for zstd's settings (see ContentKind); every tree blob (a folder, a part, a content list) is JSON. */
  async save(type: BlobType, data: Buffer, knownId?: string, kind: ContentKind = type === 'tree' ? 'json' : 'other'): Promise<SaveResult> {
    this.watchDeletions();
    const id = knownId ?? this.repo.blobId(data);
    if (this.has(id)) return { id, added: false, storedBytes: 0 };
    this.pending.add(id);
    const compressed = compressIfSmaller(data, kind);
    const stored = seal(this.repo.master.encryptionKey, compressed ?? data);
    await this.addToPack(type, id, data.length, compressed !== null, stored);
    return { id, added: true, storedBytes: stored.length };
  }

  /** Store a blob a FileEncoder already compressed and encrypted; a duplicate is dropped. */
  async addEncoded(type: BlobType, blob: EncodedBlob): Promise<SaveResult> {
    this.watchDeletions();
    if (this.has(blob.id)) return { id: blob.id, added: false, storedBytes: 0 };
    this.pending.add(blob.id);
    await this.addToPack(type, blob.id, blob.rawLength, blob.compressed, blob.stored);
    return { id: blob.id, added: true, storedBytes: blob.stored.length };
  }

  /** finished packs waiting for an upload slot: each holds a whole pack in memory */
  private packsWaiting = 0;
  private readonly noPackWaiting = new Condition(() => this.packsWaiting === 0);

  /**
   * Resolves once no finished pack waits for an upload slot. Whoever feeds the writer from
   * many tasks at once (the backup walk) waits here, so memory stays bounded when the
   * backend is slower than the encoders: each task alone only waits for its own pack.
   */
  room(): Promise<void> {
    return this.noPackWaiting.wait();
  }

  /** Whether room() would resolve at once. */
  hasRoom(): boolean {
    return this.noPackWaiting.met;
  }

  private async finishPack(type: BlobType): Promise<void> {
    const packer = this.packers[type];
    if (!packer || packer.count === 0) return;
    this.packers[type] = undefined;
    const stored = this.finishAndStore(packer);
    this.finishing.add(stored);
    try {
      await stored;
    } finally {
      this.finishing.delete(stored);
    }
  }

  private async finishAndStore(packer: PackBuilder): Promise<void> {
    this.packsWaiting++;
    try {
      let finished: Awaited<ReturnType<PackBuilder['finish']>>;
      try {
        finished = await packer.finish(this.repo.master.encryptionKey);
      } catch (err) {
        await packer.discard();
        throw err;
      }
      const { id, length, blobs, body } = finished;
      try {
        // A pack still waiting for an upload slot when the run failed is dropped, not stored.
        await this.uploads.submit(() => (this.discarded ? body.discard() : this.upload(id, length, blobs, body)));
      } catch (err) {
        // Refused: an earlier upload failed, and the limiter takes no more. The pack is dropped.
        await body.discard();
        throw err;
      }
    } finally {
      this.packsWaiting--;
      this.noPackWaiting.changed();
    }
  }

  private async upload(packId: string, bytes: number, blobs: PackedBlob[], body: ObjectFile): Promise<void> {
    await body.store(objectKey('data', packId));
    this.packsWritten++;
    this.bytesUploaded += bytes;
    this.repo.index.addPack(packId, blobs);
    this.ownPacks.add(packId);
    for (const b of blobs) this.pending.delete(b.id);
    this.unindexed.set(packId, blobs);
    this.unindexedBlobs += blobs.length;
    this.unindexedBytes += bytes;
    if (
      this.unindexedBlobs >= MAX_BLOBS_PER_INDEX_FILE ||
      this.unindexedBytes >= Math.max(INDEX_CHECKPOINT_MIN_BYTES, this.bytesUploaded * INDEX_CHECKPOINT_SHARE) ||
      Date.now() - this.lastIndexWrite > INDEX_FLUSH_INTERVAL_MS
    ) {
      await this.writeIndex();
      // Not from here, inside an upload slot: writing blobs again needs upload slots itself.
      this.deletionCheckDue = true;
    }
  }

  /** Index files along the way keep a long backup's uploads usable if it is interrupted. */
  private async writeIndex(): Promise<void> {
    if (this.unindexed.size === 0) return;
    const packs = this.unindexed;
    this.unindexed = new Map();
    this.unindexedBlobs = 0;
    this.unindexedBytes = 0;
    this.lastIndexWrite = Date.now();
    await this.repo.saveObject('index', encodeIndexFile(packs));
  }

  /**
   * After a failed or interrupted run: drops the packs still filling and those waiting for
   * an upload slot, and waits for the pack files being stored (an upload slot's task runs
   * past its submit). Resolves once no temporary pack file of this writer is left.
   */
  async discard(): Promise<void> {
    this.discarded = true;
    const filling = [this.packers.data, this.packers.tree];
    this.packers.data = this.packers.tree = undefined;
    await Promise.all([...filling.map((p) => p?.discard()), ...[...this.finishing].map((f) => f.catch(() => undefined))]);
    // Pack files being stored end (stored, or failed and removed) before the run reports its
    // failure. Uploads to a network backend are not waited for: an interrupted backup to a
    // slow remote would keep its user waiting, for no file of ours.
    if (this.objectFiles) await this.uploads.drain().catch(() => undefined);
  }

  /** Upload every partial pack and index everything written. */
  async flush(): Promise<void> {
    this.throwIfFailed();
    await this.finishPack('data');
    await this.finishPack('tree');
    await this.uploads.drain();
    await this.writeIndex();
  }

  /**
   * Store `value` (a snapshot) once everything it references is stored, indexed and out
   * of reach of any prune: the commit point. Deletion records are read once more right
   * before, and the object is written well within DELETION_MARGIN_MS of that reading, so
   * a prune that records a pack after it cannot delete that pack before it sees `value`.
   */
  async commit(kind: 'snapshots' | 'binlog', value: unknown): Promise<string> {
    await this.flush();
    for (;;) {
      await this.deletionCheck;
      this.throwIfFailed();
      const checked = Date.now();
      const rewritten = await this.rewriteDoomed();
      if (rewritten > 0) {
        await this.flush();
        continue;
      }
      if (this.checkGapTooLong) await this.confirmPacksExist();
      // Held up (a stopped process, a stalled disk) since the check: check again.
      if (Date.now() - checked > DELETION_MARGIN_MS / 4) continue;
      return this.repo.saveObject(kind, value);
    }
  }

  /**
   * Start a check for new deletion records when a checkpoint asked for one, or a minute
   * passed since the last; it runs beside the writes.
   */
  private watchDeletions(): void {
    this.throwIfFailed();
    if (this.deletionCheck) return;
    if (!this.deletionCheckDue && Date.now() - this.lastDeletionCheck < DELETION_CHECK_INTERVAL_MS) return;
    this.deletionCheckDue = false;
    this.deletionCheck = this.rewriteDoomed()
      .then(
        () => undefined,
        (err: unknown) => {
          this.failure ??= err;
        },
      )
      .finally(() => {
        this.deletionCheck = undefined;
      });
  }

  private throwIfFailed(): void {
    if (this.failure !== undefined) throw this.failure;
  }

  /**
   * Read new deletion records and write again every blob this writer relied on, or
   * wrote, in a pack they name. Returns how many blobs were written again.
   */
  private async rewriteDoomed(): Promise<number> {
    const now = Date.now();
    if (now - this.lastDeletionCheck > DELETION_RECORDS_KEPT_MS / 2) this.checkGapTooLong = true;
    this.lastDeletionCheck = now;
    const records = await this.repo.refreshDeletions();
    if (records.length === 0) return 0;
    this.lastReliedPack = undefined;
    const doomed = new Set(records.flatMap((r) => r.packs));
    let written = 0;
    for (const packId of [...this.reliedPacks, ...this.ownPacks]) {
      if (!doomed.has(packId)) continue;
      for (const b of this.repo.index.packBlobs(packId) ?? []) if (await this.writeAgain(b.id)) written++;
    }
    return written;
  }

  /**
   * Copy a blob, verified, from a pack that prune means to delete into a new pack; false
   * when it has a copy elsewhere already.
   */
  private async writeAgain(id: string): Promise<boolean> {
    if (this.pending.has(id)) return false;
    const entry = this.repo.index.get(id);
    if (!entry || !this.repo.index.isDoomed(entry.pack)) return false;
    let stored: Buffer;
    try {
      stored = Buffer.from((await this.repo.loadStoredBlob(id)).stored);
    } catch (err) {
      if (err instanceof ObjectNotFoundError) throw prunedWhileRunning(entry.pack);
      throw err;
    }
    this.repo.decodeBlob(id, entry, stored);
    this.pending.add(id);
    this.blobsRewritten++;
    await this.addToPack(entry.type, id, entry.rawLength, entry.compressed, stored);
    return true;
  }

  /** After a long gap between checks: every pack relied on must still be there. */
  private async confirmPacksExist(): Promise<void> {
    const present = new Set(await this.repo.listIds('data'));
    // Recorded packs were copied from when their record was read; the others must be there.
    for (const packId of [...this.ownPacks, ...this.reliedPacks]) if (!present.has(packId) && !this.repo.index.isDoomed(packId)) throw prunedWhileRunning(packId);
    this.checkGapTooLong = false;
  }
}

function prunedWhileRunning(packId: string): StackvaultError {
  return new StackvaultError(
    `a prune deleted pack ${packId.slice(0, 12)}, which this backup relies on, while the backup ran (held up longer than prune's safety margin); nothing was committed: run it again`,
  );
}
