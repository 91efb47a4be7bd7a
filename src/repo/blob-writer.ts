import { Semaphore, TaskLimiter } from '../util/concurrency.js';
import { objectHash } from './crypto.js';
import { sharedEncoderPool } from './encoder-pool.js';
import { encodeIndexFile } from './index.js';
import { objectKey } from './layout.js';
import { PackBuilder, type BlobType, type PackedBlob } from './pack.js';
import type { Repository } from './repository.js';

const MAX_BLOBS_PER_INDEX_FILE = 50_000;
const INDEX_FLUSH_INTERVAL_MS = 5 * 60_000;

export interface SaveResult {
  id: string;
  /** false when the repository already had the blob */
  added: boolean;
}

/** Blobs being compressed and encrypted at once; bounds memory (a blob is at most 8 MiB). */
const BLOBS_IN_FLIGHT = 8;

/**
 * Turns blobs into packs: deduplicates against the index, compresses and encrypts (on
 * worker threads), fills packs per blob type in the order blobs were saved, uploads full
 * packs (a few at a time) and writes index files for uploaded packs. flush() must finish
 * before anything references the blobs.
 */
export class BlobWriter {
  private readonly packers: Record<BlobType, PackBuilder> = { data: new PackBuilder(), tree: new PackBuilder() };
  /** ids written in this session whose pack is not in the index yet */
  private readonly pending = new Set<string>();
  private readonly uploads = new TaskLimiter(2);
  private readonly encoding = new Semaphore(BLOBS_IN_FLIGHT);
  private readonly encoder = sharedEncoderPool();
  /** per blob type, the last blob to go into its pack: packs fill in save order */
  private readonly packed: Record<BlobType, Promise<void>> = { data: Promise.resolve(), tree: Promise.resolve() };
  private failure: unknown;
  private unindexed = new Map<string, PackedBlob[]>();
  private unindexedBlobs = 0;
  private lastIndexWrite = Date.now();
  packsWritten = 0;
  bytesUploaded = 0;

  constructor(private readonly repo: Repository) {}

  has(id: string): boolean {
    return this.pending.has(id) || this.repo.index.has(id);
  }

  /**
   * Store a blob unless the repository has it. Returns once the blob is on its way;
   * `onStored` learns its stored size when it is packed, before flush() returns.
   */
  async save(type: BlobType, data: Buffer, onStored?: (storedBytes: number) => void): Promise<SaveResult> {
    this.throwIfFailed();
    const id = this.repo.blobId(data);
    if (this.has(id)) return { id, added: false };
    this.pending.add(id);
    const release = await this.encoding.acquire();
    const encoded = this.encoder.encode(this.repo.master.encryptionKey, data);
    encoded.catch(() => undefined);
    this.packed[type] = this.packed[type].then(async () => {
      try {
        if (this.failure !== undefined) return;
        const { stored, compressed } = await encoded;
        const packer = this.packers[type];
        packer.add({ id, type, rawLength: data.length, compressed }, stored);
        onStored?.(stored.length);
        if (packer.size >= this.repo.config.packSize) await this.finishPack(type);
      } catch (err) {
        this.failure ??= err;
      } finally {
        release();
      }
    });
    return { id, added: true };
  }

  private throwIfFailed(): void {
    if (this.failure !== undefined) throw this.failure;
  }

  private async finishPack(type: BlobType): Promise<void> {
    const packer = this.packers[type];
    if (packer.count === 0) return;
    this.packers[type] = new PackBuilder();
    const { bytes, blobs } = packer.finish(this.repo.master.encryptionKey);
    const packId = objectHash(bytes);
    await this.uploads.submit(async () => {
      await this.repo.backend.put(objectKey('data', packId), bytes);
      this.packsWritten++;
      this.bytesUploaded += bytes.length;
      this.repo.index.addPack(packId, blobs);
      for (const b of blobs) this.pending.delete(b.id);
      this.unindexed.set(packId, blobs);
      this.unindexedBlobs += blobs.length;
      if (this.unindexedBlobs >= MAX_BLOBS_PER_INDEX_FILE || Date.now() - this.lastIndexWrite > INDEX_FLUSH_INTERVAL_MS) {
        await this.writeIndex();
      }
    });
  }

  /** Index files along the way keep a long backup's uploads usable if it is interrupted. */
  private async writeIndex(): Promise<void> {
    if (this.unindexed.size === 0) return;
    const packs = this.unindexed;
    this.unindexed = new Map();
    this.unindexedBlobs = 0;
    this.lastIndexWrite = Date.now();
    await this.repo.saveObject('index', encodeIndexFile(packs));
  }

  /** Upload every partial pack and index everything written. */
  async flush(): Promise<void> {
    await Promise.all([this.packed.data, this.packed.tree]);
    this.throwIfFailed();
    await this.finishPack('data');
    await this.finishPack('tree');
    await this.uploads.drain();
    await this.writeIndex();
  }
}
