import { availableParallelism } from 'node:os';
import { IntegrityError } from '../../util/errors.js';
import { ownedBuffer } from '../../util/owned-buffer.js';
import { WorkerPool } from '../../util/worker-pool.js';
import type { MasterKey } from '../format/crypto.js';
import type { DecodeJob, DecodeReply, DecodeRequest } from './decode-jobs.js';
import type { PackedBlob } from '../format/pack.js';
import type { PackVerdict } from '../format/pack-verify.js';

/**
 * Verifies whole packs (check --read-data) and decodes blobs (restore) on worker threads,
 * so the main thread goes on reading packs and writing files meanwhile. Workers are
 * unref'd when idle.
 */
export class DecodePool {
  private readonly pool: WorkerPool<DecodeReply>;
  /** threads that decode: this pool's own, or those of the pool it shares */
  readonly size: number;
  private readonly ownsThreads: boolean;

  /**
   * Its own `size` threads, or the threads of another pool whose thread script also hands
   * DecodeJobs to runDecodeJob (fewer threads, each compiling the same code); those are
   * left to that pool's owner to close.
   */
  constructor(source: MasterKey | WorkerPool<DecodeReply>, size = availableParallelism()) {
    if (source instanceof WorkerPool) {
      this.pool = source;
      this.size = source.size;
      this.ownsThreads = false;
      return;
    }
    this.pool = new WorkerPool(new URL('./decode-worker.js', import.meta.url), { encryptionKey: source.encryptionKey, idKey: source.idKey }, size, 'a decode thread');
    this.size = size;
    this.ownsThreads = true;
  }

  private run(job: DistributiveOmit<DecodeJob, 'n' | 'bytes'>, bytes: Buffer): Promise<DecodeReply> {
    const own = ownedBuffer(bytes);
    return this.pool.request({ ...job, bytes: own }, [own.buffer as ArrayBuffer]);
  }

  /** The pack's bytes are handed over to the worker: the caller must not use them afterwards. */
  async verify(packId: string, bytes: Buffer, indexed: PackedBlob[]): Promise<PackVerdict> {
    return verdictOf(await this.run({ kind: 'verify', packId, indexed }, bytes));
  }

  /** A folder repository's pack, read from its file by the thread that verifies it. */
  async verifyFile(packId: string, file: string, size: number, indexed: PackedBlob[]): Promise<PackVerdict> {
    return verdictOf(await this.pool.request({ kind: 'verifyFile', packId, file, size, indexed }));
  }

  /** The SHA-256 (hex) of a file on this machine, computed on a thread of the pool. */
  async hashFile(file: string): Promise<string> {
    const reply = await this.pool.request({ kind: 'hashFile', file });
    if (reply.hash === undefined) throw new Error(`hashing ${file} failed: ${reply.error}`);
    return reply.hash;
  }

  /**
   * Each blob's content (for a blob with `deliverTo`: the bytes delivered there), the
   * IntegrityError saying why it is damaged, or the error delivering it. `bytes` holds the
   * blobs' stored bytes one after another and is handed over to the worker.
   */
  async decode(blobs: DecodeRequest[], bytes: Buffer): Promise<Array<Buffer | number | Error>> {
    const reply = await this.run({ kind: 'decode', blobs }, bytes);
    if (!reply.results || !reply.bytes) throw new Error(`decoding blobs failed: ${reply.error}`);
    const out = Buffer.from(reply.bytes.buffer, reply.bytes.byteOffset, reply.bytes.byteLength);
    let at = 0;
    return reply.results.map((r, i) => {
      if (typeof r === 'string') return new IntegrityError(r);
      if (typeof r === 'object') return Object.assign(new Error(r.deliveryFailed), { code: r.code });
      if (blobs[i]!.deliverTo !== undefined) return r;
      at += r;
      return out.subarray(at - r, at);
    });
  }

  /** Stops this pool's own threads; shared ones are left to their owner. */
  async close(): Promise<void> {
    if (this.ownsThreads) await this.pool.close();
  }
}

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;

function verdictOf(reply: DecodeReply): PackVerdict {
  if (!reply.verdict) throw new Error(`verifying a pack failed: ${reply.error}`);
  return reply.verdict;
}
