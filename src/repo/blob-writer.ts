import { Condition, TaskLimiter } from '../util/concurrency.js';
import { compressIfSmaller } from './compression.js';
import type { EncodedBlob } from './file-encoder.js';
import { seal } from './crypto.js';
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
  /** bytes stored for it (0 when deduplicated) */
  storedBytes: number;
}

/**
 * Turns blobs into packs: deduplicates against the index, compresses, encrypts, fills
 * packs per blob type, uploads full packs (a few at a time) and writes index files for
 * uploaded packs. flush() must finish before anything references the blobs.
 */
export class BlobWriter {
  private readonly packers: Record<BlobType, PackBuilder> = { data: new PackBuilder(), tree: new PackBuilder() };
  /** ids written in this session whose pack is not in the index yet */
  private readonly pending = new Set<string>();
  private readonly uploads = new TaskLimiter(2);
  private unindexed = new Map<string, PackedBlob[]>();
  private unindexedBlobs = 0;
  private lastIndexWrite = Date.now();
  packsWritten = 0;
  bytesUploaded = 0;

  constructor(private readonly repo: Repository) {}

  has(id: string): boolean {
    return this.pending.has(id) || this.repo.index.has(id);
  }

  async save(type: BlobType, data: Buffer, knownId?: string): Promise<SaveResult> {
    const id = knownId ?? this.repo.blobId(data);
    if (this.has(id)) return { id, added: false, storedBytes: 0 };
    this.pending.add(id);
    const compressed = compressIfSmaller(data);
    const stored = seal(this.repo.master.encryptionKey, compressed ?? data);
    const packer = this.packers[type];
    packer.add(id, type, data.length, compressed !== null, stored);
    if (packer.size >= this.repo.config.packSize) await this.finishPack(type);
    return { id, added: true, storedBytes: stored.length };
  }

  /** Store a blob a FileEncoder already compressed and encrypted; a duplicate is dropped. */
  async addEncoded(type: BlobType, blob: EncodedBlob): Promise<SaveResult> {
    if (this.has(blob.id)) return { id: blob.id, added: false, storedBytes: 0 };
    this.pending.add(blob.id);
    const packer = this.packers[type];
    packer.add(blob.id, type, blob.rawLength, blob.compressed, blob.stored);
    if (packer.size >= this.repo.config.packSize) await this.finishPack(type);
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
    if (packer.count === 0) return;
    this.packers[type] = new PackBuilder();
    const { id: packId, parts, blobs } = packer.finish(this.repo.master.encryptionKey);
    this.packsWaiting++;
    try {
      await this.uploads.submit(() => this.upload(packId, parts, blobs));
    } finally {
      this.packsWaiting--;
      this.noPackWaiting.changed();
    }
  }

  private async upload(packId: string, parts: Buffer[], blobs: PackedBlob[]): Promise<void> {
    const { backend } = this.repo;
    const key = objectKey('data', packId);
    if (backend.putParts) await backend.putParts(key, parts);
    else await backend.put(key, Buffer.concat(parts));
    this.packsWritten++;
    this.bytesUploaded += parts.reduce((n, p) => n + p.length, 0);
    this.repo.index.addPack(packId, blobs);
    for (const b of blobs) this.pending.delete(b.id);
    this.unindexed.set(packId, blobs);
    this.unindexedBlobs += blobs.length;
    if (this.unindexedBlobs >= MAX_BLOBS_PER_INDEX_FILE || Date.now() - this.lastIndexWrite > INDEX_FLUSH_INTERVAL_MS) {
      await this.writeIndex();
    }
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
    await this.finishPack('data');
    await this.finishPack('tree');
    await this.uploads.drain();
    await this.writeIndex();
  }
}
