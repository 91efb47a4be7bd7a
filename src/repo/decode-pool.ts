import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import type { MasterKey } from './crypto.js';
import type { PackedBlob } from './pack.js';
import type { PackVerdict } from './pack-verify.js';

/**
 * Verifies whole packs on worker threads, one per core, so check --read-data uses every
 * core while the main thread reads the next packs. Workers are unref'd when idle.
 */
export class PackVerifierPool {
  private readonly workers: Array<{ worker: Worker; pending: Map<number, { resolve(v: PackVerdict): void; reject(e: Error): void }> }> = [];
  private next = 0;

  constructor(
    master: MasterKey,
    readonly size = availableParallelism(),
  ) {
    for (let i = 0; i < size; i++) {
      const worker = new Worker(new URL('./pack-verify-worker.js', import.meta.url), { workerData: { encryptionKey: master.encryptionKey, idKey: master.idKey } });
      const slot = { worker, pending: new Map<number, { resolve(v: PackVerdict): void; reject(e: Error): void }>() };
      worker.on('message', (msg: { n: number; verdict?: PackVerdict; error?: string }) => {
        const waiting = slot.pending.get(msg.n);
        slot.pending.delete(msg.n);
        if (slot.pending.size === 0) worker.unref();
        if (msg.verdict) waiting?.resolve(msg.verdict);
        else waiting?.reject(new Error(`verifying a pack failed: ${msg.error}`));
      });
      worker.on('error', (err) => {
        for (const p of slot.pending.values()) p.reject(err);
        slot.pending.clear();
      });
      worker.unref();
      this.workers.push(slot);
    }
  }

  /** The pack's bytes are handed over to the worker: the caller must not use them afterwards. */
  verify(packId: string, bytes: Buffer, indexed: PackedBlob[]): Promise<PackVerdict> {
    const slot = this.workers.reduce((a, b) => (b.pending.size < a.pending.size ? b : a));
    const n = this.next++;
    const own = bytes.byteOffset === 0 && bytes.buffer.byteLength === bytes.length ? bytes : Buffer.from(bytes);
    return new Promise((resolve, reject) => {
      slot.pending.set(n, { resolve, reject });
      slot.worker.ref();
      slot.worker.postMessage({ n, packId, bytes: own, indexed }, [own.buffer as ArrayBuffer]);
    });
  }

  async close(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.worker.terminate()));
  }
}
