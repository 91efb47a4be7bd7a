import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { encodeBlob, type EncodedBlob } from './blob-encoding.js';
import type { EncodeReply, EncodeRequest } from './encode-worker.js';

/** Below this, handing a blob to a thread costs more than compressing it here. */
const INLINE_BELOW = 16 * 1024;

interface Slot {
  worker: Worker;
  busy: number;
}

/**
 * Compression and encryption on worker threads, so that reading, chunking and hashing on
 * the main thread overlap with them and every core works. Workers are started on first
 * use and keep the process alive only while they hold work.
 */
export class EncoderPool {
  private slots: Slot[] = [];
  private nextJob = 0;
  private readonly waiting = new Map<number, { slot: Slot; resolve: (e: EncodedBlob) => void; reject: (err: Error) => void }>();

  constructor(readonly threads = defaultThreads()) {}

  encode(encryptionKey: Buffer | null, data: Uint8Array): Promise<EncodedBlob> {
    if (data.length < INLINE_BELOW || this.threads === 0) return Promise.resolve(encodeBlob(encryptionKey, data));
    const slot = this.leastBusy();
    const job = this.nextJob++;
    // Copied into a buffer of its own: a chunk is often a view into a larger read buffer.
    const copy = new Uint8Array(data.length);
    copy.set(data);
    return new Promise<EncodedBlob>((resolve, reject) => {
      this.waiting.set(job, { slot, resolve, reject });
      if (slot.busy++ === 0) slot.worker.ref();
      slot.worker.postMessage({ job, key: encryptionKey, data: copy } satisfies EncodeRequest, [copy.buffer]);
    });
  }

  private leastBusy(): Slot {
    if (this.slots.length < this.threads) {
      const idle = this.slots.find((s) => s.busy === 0);
      if (idle) return idle;
      return this.start();
    }
    return this.slots.reduce((a, b) => (b.busy < a.busy ? b : a));
  }

  private start(): Slot {
    const worker = new Worker(new URL('./encode-worker.js', import.meta.url));
    const slot: Slot = { worker, busy: 0 };
    worker.unref();
    worker.on('message', (reply: EncodeReply) => {
      const waiter = this.waiting.get(reply.job);
      if (!waiter) return;
      this.waiting.delete(reply.job);
      if (--slot.busy === 0) worker.unref();
      if ('error' in reply) waiter.reject(new Error(`compressing a blob failed: ${reply.error}`));
      else waiter.resolve({ stored: Buffer.from(reply.stored.buffer, reply.stored.byteOffset, reply.stored.byteLength), compressed: reply.compressed });
    });
    const fail = (err: Error) => {
      this.slots = this.slots.filter((s) => s !== slot);
      for (const [job, waiter] of this.waiting) {
        if (waiter.slot !== slot) continue;
        this.waiting.delete(job);
        waiter.reject(new Error(`an encoder thread stopped: ${err.message}`));
      }
    };
    worker.on('error', fail);
    worker.on('exit', (code) => fail(new Error(`exit code ${code}`)));
    this.slots.push(slot);
    return slot;
  }
}

function defaultThreads(): number {
  const fromEnv = Number(process.env.STACKVAULT_THREADS);
  if (Number.isInteger(fromEnv) && fromEnv >= 0) return fromEnv;
  return Math.min(4, availableParallelism());
}

let shared: EncoderPool | undefined;

/** One pool per process: threads are costly to start and every writer can share them. */
export function sharedEncoderPool(): EncoderPool {
  shared ??= new EncoderPool();
  return shared;
}
