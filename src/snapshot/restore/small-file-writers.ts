import type { DecodeReply } from '../../repo/decode/decode-jobs.js';
import { DecodePool } from '../../repo/decode/decode-pool.js';
import type { IndexEntry } from '../../repo/master-index.js';
import { comparePlaces } from '../../repo/decode/pack-file-reader.js';
import type { Repository } from '../../repo/repository.js';
import type { PackFiles } from '../../repo/decode/pack-spool.js';
import { Batcher } from '../../util/batcher.js';
import { concatOwned } from '../../util/owned-buffer.js';
import { IntegrityError } from '../../util/errors.js';
import { WorkerPool } from '../../util/worker-pool.js';
import { BLOB_FIELDS, FILE_FIELDS, type SmallFileBatch, type SmallFileFailure, type WriterSetup } from './small-file-batch.js';
import type { TreeNode } from '../tree.js';
import { smallFileContent } from '../content-list.js';

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
/**
 * The first gathering holds this share of those limits, each next one twice as much: the
 * writers start once 256 files are found, not 4,096 (a restore of 40,000 files from a
 * folder: both writer threads idled 0.1-0.5 s while the walk gathered the first 4,096).
 */
const FIRST_GATHER = 1 / 16;

/** Small files in flight when stored bytes travel with them (other backends than a folder). */
const FILES_IN_FLIGHT = 128;

/**
 * A small file waiting for its batch: per blob, the pack file a writer reads it from, or
 * '' where its stored bytes (loaded here) travel with the batch; for gathering, where its
 * first blob lies (empty files first).
 */
interface PendingFile {
  dest: string;
  node: TreeNode;
  ids: readonly string[];
  entries: IndexEntry[];
  files: string[];
  stored?: Array<Buffer | undefined>;
  file: string;
  offset: number;
  /** a blob's file was taken while its pack was still being brought over (see PackFiles.settled) */
  early: boolean;
}

/** Threads a restore writes small files and decodes blobs on; see SmallFileWriters. */
export type WriterThreads = WorkerPool<DecodeReply & { failed?: SmallFileFailure[] }>;

/**
 * Writer threads, started before the repository is open: each spends a tenth of a second
 * of a core loading its modules, which a restore through rclone otherwise spent beside its
 * first walk, on a machine with two cores, where the key derivation leaves one idle.
 * Closed by the SmallFileWriters given them, or by whoever started them.
 */
export function startWriterThreads(count: number): WriterThreads {
  return new WorkerPool(new URL('./small-file-writer-worker.js', import.meta.url), undefined, count, 'a restore writer thread');
}

/**
 * Restores small files on worker threads. A writer gets a batch of files with where their
 * stored blobs are (pack files: a folder repository's, or packs brought over for the
 * restore; where there is none this thread sends the bytes), decrypts, decompresses and
 * verifies every blob, and only then creates the file with blocking calls. Decoding
 * leaves the main thread, and several files are created at once: on this machine's disk,
 * when the kernel was slow to allocate inodes (see docs/performance.md), one thread
 * creating 47,000 files waited 12 s of a 17 s restore, where restic (many goroutines) took 8 s.
 */
export class SmallFileWriters {
  private readonly pool: WriterThreads;
  private setup: WriterSetup;
  /** Blob decoding (a restore's larger files) on these same threads. */
  readonly decoder: DecodePool;
  private readonly inFlight = new Set<Promise<unknown>>();
  private batcher: Batcher<PendingFile, true> | undefined;
  private packFiles: PackFiles | undefined;
  private closed = false;
  /** Files a caller should have in flight to keep the writers busy (and the batches in pack order). */
  filesInFlight = FILES_IN_FLIGHT;

  /**
   * `count` threads: those of `threads` (started earlier, see startWriterThreads), and more
   * started now; each loads its modules meanwhile. Files come after start().
   */
  constructor(
    private readonly repo: Repository,
    private readonly count: number,
    replaceExisting: boolean,
    threads?: WriterThreads,
  ) {
    this.pool = threads ?? startWriterThreads(count);
    this.pool.grow(count);
    this.setup = { setup: true, encryptionKey: repo.master.encryptionKey, idKey: repo.master.idKey, replaceExisting, directWrites: true };
    this.pool.setup(this.setup);
    this.decoder = new DecodePool(this.pool);
  }

  /**
   * Where the writers read stored blobs from (see Repository.packFiles; without, they get
   * the bytes), and whether they write past the page cache (SmallFileCreation.directWrites).
   */
  start(packFiles: PackFiles | undefined, directWrites: boolean): void {
    if (directWrites !== this.setup.directWrites) this.pool.setup((this.setup = { ...this.setup, directWrites }));
    this.packFiles = packFiles;
    // Gathering bytes loaded here would only hold more of them in memory.
    this.batcher = new Batcher<PendingFile, true>({ items: BATCH_FILES, bytes: BATCH_BYTES }, (files) => this.send(files), packFiles ? { items: GATHER_FILES, bytes: GATHER_BYTES, order: comparePlaces, first: FIRST_GATHER } : undefined);
    this.filesInFlight = packFiles ? GATHER_FILES + this.count * 2 * BATCH_FILES : FILES_IN_FLIGHT;
  }

  /**
   * Restore one small file (content, owner, mode, times) under `dest`; `done` gets what went
   * wrong, or nothing. A callback, not a promise: a restore hands over some 50,000 files.
   */
  write(dest: string, node: TreeNode, done: (err?: Error) => void): void {
    let pending: PendingFile;
    let bytes = 0;
    try {
      const ids = smallFileContent(node);
      const entries = new Array<IndexEntry>(ids.length);
      for (let i = 0; i < ids.length; i++) {
        entries[i] = this.repo.blobEntry(ids[i]!, 'data');
        bytes += entries[i]!.length;
      }
      pending = { dest, node, ids, entries, files: new Array<string>(ids.length).fill(''), file: '', offset: 0, early: false };
    } catch (err) {
      done(err as Error);
      return;
    }
    // Each blob's pack file: at once where it is there, else once the blob's bytes are
    // (a writer starts on a pack's first files while the rest of it comes over).
    let waits: Array<Promise<void>> | undefined;
    const packFiles = this.packFiles;
    if (packFiles) {
      const taken = (i: number, file: string | undefined) => {
        pending.files[i] = file ?? '';
        if (file !== undefined && packFiles.settled?.(pending.entries[i]!.pack) === false) pending.early = true;
      };
      for (let i = 0; i < pending.entries.length; i++) {
        const entry = pending.entries[i]!;
        const file = packFiles.take(entry.pack, entry.offset + entry.length);
        if (typeof file === 'object') (waits ??= []).push(file.then((f) => taken(i, f)));
        else taken(i, file);
      }
    }
    if (waits) void Promise.all(waits).then(() => this.gather(pending, bytes, done));
    else this.gather(pending, bytes, done);
  }

  /** Into the batcher, once the stored bytes of blobs no pack file holds are loaded here. */
  private gather(pending: PendingFile, bytes: number, done: (err?: Error) => void): void {
    const settle = (result: true | Error) => done(result === true ? undefined : result);
    if (pending.entries.length > 0) {
      pending.file = pending.files[0]!;
      pending.offset = pending.entries[0]!.offset;
    }
    if (!pending.files.includes('')) {
      this.batcher!.addWith(pending, bytes, settle);
      return;
    }
    this.storedWithoutFiles(pending).then(
      (stored) => {
        pending.stored = stored;
        this.batcher!.addWith(pending, bytes, settle);
      },
      (err: Error) => {
        this.releaseFiles([pending]);
        done(err);
      },
    );
  }

  /** The stored bytes of the file's blobs that have no pack file to be read from ('' in `files`), loaded through the repository. */
  private storedWithoutFiles(pending: PendingFile): Promise<Array<Buffer | undefined>> {
    return Promise.all(pending.files.map(async (file, i) => (file === '' ? (await this.repo.loadStoredBlob(pending.ids[i]!, 'data')).stored : undefined)));
  }

  private releaseFiles(pending: readonly PendingFile[]): void {
    for (const p of pending) for (let i = 0; i < p.entries.length; i++) if (p.files[i] !== '') this.packFiles!.release(p.entries[i]!.pack);
  }

  /**
   * One batch to a writer. A file that failed with a blob read from a pack still being
   * brought over is written again once its packs have settled: the bytes it read may not
   * have been the pack's yet. What fails then is what the restore reports.
   */
  private async send(pending: PendingFile[]): Promise<Array<true | Error>> {
    const whole = (async () => {
      try {
        const results = await this.sendOnce(pending);
        const again = pending.flatMap((p, f) => (results[f] !== true && p.early ? [f] : []));
        // Taken again before the first takes are released: a pack read as often as planned would go.
        await Promise.all(again.map(async (f) => (results[f] = await this.again(pending[f]!))));
        return results;
      } finally {
        if (this.packFiles) this.releaseFiles(pending);
      }
    })();
    this.inFlight.add(whole);
    try {
      return await whole;
    } finally {
      this.inFlight.delete(whole);
    }
  }

  /** A file written again, its blobs read from settled packs or through the repository. */
  private async again(first: PendingFile): Promise<true | Error> {
    const files = await Promise.all(first.entries.map(async (entry) => (await this.packFiles!.takeSettled?.(entry.pack)) ?? ''));
    const pending: PendingFile = { ...first, files, stored: undefined, early: false };
    try {
      if (files.includes('')) pending.stored = await this.storedWithoutFiles(pending);
      return (await this.sendOnce([pending]))[0]!;
    } catch (err) {
      return err as Error;
    } finally {
      this.releaseFiles([pending]);
    }
  }

  /** One batch to the least busy writer, in columns (see SmallFileBatch); the stored bytes travel in one buffer. */
  private async sendOnce(pending: PendingFile[]): Promise<Array<true | Error>> {
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
      const { dest, node, ids: fileIds, entries, files: blobFiles, stored: loaded } = pending[f]!;
      dests.push(dest);
      mtimes.push(node.mtime);
      files[f * FILE_FIELDS] = node.mode;
      files[f * FILE_FIELDS + 1] = node.uid;
      files[f * FILE_FIELDS + 2] = node.gid;
      files[f * FILE_FIELDS + 3] = entries.length;
      for (let i = 0; i < entries.length; i++, b++) {
        const entry = entries[i]!;
        const file = blobFiles[i]!;
        // One pack can be read from its file for one blob and travel as bytes for another.
        const key = file === '' ? `\0${entry.pack}` : file;
        let pack = packIndex.get(key);
        if (pack === undefined) {
          pack = packs.length;
          packIndex.set(key, pack);
          packs.push(entry.pack);
          packFiles.push(file);
        }
        ids.push(fileIds[i]!);
        const bytes = loaded?.[i];
        if (bytes) stored.push(bytes);
        blobs[b * BLOB_FIELDS] = pack;
        blobs[b * BLOB_FIELDS + 1] = entry.offset;
        // What was loaded is what the writer steps over, should a backend have given less.
        blobs[b * BLOB_FIELDS + 2] = bytes ? bytes.length : entry.length;
        blobs[b * BLOB_FIELDS + 3] = entry.rawLength;
        blobs[b * BLOB_FIELDS + 4] = entry.compressed ? 1 : 0;
      }
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
    if (this.closed) return;
    this.closed = true;
    await this.pool.close();
  }
}
