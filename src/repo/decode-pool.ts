import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { IntegrityError, StackvaultError } from '../util/errors.js';
import type { MasterKey } from './crypto.js';
import type { DecodeJob, DecodeRequest } from './decode-worker.js';
import type { PackedBlob } from './pack.js';
import type { PackVerdict } from './pack-verify.js';

type Reply = { n: number; verdict?: PackVerdict; results?: Array<number | string>; bytes?: Uint8Array; error?: string };

/**
 * Verifies whole packs (check --read-data) and decodes blobs (restore) on worker threads,
 * so the main thread goes on reading packs and writing files meanwhile. Workers are
 * unref'd when idle.
 */
export class DecodePool {
  private readonly workers: Array<{ worker: Worker; pending: Map<number, { resolve(v: Reply): void; reject(e: Error): void }>; stopped?: Error }> = [];
  private next = 0;

  constructor(
    master: MasterKey,
    readonly size = availableParallelism(),
  ) {
    for (let i = 0; i < size; i++) {
      const worker = new Worker(new URL('./decode-worker.js', import.meta.url), { workerData: { encryptionKey: master.encryptionKey, idKey: master.idKey } });
      const slot: (typeof this.workers)[number] = { worker, pending: new Map() };
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
      worker.on('exit', (code) => stopped(new StackvaultError(`a decode thread stopped (exit code ${code})`)));
      worker.unref();
      this.workers.push(slot);
    }
  }

  private async run(job: DistributiveOmit<DecodeJob, 'n' | 'bytes'>, bytes: Buffer): Promise<Reply> {
    const live = this.workers.filter((w) => !w.stopped);
    if (live.length === 0) throw this.workers[0]?.stopped ?? new StackvaultError('no decode threads');
    const slot = live.reduce((a, b) => (b.pending.size < a.pending.size ? b : a));
    const n = this.next++;
    const own = bytes.byteOffset === 0 && bytes.buffer.byteLength === bytes.length ? bytes : Buffer.from(bytes);
    return new Promise((resolve, reject) => {
      slot.pending.set(n, { resolve, reject });
      slot.worker.ref();
      slot.worker.postMessage({ ...job, n, bytes: own }, [own.buffer as ArrayBuffer]);
    });
  }

  /** The pack's bytes are handed over to the worker: the caller must not use them afterwards. */
  async verify(packId: string, bytes: Buffer, indexed: PackedBlob[]): Promise<PackVerdict> {
    const reply = await this.run({ kind: 'verify', packId, indexed }, bytes);
    if (!reply.verdict) throw new Error(`verifying a pack failed: ${reply.error}`);
    return reply.verdict;
  }

  /**
   * Each blob's content, or the IntegrityError saying why it is damaged. `bytes` holds the
   * blobs' stored bytes one after another and is handed over to the worker.
   */
  async decode(blobs: DecodeRequest[], bytes: Buffer): Promise<Array<Buffer | IntegrityError>> {
    const reply = await this.run({ kind: 'decode', blobs }, bytes);
    if (!reply.results || !reply.bytes) throw new Error(`decoding blobs failed: ${reply.error}`);
    const out = Buffer.from(reply.bytes.buffer, reply.bytes.byteOffset, reply.bytes.byteLength);
    let at = 0;
    return reply.results.map((r) => {
      if (typeof r === 'string') return new IntegrityError(r);
      at += r;
      return out.subarray(at - r, at);
    });
  }

  async close(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.worker.terminate()));
  }
}

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;
