import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import type { ChunkerParams } from './chunker.js';
import { Batcher } from '../../util/batcher.js';
import { Condition } from '../../util/concurrency.js';
import { ownedBuffer } from '../../util/owned-buffer.js';
import { StackvaultError } from '../../util/errors.js';
import { GarbageHint } from '../../util/garbage-hint.js';
import type { FileMark } from '../../util/file-mark.js';
import type { MasterKey } from '../format/crypto.js';

/**
 * A file to read and encode: where, and what the walk saw of it (see util/file-mark.ts).
 * `known`: blobs the repository holds (the file's previous version's), which the thread
 * hashes but neither compresses nor encrypts: a large file with a few bytes appended is
 * mostly blobs stored before.
 */
export interface FileToEncode extends FileMark {
  path: string;
  known?: readonly string[];
}

/** A file's blobs; `changed`: the file differs from what the walk saw of it (see util/file-mark.ts). */
export interface EncodedFile {
  blobs: FileBlob[];
  changed: boolean;
}

/** A blob of a file: encoded, or one of the blobs the caller named as known, not encoded. */
export type FileBlob = EncodedBlob | KnownBlob;

/** A blob found among the ones named known: only its id and length. Stored elsewhere, or read again if it is not. */
export interface KnownBlob {
  id: string;
  rawLength: number;
  known: true;
}

/** A blob as the file encoder produced it, ready for a pack. */
export interface EncodedBlob {
  id: string;
  rawLength: number;
  compressed: boolean;
  stored: Buffer;
}

/** One small file of a batch, as the worker returns it: its blobs' places in the batch's buffer, or its error. */
export type BatchResult =
  /** `changed`: the file changed while it was read (see file-mark.ts) */
  | { blobs: Array<{ id: string; rawLength: number; compressed: boolean; offset: number; length: number; known?: true }>; changed?: true }
  | { error: { message: string; code?: string; syscall?: string; path?: string } };

/**
 * Files sent to a worker in one message, and the most bytes of them. Each file's objects
 * on this thread (its walk's frames, its node, its promise) live until its batch comes
 * back: with batches of 128 files and 4 MiB, three in flight per thread, they outlived two
 * young collections and went to the old generation, which grew to twice what was live
 * before a full collection. Batches a quarter that size come back sooner: full backups of
 * the real tree peaked at 237-255 MiB against 249-288, in the same time (docs/performance.md,
 * twenty-third session).
 */
const BATCH_FILES = 32;
const BATCH_BYTES = 1024 * 1024;
/** Files up to this size go in batches; larger ones stream through a worker with acknowledgements, bounding memory. */
export const BATCHED_FILE_BYTES = 8 * 1024 * 1024;
/** measured on the 1 GiB bench backup: peak RSS 490 MiB with the default, 445 MiB with this, no slower */
const WORKER_YOUNG_GENERATION_MB = 4;
/** batches per worker sent and not yet answered; one more may be filling */
const BATCHES_IN_FLIGHT = 3;
/**
 * What the threads send is copied into packs and dropped at once: collected young every
 * 32 MiB, it never piles up (see GarbageHint). This thread's young generation holds the
 * walk's objects too, so not more often.
 */
const received = new GarbageHint(32 * 1024 * 1024);

type Reply =
  | { type: 'blob'; job: number; id: string; rawLength: number; compressed: boolean; stored: Uint8Array }
  | { type: 'known'; job: number; id: string; rawLength: number }
  | { type: 'batch'; job: number; results: BatchResult[]; bytes: Uint8Array }
  | { type: 'done'; job: number; changed: boolean }
  | { type: 'error'; job: number; message: string; code?: string; syscall?: string; path?: string; workerDied?: boolean };

interface Job {
  queue: Array<Reply>;
  wake?: () => void;
}

interface WorkerSlot {
  worker: Worker;
  jobs: Map<number, Job>;
  died?: string;
  /** the thread has loaded its modules and takes work without delay */
  ready?: boolean;
}

/**
 * Files are read, chunked, hashed, compressed and encrypted on worker threads, one per
 * core, so a backup uses every core: the main thread keeps the walk, the index and the
 * packs, and encodes small files itself only while the threads are still starting.
 * Duplicates are found once their blob arrives, so a deduplicated chunk costs its
 * compression, except for the blobs the caller names as known (a changed file's previous
 * version's): unchanged files are not read at all, and a changed one is mostly those.
 */
export class FileEncoder {
  private readonly workers: WorkerSlot[] = [];
  private nextJob = 0;

  private constructor(
    private readonly master: MasterKey,
    private readonly params: ChunkerParams,
    private readonly size: number,
  ) {}

  /**
   * An encoder for one backup, or null on one core, where the main thread is all there
   * is. Its workers start with the first file to encode and end with close(). One per
   * core, not one fewer: the main thread's share (walk, index, packs) is small, and with
   * one worker each thread idled a quarter of the backup waiting for the other.
   */
  static create(master: MasterKey, params: ChunkerParams): FileEncoder | null {
    const cores = availableParallelism();
    return cores < 2 ? null : new FileEncoder(master, params, cores);
  }

  private start(): void {
    const { master, params } = this;
    for (let i = 0; i < this.size; i++) {
      const worker = new Worker(new URL('./file-encoder-worker.js', import.meta.url), {
        workerData: { seed: master.chunkerSeed, params, idKey: master.idKey, key: master.encryptionKey },
        // Its JS objects are few and short-lived (the data lives in buffers outside the heap):
        // a small young generation keeps a thread per core from adding tens of MiB each.
        resourceLimits: { maxYoungGenerationSizeMb: WORKER_YOUNG_GENERATION_MB },
      });
      const slot: WorkerSlot = { worker, jobs: new Map<number, Job>() };
      worker.on('message', (reply: Reply | { type: 'ready' }) => {
        if (reply.type === 'ready') {
          slot.ready = true;
          return;
        }
        const job = slot.jobs.get(reply.job);
        if (!job) return;
        job.queue.push(reply);
        job.wake?.();
      });
      // A worker that dies (a bug, out of memory) ends the backup: it is not the file's fault.
      const died = (why: string) => {
        slot.died ??= why;
        for (const [n, job] of slot.jobs) {
          job.queue.push({ type: 'error', job: n, message: `the file encoder thread stopped: ${why}`, workerDied: true });
          job.wake?.();
        }
      };
      worker.on('error', (err) => died(err.message));
      worker.on('exit', (code) => {
        if (!this.closing) died(`it exited with code ${code}`);
      });
      worker.unref();
      this.workers.push(slot);
    }
  }

  private closing = false;
  private readonly batcher = new Batcher<FileToEncode, EncodedFile>({ items: BATCH_FILES, bytes: BATCH_BYTES }, (files) => this.sendBatch(files));
  private batchesInFlight = 0;

  /**
   * Starts the threads if they are not running yet, and says whether one is ready. A
   * thread takes about 0.1 s to load its modules; files handed to it meanwhile would
   * wait, and with them the folders that hold them (a 1%-changed backup idled 0.15 s).
   * Until then the caller encodes files itself. A backup that finds nothing to read
   * never starts them.
   */
  warm(): boolean {
    if (this.workers.length === 0) this.start();
    return this.workers.some((w) => w.ready && !w.died);
  }

  private readonly batchRoom = new Condition(() => this.batchesInFlight < BATCHES_IN_FLIGHT * this.size);

  /**
   * Resolves once the threads have room for another batch (a few waiting each): a walk
   * that waits here keeps them fed without piling up files they cannot take yet.
   */
  room(): Promise<void> {
    return this.batchRoom.wait();
  }

  /** Whether room() would resolve at once. */
  hasRoom(): boolean {
    return this.batchRoom.met;
  }

  /** A file's blobs, encoded on a worker along with other files; those in `known` only hashed. */
  encodeBatched(path: string, mark: FileMark, known?: readonly string[]): Promise<EncodedFile> {
    return this.batcher.add({ path, ...mark, ...(known && { known }) }, mark.size);
  }

  private async sendBatch(files: FileToEncode[]): Promise<Array<EncodedFile | Error>> {
    this.batchesInFlight++;
    let job: ReturnType<FileEncoder['openJob']> | undefined;
    try {
      job = this.openJob();
      job.slot.worker.postMessage({ type: 'batch', job: job.n, files });
      const reply = await job.next();
      if (reply.type === 'error') {
        const error = reply.workerDied ? new StackvaultError(reply.message) : new Error(reply.message);
        return files.map(() => error);
      }
      if (reply.type !== 'batch') throw new Error(`file encoder: unexpected reply ${reply.type} to a batch`);
      const bytes = Buffer.from(reply.bytes.buffer, reply.bytes.byteOffset, reply.bytes.byteLength);
      received.dropping(bytes.length);
      return reply.results.map((result) =>
        'error' in result
          ? Object.assign(new Error(result.error.message), result.error)
          : {
              blobs: result.blobs.map((b): FileBlob => (b.known ? { id: b.id, rawLength: b.rawLength, known: true } : { id: b.id, rawLength: b.rawLength, compressed: b.compressed, stored: bytes.subarray(b.offset, b.offset + b.length) })),
              changed: result.changed === true,
            },
      );
    } finally {
      this.batchesInFlight--;
      job?.close();
      this.batchRoom.changed();
    }
  }

  async close(): Promise<void> {
    this.closing = true;
    await Promise.all(this.workers.splice(0).map((w) => w.worker.terminate()));
  }

  /** A job on the least busy worker: post its request, then take its replies in order, then close it. */
  private openJob(): { slot: WorkerSlot; n: number; next: () => Promise<Reply>; close: () => void } {
    if (this.workers.length === 0) this.start();
    const slot = this.workers.reduce((a, b) => (b.jobs.size < a.jobs.size ? b : a));
    if (slot.died) throw new StackvaultError(`the file encoder thread stopped: ${slot.died}`);
    const n = this.nextJob++;
    const job: Job = { queue: [] };
    slot.jobs.set(n, job);
    if (slot.jobs.size === 1) slot.worker.ref();
    return {
      slot,
      n,
      next: async () => {
        if (job.queue.length === 0) await new Promise<void>((resolve) => (job.wake = resolve));
        job.wake = undefined;
        return job.queue.shift()!;
      },
      close: () => {
        slot.jobs.delete(n);
        if (slot.jobs.size === 0) slot.worker.unref();
      },
    };
  }

  /**
   * Compress and encrypt one chunk of a stream (a database dump) on a worker; the caller
   * has hashed it and found it new. The chunk's memory is handed over: do not use it after.
   */
  async encodeChunk(id: string, data: Buffer): Promise<EncodedBlob> {
    const own = ownedBuffer(data);
    const { slot, n, next, close } = this.openJob();
    try {
      slot.worker.postMessage({ type: 'chunk', job: n, id, data: own }, [own.buffer as ArrayBuffer]);
      const reply = await next();
      if (reply.type === 'error') throw new StackvaultError(`encoding a chunk failed: ${reply.message}`);
      if (reply.type !== 'blob') throw new Error(`file encoder: unexpected reply ${reply.type} to a chunk`);
      received.dropping(reply.stored.byteLength);
      return { id: reply.id, rawLength: reply.rawLength, compressed: reply.compressed, stored: Buffer.from(reply.stored.buffer, reply.stored.byteOffset, reply.stored.byteLength) };
    } finally {
      close();
    }
  }

  /**
   * The file's blobs in order (those in `known` only hashed), then whether it changed while
   * it was read; an error reading it is thrown as the file-system error it was.
   */
  async *encode(path: string, mark: FileMark, known?: readonly string[]): AsyncGenerator<FileBlob, boolean> {
    const { slot, n, next, close } = this.openJob();
    let finished = false;
    try {
      slot.worker.postMessage({ type: 'file', job: n, path, ...mark, ...(known && { known }) } satisfies { type: 'file'; job: number } & FileToEncode);
      for (;;) {
        const reply = await next();
        if (reply.type === 'done') {
          finished = true;
          return reply.changed;
        }
        if (reply.type === 'error') {
          finished = true;
          if (reply.workerDied) throw new StackvaultError(reply.message);
          throw Object.assign(new Error(reply.message), { code: reply.code, syscall: reply.syscall, path: reply.path });
        }
        if (reply.type === 'known') {
          yield { id: reply.id, rawLength: reply.rawLength, known: true };
          slot.worker.postMessage({ type: 'more', job: n });
          continue;
        }
        if (reply.type !== 'blob') throw new Error(`file encoder: unexpected reply ${reply.type} to a file`);
        const stored = Buffer.from(reply.stored.buffer, reply.stored.byteOffset, reply.stored.byteLength);
        received.dropping(stored.length);
        yield { id: reply.id, rawLength: reply.rawLength, compressed: reply.compressed, stored };
        slot.worker.postMessage({ type: 'more', job: n });
      }
    } finally {
      // Stopped early (interrupted, or the backup failed): the worker drops the rest of the file.
      if (!finished) slot.worker.postMessage({ type: 'cancel', job: n });
      close();
    }
  }
}
