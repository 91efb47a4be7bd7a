import { Batcher } from '../../util/batcher.js';
import { concatOwned } from '../../util/owned-buffer.js';
import type { DecodePool } from './decode-pool.js';
import type { DecodeRequest } from './decode-jobs.js';
import type { BlobType } from '../format/pack.js';
import type { Repository } from '../repository.js';

/** Blobs decoded per message to a worker, and the most stored bytes in one message. */
const BATCH_BLOBS = 256;
const BATCH_BYTES = 4 * 1024 * 1024;

/** Whatever loads verified blobs: the repository itself, or a BlobBatchLoader in front of it. */
export interface BlobLoader {
  loadBlob(id: string, expectedType?: BlobType): Promise<Buffer>;
  blobLength(id: string): number | undefined;
  /**
   * Where present: verify a data blob and write its content into an open file at
   * `position` without it coming back to this thread; resolves with the bytes written.
   * `directFd`, the same file opened for direct writes, takes its whole blocks (see direct-io.ts).
   */
  writeBlob?(id: string, fd: number, position: number, directFd?: number): Promise<number>;
}

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

  async writeBlob(id: string, fd: number, position: number, directFd?: number): Promise<number> {
    const written = await this.request(id, 'data', { fd, position, directFd });
    if (typeof written !== 'number') throw new Error('internal error: a written blob came back as content');
    return written;
  }

  private async request(id: string, expectedType: BlobType | undefined, into?: DecodeRequest['into']): Promise<Buffer | number> {
    const entry = this.repo.blobEntry(id, expectedType);
    const request: DecodeRequest = { id, pack: entry.pack, compressed: entry.compressed, rawLength: entry.rawLength, length: entry.length, ...(into && { into }) };
    // From a folder repository the worker reads the pack itself; otherwise the bytes travel with the batch.
    const file = this.repo.packFile(entry.pack);
    if (file !== undefined) return this.batcher.add({ request: { ...request, file, offset: entry.offset } }, entry.length);
    const { stored } = await this.repo.loadStoredBlob(id, expectedType);
    return this.batcher.add({ request: { ...request, length: stored.length }, stored }, stored.length);
  }
}
