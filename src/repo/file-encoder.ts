import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import type { ChunkerParams } from './chunker.js';
import { StackvaultError } from '../util/errors.js';
import type { MasterKey } from './crypto.js';

/** A blob as the file encoder produced it, ready for a pack. */
export interface EncodedBlob {
  id: string;
  rawLength: number;
  compressed: boolean;
  stored: Buffer;
}

type Reply =
  | { type: 'blob'; job: number; id: string; rawLength: number; compressed: boolean; stored: Uint8Array }
  | { type: 'done'; job: number }
  | { type: 'error'; job: number; message: string; code?: string; syscall?: string; path?: string; workerDied?: boolean };

interface Job {
  queue: Array<Reply>;
  wake?: () => void;
}

/**
 * Large files are read, chunked, hashed, compressed and encrypted on worker threads, so a
 * backup uses every core: the main thread keeps the walk, the small files and the packs.
 * Duplicates are only found once their blob arrives, so a deduplicated chunk of a large
 * file costs its compression; unchanged files are not read at all, so this is rare.
 */
export class FileEncoder {
  private readonly workers: Array<{ worker: Worker; jobs: Map<number, Job>; died?: string }> = [];
  private nextJob = 0;

  private constructor(
    private readonly master: MasterKey,
    private readonly params: ChunkerParams,
    private readonly size: number,
  ) {}

  /**
   * An encoder for one backup, or null on one core, where the main thread is all there
   * is. Its workers start with the first large file and end with close().
   */
  static create(master: MasterKey, params: ChunkerParams): FileEncoder | null {
    const size = Math.max(0, availableParallelism() - 1);
    return size === 0 ? null : new FileEncoder(master, params, size);
  }

  private start(): void {
    const { master, params } = this;
    for (let i = 0; i < this.size; i++) {
      const worker = new Worker(new URL('./file-encoder-worker.js', import.meta.url), {
        workerData: { seed: master.chunkerSeed, params, idKey: master.idKey, key: master.encryptionKey },
      });
      const slot: { worker: Worker; jobs: Map<number, Job>; died?: string } = { worker, jobs: new Map<number, Job>() };
      worker.on('message', (reply: Reply) => {
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

  async close(): Promise<void> {
    this.closing = true;
    await Promise.all(this.workers.splice(0).map((w) => w.worker.terminate()));
  }

  /** The file's blobs in order; an error reading it is thrown as the file-system error it was. */
  async *encode(path: string, size: number): AsyncGenerator<EncodedBlob> {
    if (this.workers.length === 0) this.start();
    const slot = this.workers.reduce((a, b) => (b.jobs.size < a.jobs.size ? b : a));
    if (slot.died) throw new StackvaultError(`the file encoder thread stopped: ${slot.died}`);
    const n = this.nextJob++;
    const job: Job = { queue: [] };
    slot.jobs.set(n, job);
    if (slot.jobs.size === 1) slot.worker.ref();
    let finished = false;
    try {
      slot.worker.postMessage({ type: 'file', job: n, path, size });
      for (;;) {
        if (job.queue.length === 0) await new Promise<void>((resolve) => (job.wake = resolve));
        job.wake = undefined;
        const reply = job.queue.shift()!;
        if (reply.type === 'done') {
          finished = true;
          return;
        }
        if (reply.type === 'error') {
          finished = true;
          if (reply.workerDied) throw new StackvaultError(reply.message);
          throw Object.assign(new Error(reply.message), { code: reply.code, syscall: reply.syscall, path: reply.path });
        }
        const stored = Buffer.from(reply.stored.buffer, reply.stored.byteOffset, reply.stored.byteLength);
        yield { id: reply.id, rawLength: reply.rawLength, compressed: reply.compressed, stored };
        slot.worker.postMessage({ type: 'more', job: n });
      }
    } finally {
      // Stopped early (interrupted, or the backup failed): the worker drops the rest of the file.
      if (!finished) slot.worker.postMessage({ type: 'cancel', job: n });
      slot.jobs.delete(n);
      if (slot.jobs.size === 0) slot.worker.unref();
    }
  }
}
