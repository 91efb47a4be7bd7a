import type { BlobWriter, SaveResult } from '../../repo/encode/blob-writer.js';
import { BATCHED_FILE_BYTES, type FileBlob, type FileEncoder } from '../../repo/encode/file-encoder.js';
import type { Chunker } from '../../repo/encode/chunker.js';
import type { Admission, FilesSink, PreviousNodes, StoredFile } from '../../sources/files/walker.js';
import { Semaphore } from '../../util/concurrency.js';
import { InterruptedError } from '../../util/errors.js';
import type { AdaptiveReader } from '../../util/adaptive-io.js';
import type { FileMark } from '../../util/file-mark.js';
import { ContentBuilder } from '../content-list.js';
import { TreeBuilder, saveTree, type TreeLoader, type TreeNode } from '../tree.js';
import type { FileContent } from '../../sources/files/entries.js';

/** files read at once on this thread: enough to hide per-file I/O latency, few enough to bound buffers (each up to max chunk + 4 MiB) */
const FILE_CONCURRENCY = 6;
/**
 * Large files handed to the encoder threads ahead of time (they queue there, holding no
 * buffers). With one slot pool for all files, a folder of large files filled every slot
 * and the main thread idled until the worker caught up, then the worker idled through a
 * folder of small files: each thread was idle a third of the backup.
 */
const QUEUED_LARGE_FILES = 64;
/**
 * Bytes of small files this thread encodes itself, in a walk with a previous snapshot,
 * before the encoder threads are started. Each thread costs 0.15-0.3 s of CPU to start:
 * a backup where a few files changed (a nightly one) spent more on starting them than on
 * its new data, beside the walk that needs both cores. A backup with more to read starts
 * them once this much is done here; a first backup at once (waiting made a first backup
 * of 97 MB a tenth slower).
 */
export const INCREMENTAL_THREADS_AFTER_BYTES = 8 * 1024 * 1024;
/** how long the walk may keep the main thread before the encoder threads' replies are let in */
const YIELD_EVERY_MS = 2;

/** Where a file is read and encoded: see RepositoryFilesSink.admit. */
type FileRoute = 'large' | 'batch' | 'here';
interface RoutedAdmission extends Admission {
  route: FileRoute;
}
/** batched files hold no slot of their own: the encoder's room bounds them */
const BATCH_ADMISSION: RoutedAdmission = Object.freeze({ route: 'batch', release: () => undefined });

export function throwIfAborted(signal?: AbortSignal): void {
  if (signal?.aborted) throw new InterruptedError('backup interrupted; nothing was committed');
}

/**
 * The repository side of a files source's walk: file content goes to the encoder threads
 * (in batches, or whole for large files) or, without them, is chunked here; folders are
 * stored as tree blobs; the previous snapshot's folders come from its trees.
 */
export class RepositoryFilesSink implements FilesSink {
  private readonly fileSlots = new Semaphore(FILE_CONCURRENCY);
  private readonly largeFileSlots = new Semaphore(QUEUED_LARGE_FILES);
  private lastYield = performance.now();
  /** bytes of files encoded on this thread */
  private bytesHere = 0;

  constructor(
    private readonly writer: BlobWriter,
    private readonly loader: TreeLoader,
    private readonly chunker: Chunker,
    private readonly encoder: FileEncoder | null,
    /** the walk's reader: one judgement of whether blocking calls still pay for stats and opens alike */
    private readonly reader: AdaptiveReader,
    private readonly signal?: AbortSignal,
    /** bytes of small files encoded here before the encoder threads start */
    private readonly startThreadsAfterBytes = 0,
  ) {}

  /** A damaged previous tree (or part of one) only costs reading the folder's files again. */
  async previousFolder(id: string): Promise<PreviousNodes | undefined> {
    try {
      const tree = await this.loader.stored(id);
      if (!('parts' in tree)) return tree.nodes;
      const { parts } = tree;
      return { parts: parts.length, part: (i) => this.loader.part(parts[i]!, id), whole: () => this.loader.joinParts(parts, id) };
    } catch {
      return undefined;
    }
  }

  has(id: string): boolean {
    return this.writer.has(id);
  }

  saveFolder(nodes: TreeNode[]): Promise<string> {
    return saveTree(this.writer, { nodes });
  }

  folderWriter(): TreeBuilder {
    return new TreeBuilder(this.writer);
  }

  /**
   * Where a file is encoded, and the slot it holds meanwhile. With encoder threads (one
   * per core), every file goes to them: in batches, or streamed when too large for one.
   * This thread only waits for room: encoding files here too starved the threads, whose
   * replies then sat behind this thread's work (each thread idled a third of the backup).
   * Waiting also for the pack writer keeps memory bounded when the backend is slower than
   * the encoders. Without threads, or until they have started, small files are done
   * here; a large file always goes to a thread, waiting in its queue while it starts: done
   * here, the whole file went through this one thread (two files of 110 MiB at a backup's
   * start: 1.6-1.8 s with both threads idle, and 12 MiB of read buffer each held here).
   */
  async admit(size: number): Promise<RoutedAdmission> {
    await this.writer.room();
    if (this.encoder && size > BATCHED_FILE_BYTES) return { route: 'large', release: await this.largeFileSlots.acquire() };
    if (this.threadsWarm()) {
      await this.encoder!.room();
      return BATCH_ADMISSION;
    }
    return { route: 'here', release: await this.fileSlots.acquire() };
  }

  /**
   * admit() when nothing needs waiting for, as is the case for most files: without a
   * promise and an async frame per file (55 MiB of a 50,000-file backup's allocations).
   */
  admitNow(size: number): RoutedAdmission | undefined {
    if (!this.writer.hasRoom()) return undefined;
    if (this.encoder && size > BATCHED_FILE_BYTES) {
      const release = this.largeFileSlots.tryAcquire();
      return release && { route: 'large', release };
    }
    if (this.threadsWarm()) return this.encoder!.hasRoom() ? BATCH_ADMISSION : undefined;
    const release = this.fileSlots.tryAcquire();
    return release && { route: 'here', release };
  }

  /** Whether small files go to the encoder threads: once they are started (see INCREMENTAL_THREADS_AFTER_BYTES) and one is ready. */
  private threadsWarm(): boolean {
    if (!this.encoder || this.bytesHere < this.startThreadsAfterBytes) return false;
    return this.encoder.warm();
  }

  /**
   * `previous`: the content the file's previous version has, whose blobs the encoder
   * threads then hash but neither compress nor encrypt. Should one be stored no more when
   * it comes back (a prune deleting its pack meanwhile), the file is read once more, every
   * blob encoded.
   */
  async storeFile(path: string, mark: FileMark, admission: Admission, stored: (storedBytes: number, length: number) => void, previous?: FileContent): Promise<StoredFile> {
    // A content list in parts (a file of thousands of blobs) is not loaded for this.
    const known = this.encoder && Array.isArray(previous) && previous.length > 0 ? previous : undefined;
    let reported = 0;
    const report = (storedBytes: number, length: number) => {
      reported += length;
      stored(storedBytes, length);
    };
    try {
      return await this.storeContent(path, mark, admission as RoutedAdmission, report, known);
    } catch (err) {
      if (!(err instanceof KnownBlobGone)) throw err;
      // What the first read added stays in its packs, unreferenced for prune to take.
      stored(0, -reported);
      return this.storeContent(path, mark, admission as RoutedAdmission, stored, undefined);
    }
  }

  private async storeContent(path: string, mark: FileMark, { route }: RoutedAdmission, stored: (storedBytes: number, length: number) => void, known: readonly string[] | undefined): Promise<StoredFile> {
    const { size } = mark;
    const content = new ContentBuilder(this.writer);
    let length = 0;
    /** a promise only when the content list stored a part of itself */
    const add = (saved: SaveResult, bytes: number): Promise<void> | undefined => {
      length += bytes;
      stored(saved.storedBytes, bytes);
      return content.add(saved.id);
    };
    let changed: boolean;
    if (route === 'large') {
      // A large file goes to a worker thread whole: read, chunk, hash, compress, encrypt.
      // Iterated by hand for the value it ends with; stopped early, it is told to stop (as for-await would).
      const blobs = this.encoder!.encode(path, mark, known);
      let next = await blobs.next();
      try {
        for (; !next.done; next = await blobs.next()) {
          throwIfAborted(this.signal);
          await add(await this.addBlob(next.value), next.value.rawLength);
        }
      } finally {
        if (!next.done) await blobs.return(false);
      }
      changed = next.value;
    } else if (route === 'batch') {
      const encoded = await this.encoder!.encodeBatched(path, mark, known);
      for (const blob of encoded.blobs) {
        throwIfAborted(this.signal);
        const storing = add(await this.addBlob(blob), blob.rawLength);
        if (storing) await storing;
      }
      changed = encoded.changed;
    } else {
      await this.letRepliesIn();
      this.bytesHere += size;
      const fh = await this.reader.open(path, size);
      try {
        for await (const chunk of this.chunker.chunkFile(fh, size)) {
          throwIfAborted(this.signal);
          await add(await this.writer.save('data', chunk, undefined, 'file'), chunk.length);
        }
        changed = fh.changedSince(mark);
      } finally {
        await fh.close();
      }
    }
    const list = content.finish();
    return { content: Array.isArray(list) ? list : await list, size: length, changed };
  }

  /** A blob the encoder made, into a pack; one it only hashed, as known, where it is still stored. */
  private async addBlob(blob: FileBlob): Promise<SaveResult> {
    if (!('known' in blob)) return this.writer.addEncoded('data', blob);
    if (!this.writer.has(blob.id)) throw new KnownBlobGone();
    return { id: blob.id, added: false, storedBytes: 0 };
  }

  /**
   * Small files done here are a chain of already-resolved promises, which can keep the
   * event loop from the encoder threads' replies for long: their files then wait for
   * acknowledgements and the threads idle. Every few milliseconds, let the replies in.
   */
  private async letRepliesIn(): Promise<void> {
    if (!this.encoder || performance.now() - this.lastYield < YIELD_EVERY_MS) return;
    await new Promise<void>((resolve) => setImmediate(resolve));
    this.lastYield = performance.now();
  }
}

/** A blob the encoder was told is stored, and only hashed, is stored no more: its file is read again. */
class KnownBlobGone extends Error {}
