import type { Repository } from '../repo/repository.js';
import { Batcher } from '../util/batcher.js';
import { concatOwned } from '../util/owned-buffer.js';
import { IntegrityError } from '../util/errors.js';
import { WorkerPool } from '../util/worker-pool.js';
import type { SmallFileJob, SmallFileResult } from './small-file-writer-worker.js';
import type { TreeNode } from './tree.js';

/** Small files sent to a writer in one message, and the most stored bytes in one message. */
const BATCH_FILES = 64;
const BATCH_BYTES = 4 * 1024 * 1024;

/**
 * Restores small files on worker threads. A writer gets a batch of files with where their
 * stored blobs are (a folder repository's pack files; from other backends this thread
 * sends the bytes), decrypts, decompresses and verifies every blob, and only then creates
 * the file with blocking calls. Decoding leaves the main thread, and several files are
 * created at once: on this machine's disk, when the kernel was slow to allocate inodes
 * (see docs/performance.md), one thread creating 47,000 files waited 12 s of a 17 s
 * restore, where restic (many goroutines) took 8 s.
 */
export class SmallFileWriters {
  private readonly pool: WorkerPool<{ n: number; results: SmallFileResult[] }>;
  private readonly inFlight = new Set<Promise<unknown>>();
  private readonly batcher = new Batcher<{ job: SmallFileJob; stored: Buffer[] }, SmallFileResult>({ items: BATCH_FILES, bytes: BATCH_BYTES }, (files, bytes) =>
    this.send(files, bytes),
  );

  constructor(
    private readonly repo: Repository,
    count: number,
    private readonly replaceExisting: boolean,
  ) {
    const keys = { encryptionKey: repo.master.encryptionKey, idKey: repo.master.idKey };
    this.pool = new WorkerPool(new URL('./small-file-writer-worker.js', import.meta.url), keys, count, 'a restore writer thread');
  }

  /** Restore one small file (content, owner, mode, times) under `dest`; throws what went wrong. */
  async write(dest: string, node: TreeNode): Promise<void> {
    const blobs: SmallFileJob['blobs'] = [];
    const stored: Buffer[] = [];
    for (const id of node.content ?? []) {
      const entry = this.repo.blobEntry(id, 'data');
      const blob = { id, pack: entry.pack, compressed: entry.compressed, rawLength: entry.rawLength, length: entry.length };
      // From a folder repository the writer reads the pack itself; otherwise the bytes travel with the batch.
      const file = this.repo.packFile(entry.pack);
      if (file !== undefined) {
        blobs.push({ ...blob, file, offset: entry.offset });
        continue;
      }
      const loaded = await this.repo.loadStoredBlob(id, 'data');
      stored.push(loaded.stored);
      blobs.push({ ...blob, length: loaded.stored.length });
    }
    const job: SmallFileJob = { dest, meta: { type: node.type, mode: node.mode, uid: node.uid, gid: node.gid, mtime: node.mtime }, blobs };
    const result = await this.batcher.add({ job, stored }, stored.reduce((n, b) => n + b.length, 0));
    if ('ok' in result) return;
    throw result.damaged ? new IntegrityError(result.message) : Object.assign(new Error(result.message), { code: result.code });
  }

  /** One batch to the least busy writer: the files' stored blobs travel in one buffer. */
  private async send(files: Array<{ job: SmallFileJob; stored: Buffer[] }>, bytes: number): Promise<SmallFileResult[]> {
    const buffer = concatOwned(
      files.flatMap((f) => f.stored),
      bytes,
    );
    const sent = this.pool.request({ files: files.map((f) => f.job), bytes: buffer, replaceExisting: this.replaceExisting }, [buffer.buffer as ArrayBuffer]);
    this.inFlight.add(sent);
    try {
      return (await sent).results;
    } finally {
      this.inFlight.delete(sent);
    }
  }

  /**
   * Batches already sent are finished first, even when the restore stopped early
   * (interrupted, or failed): a writer stopped in the middle of a file would leave part
   * of it under its name.
   */
  async close(): Promise<void> {
    while (this.inFlight.size > 0) await Promise.allSettled([...this.inFlight]);
    await this.pool.close();
  }
}
