import { Worker } from 'node:worker_threads';
import { StackvaultError } from './errors.js';

/**
 * Worker threads that answer numbered requests: each request goes to the least busy
 * thread still running, and its reply (a message with the same `n`) resolves it. A thread
 * that stops (a crash, running out of memory) rejects what it had and gets nothing more;
 * when none is left, requests fail at once. Threads are unref'd while idle, so a pool
 * never keeps the process alive.
 */
export class WorkerPool<Reply extends { n: number }> {
  private readonly slots: Array<{ worker: Worker; pending: Map<number, { resolve(reply: Reply): void; reject(err: Error): void }>; stopped?: Error }> = [];
  private next = 0;
  private setupMessage: object | undefined;

  /** `what` names a thread in errors ("a decode thread stopped ..."). */
  constructor(
    private readonly script: URL,
    private readonly workerData: unknown,
    size: number,
    private readonly what: string,
  ) {
    this.grow(size);
  }

  /**
   * A message each thread gets before its next request, and each thread added later before
   * its first: what a thread started early (see grow) could not be told at its start.
   */
  setup(message: object): void {
    this.setupMessage = message;
    for (const slot of this.slots) slot.worker.postMessage(message);
  }

  /** Threads added until there are `size`. */
  grow(size: number): void {
    const { what } = this;
    while (this.slots.length < size) {
      const worker = new Worker(this.script, { workerData: this.workerData });
      if (this.setupMessage) worker.postMessage(this.setupMessage);
      const slot: (typeof this.slots)[number] = { worker, pending: new Map() };
      worker.on('message', (reply: Reply) => {
        const waiting = slot.pending.get(reply.n);
        slot.pending.delete(reply.n);
        if (slot.pending.size === 0) worker.unref();
        waiting?.resolve(reply);
      });
      const stopped = (err: Error) => {
        slot.stopped ??= err;
        for (const p of slot.pending.values()) p.reject(err);
        slot.pending.clear();
      };
      worker.on('error', stopped);
      worker.on('exit', (code) => stopped(new StackvaultError(`${what} stopped (exit code ${code})`)));
      worker.unref();
      this.slots.push(slot);
    }
  }

  /** Send `message` (with its number added) to a thread, moving `transfer` there. */
  request(message: object, transfer: ArrayBuffer[] = []): Promise<Reply> {
    const live = this.slots.filter((s) => !s.stopped);
    if (live.length === 0) return Promise.reject(this.slots[0]?.stopped ?? new StackvaultError('no worker threads'));
    const slot = live.reduce((a, b) => (b.pending.size < a.pending.size ? b : a));
    const n = this.next++;
    return new Promise((resolve, reject) => {
      slot.pending.set(n, { resolve, reject });
      slot.worker.ref();
      slot.worker.postMessage({ ...message, n }, transfer);
    });
  }

  get size(): number {
    return this.slots.length;
  }

  /** Stops every thread; again, nothing more. */
  async close(): Promise<void> {
    await Promise.all(this.slots.map((s) => s.worker.terminate()));
  }
}
