import { Batcher } from '../../util/batcher.js';
import { concatOwned } from '../../util/owned-buffer.js';
import type { DecodePool } from './decode-pool.js';
import type { DecodeRequest } from './decode-jobs.js';
import type { BlobType } from '../format/pack.js';
import type { Repository } from '../repository.js';
import type { BlobLoader } from '../roles.js';
import type { PackFiles } from './pack-spool.js';

/** Blobs decoded per message to a worker, and the most stored bytes in one message. */
const BATCH_BLOBS = 256;
const BATCH_BYTES = 4 * 1024 * 1024;

/**
 * Loads blobs for a restore: a worker reads them (from a folder repository's pack files;
 * from other backends this thread reads the bytes and sends them), decrypts, decompresses
 * and verifies them, many blobs per message. Profiled on a 1 GiB restore, decoding was
 * 40% of the main thread's time. A blob comes back only once it hashes to its id, as
 * from Repository.loadBlob.
 */
export class BlobBatchLoader implements BlobLoader {
  private readonly batcher: Batcher<{ request: DecodeRequest; stored?: Buffer }, Buffer | number>;

  constructor(
    private readonly repo: Repository,
    pool: DecodePool,
    /** pack files the threads read blobs from themselves; without, or for a pack it lacks, the bytes travel with the batch */
    private readonly packFiles?: PackFiles,
  ) {
    this.batcher = new Batcher<{ request: DecodeRequest; stored?: Buffer }, Buffer | number>({ items: BATCH_BLOBS, bytes: BATCH_BYTES }, (blobs) =>
      pool.decode(
        blobs.map((b) => b.request),
        concatOwned(blobs.flatMap((b) => (b.stored ? [b.stored] : []))),
      ),
    );
  }

  blobLength(id: string): number | undefined {
    return this.repo.blobLength(id);
  }

  async loadBlob(id: string, expectedType?: BlobType): Promise<Buffer> {
    const content = await this.request(id, expectedType);
    if (typeof content === 'number') throw new Error('internal error: a loaded blob came back as written');
    return content;
  }

  async deliverBlob(id: string, to: unknown): Promise<number> {
    const delivered = await this.request(id, 'data', to);
    if (typeof delivered !== 'number') throw new Error('internal error: a delivered blob came back as content');
    return delivered;
  }

  private async request(id: string, expectedType: BlobType | undefined, deliverTo?: unknown): Promise<Buffer | number> {
    const entry = this.repo.blobEntry(id, expectedType);
    const request: DecodeRequest = { id, pack: entry.pack, compressed: entry.compressed, rawLength: entry.rawLength, length: entry.length, ...(deliverTo !== undefined && { deliverTo }) };
    // From a pack file the worker reads the blob itself; otherwise the bytes travel with the batch.
    const taken = this.packFiles?.take(entry.pack);
    const file = typeof taken === 'object' ? await taken : taken;
    if (file !== undefined) {
      try {
        return await this.batcher.add({ request: { ...request, file, offset: entry.offset } }, entry.length);
      } finally {
        this.packFiles!.release(entry.pack);
      }
    }
    const { stored } = await this.repo.loadStoredBlob(id, expectedType);
    return this.batcher.add({ request: { ...request, length: stored.length }, stored }, stored.length);
  }
}
