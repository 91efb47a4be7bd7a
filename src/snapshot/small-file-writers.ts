import { comparePlaces, type PackPlace } from '../repo/pack-file-reader.js';
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
 * From a folder repository, files are gathered up to these limits and sent in the order
 * their blobs lie in the packs. A backup packs many folders at once, so the blobs of one
 * folder's files lie far apart, between other folders' blobs: 64 files in the order of a
 * restore spanned 27x their own bytes in a pack. Gathered and sorted, a writer reads a
 * batch's blobs in a few large reads instead of one small read each (see docs/performance.md).
 */
const GATHER_FILES = 4096;
const GATHER_BYTES = 32 * 1024 * 1024;

/** Small files in flight when stored bytes travel with them (other backends than a folder). */
const FILES_IN_FLIGHT = 128;

/** Where a file's first blob lies, for gathering; empty files come first. */
type BlobPlace = Pick<PackPlace, 'file' | 'offset'>;
const NO_BLOB: BlobPlace = { file: '', offset: 0 };

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
  private readonly batcher: Batcher<{ job: SmallFileJob; stored: Buffer[]; at: BlobPlace }, SmallFileResult>;
  private readonly packFiles = new Map<string, string>();
  /** Files a caller should have in flight to keep the writers busy (and the batches in pack order). */
  readonly filesInFlight: number;

  constructor(
    private readonly repo: Repository,
    count: number,
    replaceExisting: boolean,
  ) {
    const workerData = { encryptionKey: repo.master.encryptionKey, idKey: repo.master.idKey, replaceExisting };
    this.pool = new WorkerPool(new URL('./small-file-writer-worker.js', import.meta.url), workerData, count, 'a restore writer thread');
    // Only a folder repository's blobs are read by the writers; other backends' bytes were
    // loaded here already, and gathering them would only hold more of them in memory.
    const readsPacks = repo.packsAreLocal;
    this.batcher = new Batcher({ items: BATCH_FILES, bytes: BATCH_BYTES }, (files) => this.send(files), readsPacks ? { items: GATHER_FILES, bytes: GATHER_BYTES, order: (a, b) => comparePlaces(a.at, b.at) } : undefined);
    this.filesInFlight = readsPacks ? GATHER_FILES + count * 2 * BATCH_FILES : FILES_IN_FLIGHT;
  }

  /** Restore one small file (content, owner, mode, times) under `dest`; throws what went wrong. */
  async write(dest: string, node: TreeNode): Promise<void> {
    const blobs: SmallFileJob['blobs'] = [];
    const stored: Buffer[] = [];
    let at = NO_BLOB;
    for (const id of node.content ?? []) {
      const entry = this.repo.blobEntry(id, 'data');
      // From a folder repository the writer reads the pack itself; otherwise the bytes travel with the batch.
      const file = this.packFile(entry.pack);
      if (file !== undefined) {
        if (at === NO_BLOB) at = { file, offset: entry.offset };
        blobs.push({ id, pack: entry.pack, compressed: entry.compressed, rawLength: entry.rawLength, length: entry.length, file, offset: entry.offset });
        continue;
      }
      const loaded = await this.repo.loadStoredBlob(id, 'data');
      stored.push(loaded.stored);
      blobs.push({ id, pack: entry.pack, compressed: entry.compressed, rawLength: entry.rawLength, length: loaded.stored.length });
    }
    const job: SmallFileJob = { dest, meta: { type: node.type, mode: node.mode, uid: node.uid, gid: node.gid, mtime: node.mtime }, blobs };
    const result = await this.batcher.add({ job, stored, at }, blobs.reduce((n, b) => n + b.length, 0));
    if ('ok' in result) return;
    throw result.damaged ? new IntegrityError(result.message) : Object.assign(new Error(result.message), { code: result.code });
  }

  /** A pack's file, remembered: 50,000 small files asked for the same few paths to be joined again. */
  private packFile(pack: string): string | undefined {
    if (!this.repo.packsAreLocal) return undefined;
    let file = this.packFiles.get(pack);
    if (file === undefined) {
      file = this.repo.packFile(pack)!;
      this.packFiles.set(pack, file);
    }
    return file;
  }

  /** One batch to the least busy writer: the files' stored blobs travel in one buffer. */
  private async send(files: Array<{ job: SmallFileJob; stored: Buffer[] }>): Promise<SmallFileResult[]> {
    const stored = files.flatMap((f) => f.stored);
    const buffer = concatOwned(
      stored,
      stored.reduce((n, b) => n + b.length, 0),
    );
    const sent = this.pool.request({ files: files.map((f) => f.job), bytes: buffer }, [buffer.buffer as ArrayBuffer]);
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
