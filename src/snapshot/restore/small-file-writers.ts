import type { DecodeReply } from '../../repo/decode/decode-jobs.js';
import { DecodePool } from '../../repo/decode/decode-pool.js';
import type { IndexEntry } from '../../repo/master-index.js';
import { comparePlaces } from '../../repo/decode/pack-file-reader.js';
import type { Repository } from '../../repo/repository.js';
import { Batcher } from '../../util/batcher.js';
import { concatOwned } from '../../util/owned-buffer.js';
import { IntegrityError } from '../../util/errors.js';
import { WorkerPool } from '../../util/worker-pool.js';
import { BLOB_FIELDS, FILE_FIELDS, type SmallFileBatch, type SmallFileFailure } from './small-file-batch.js';
import type { TreeNode } from '../tree.js';

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

/**
 * A small file waiting for its batch, with where its first blob lies (for gathering; empty
 * files first) and, from other backends than a folder, its blobs' stored bytes.
 */
interface PendingFile {
  dest: string;
  node: TreeNode;
  entries: IndexEntry[];
  stored?: Buffer[];
  file: string;
  offset: number;
}

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
  private readonly pool: WorkerPool<DecodeReply & { failed?: SmallFileFailure[] }>;
  /** Blob decoding (a restore's larger files) on these same threads. */
  readonly decoder: DecodePool;
  private readonly inFlight = new Set<Promise<unknown>>();
  private readonly batcher: Batcher<PendingFile, true>;
  private readonly packFiles = new Map<string, string>();
  /** Only a folder repository's blobs are read by the writers; other backends' bytes are loaded here. */
  private readonly readsPacks: boolean;
  /** Files a caller should have in flight to keep the writers busy (and the batches in pack order). */
  readonly filesInFlight: number;

  constructor(
    private readonly repo: Repository,
    count: number,
    replaceExisting: boolean,
  ) {
    const workerData = { encryptionKey: repo.master.encryptionKey, idKey: repo.master.idKey, replaceExisting };
    this.pool = new WorkerPool(new URL('./small-file-writer-worker.js', import.meta.url), workerData, count, 'a restore writer thread');
    this.decoder = new DecodePool(this.pool);
    // Gathering other backends' bytes would only hold more of them in memory.
    this.readsPacks = repo.packsAreLocal;
    this.batcher = new Batcher<PendingFile, true>({ items: BATCH_FILES, bytes: BATCH_BYTES }, (files) => this.send(files), this.readsPacks ? { items: GATHER_FILES, bytes: GATHER_BYTES, order: comparePlaces } : undefined);
    this.filesInFlight = this.readsPacks ? GATHER_FILES + count * 2 * BATCH_FILES : FILES_IN_FLIGHT;
  }

  /**
   * Restore one small file (content, owner, mode, times) under `dest`; `done` gets what went
   * wrong, or nothing. A callback, not a promise: a restore hands over some 50,000 files.
   */
  write(dest: string, node: TreeNode, done: (err?: Error) => void): void {
    const settle = (result: true | Error) => done(result === true ? undefined : result);
    let pending: PendingFile;
    let bytes = 0;
    try {
      const ids = node.content ?? [];
      const entries = new Array<IndexEntry>(ids.length);
      for (let i = 0; i < ids.length; i++) {
        entries[i] = this.repo.blobEntry(ids[i]!, 'data');
        bytes += entries[i]!.length;
      }
      pending = { dest, node, entries, file: '', offset: 0 };
      if (this.readsPacks && entries.length > 0) {
        pending.file = this.packFile(entries[0]!.pack);
        pending.offset = entries[0]!.offset;
      }
    } catch (err) {
      done(err as Error);
      return;
    }
    if (this.readsPacks) {
      this.batcher.addWith(pending, bytes, settle);
      return;
    }
    // From other backends this thread loads the stored bytes, which then travel with the batch.
    Promise.all(pending.entries.map((_, i) => this.repo.loadStoredBlob(node.content![i]!, 'data').then((loaded) => loaded.stored))).then(
      (stored) => {
        pending.stored = stored;
        this.batcher.addWith(pending, bytes, settle);
      },
      (err: Error) => done(err),
    );
  }

  /** A pack's file, remembered: 50,000 small files asked for the same few paths to be joined again. */
  private packFile(pack: string): string {
    let file = this.packFiles.get(pack);
    if (file === undefined) {
      file = this.repo.packFile(pack)!;
      this.packFiles.set(pack, file);
    }
    return file;
  }

  /** One batch to the least busy writer, in columns (see SmallFileBatch); the stored bytes travel in one buffer. */
  private async send(pending: PendingFile[]): Promise<Array<true | Error>> {
    const dests: string[] = [];
    const mtimes: string[] = [];
    const files = new Float64Array(pending.length * FILE_FIELDS);
    const ids: string[] = [];
    const blobs = new Float64Array(pending.reduce((n, p) => n + p.entries.length, 0) * BLOB_FIELDS);
    const packs: string[] = [];
    const packFiles: string[] = [];
    const packIndex = new Map<string, number>();
    const stored: Buffer[] = [];
    let b = 0;
    for (let f = 0; f < pending.length; f++) {
      const { dest, node, entries, stored: loaded } = pending[f]!;
      dests.push(dest);
      mtimes.push(node.mtime);
      files[f * FILE_FIELDS] = node.mode;
      files[f * FILE_FIELDS + 1] = node.uid;
      files[f * FILE_FIELDS + 2] = node.gid;
      files[f * FILE_FIELDS + 3] = entries.length;
      for (let i = 0; i < entries.length; i++, b++) {
        const entry = entries[i]!;
        let pack = packIndex.get(entry.pack);
        if (pack === undefined) {
          pack = packs.length;
          packIndex.set(entry.pack, pack);
          packs.push(entry.pack);
          packFiles.push(this.readsPacks ? this.packFile(entry.pack) : '');
        }
        ids.push(node.content![i]!);
        blobs[b * BLOB_FIELDS] = pack;
        blobs[b * BLOB_FIELDS + 1] = entry.offset;
        // What was loaded is what the writer steps over, should a backend have given less.
        blobs[b * BLOB_FIELDS + 2] = loaded ? loaded[i]!.length : entry.length;
        blobs[b * BLOB_FIELDS + 3] = entry.rawLength;
        blobs[b * BLOB_FIELDS + 4] = entry.compressed ? 1 : 0;
      }
      if (loaded) stored.push(...loaded);
    }
    const bytes = concatOwned(stored);
    const batch: SmallFileBatch = { dests, mtimes, files, ids, blobs, packs, packFiles, bytes };
    const sent = this.pool.request(batch, [bytes.buffer as ArrayBuffer]);
    this.inFlight.add(sent);
    try {
      const { failed = [] } = await sent;
      const results = new Array<true | Error>(pending.length).fill(true);
      for (const [f, message, code, damaged] of failed) results[f] = damaged ? new IntegrityError(message) : Object.assign(new Error(message), { code });
      return results;
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
