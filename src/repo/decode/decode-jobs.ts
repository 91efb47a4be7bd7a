import { concatOwned } from '../../util/owned-buffer.js';
import { errorMessage } from '../../util/errors.js';
import { sha256OfFileSync } from '../../util/file-hash.js';
import { GarbageHint } from '../../util/garbage-hint.js';
import { Scratch } from '../../util/scratch.js';
import type { MasterKey } from '../format/crypto.js';
import type { PackedBlob } from '../format/pack.js';
import { PackFileReader } from './pack-file-reader.js';
import { decodeBlob, verifyPack, type PackVerdict } from '../format/pack-verify.js';

/** The work of a DecodePool's threads (see decode-pool.ts), for whichever thread script serves one. */
export type DecodeJob =
  | { kind: 'verify'; n: number; packId: string; bytes: Uint8Array; indexed: PackedBlob[] }
  /** a folder repository's pack, read here from its file of `size` bytes */
  | { kind: 'verifyFile'; n: number; packId: string; file: string; size: number; indexed: PackedBlob[] }
  | { kind: 'decode'; n: number; blobs: DecodeRequest[]; bytes: Uint8Array }
  /** the SHA-256 of a file (a pack brought over for a restore, see PackSpool) */
  | { kind: 'hashFile'; n: number; file: string };

/**
 * A stored blob to decode. With a `file` (a folder repository's pack) it is read from
 * there at `offset`; otherwise its stored bytes follow the previous such blob's in the
 * job's buffer.
 */
export interface DecodeRequest {
  id: string;
  pack: string;
  compressed: boolean;
  rawLength: number;
  length: number;
  file?: string;
  offset?: number;
  /**
   * Where the content goes instead of back to the asking thread: handed, with the content,
   * to the `deliver` of the thread script that runs the job (a restore's writer threads
   * write it into a file). The repository never writes user files itself.
   */
  deliverTo?: unknown;
}

/** Per blob: its length (returned in the reply's buffer, or delivered), why it is damaged, or why delivering it failed. */
export type DecodeResult = number | string | { deliveryFailed: string; code?: string };

/** What a thread script does with a blob's verified content that has a `deliverTo`. */
export type Deliver = (to: unknown, data: Buffer) => DecodeResult;

export type DecodeReply = { n: number; verdict?: PackVerdict; results?: DecodeResult[]; bytes?: Uint8Array; hash?: string; error?: string };

/**
 * Decrypting a blob leaves its plain bytes behind in fresh memory, whatever the scratch
 * (see GarbageHint); this thread's own objects are few, so a collection is cheap. Restore
 * of /usr/lib (687 MiB, four writer threads): peak 168-180 MiB collecting every 1-2 MiB,
 * 181-189 every 4, 194-204 every 8, 232-245 without; the same time (docs/performance.md).
 */
export const decoded = new GarbageHint(2 * 1024 * 1024);
const dropDecoded = (length: number) => decoded.dropping(length);
const readScratch = new Scratch();
const contentScratch = new Scratch();
const packScratch = new Scratch();
/** Packs are 16 MiB and a header: a file much larger (damaged, forged) gets memory of its own, not the scratch for good. */
const PACK_SCRATCH_MAX = 64 * 1024 * 1024;

/** The reply to one job, and what it hands back to the asking thread (transferred, not copied). */
export function runDecodeJob(master: Pick<MasterKey, 'encryptionKey' | 'idKey'>, job: DecodeJob, deliver?: Deliver): { reply: DecodeReply; transfer: ArrayBuffer[] } {
  try {
    if (job.kind === 'verifyFile') return { reply: { n: job.n, verdict: verifyPackFile(master, job) }, transfer: [] };
    if (job.kind === 'hashFile') return { reply: { n: job.n, hash: sha256OfFileSync(job.file, readScratch.take(1 << 20)) }, transfer: [] };
    const bytes = Buffer.from(job.bytes.buffer, job.bytes.byteOffset, job.bytes.byteLength);
    if (job.kind === 'verify') return { reply: { n: job.n, verdict: verifyPack(master, job.packId, bytes, job.indexed, dropDecoded) }, transfer: [] };
    // Each blob's content (its length) or why it is damaged; the contents not delivered go back in one buffer.
    const results: DecodeResult[] = [];
    const plain: Buffer[] = [];
    const packs = new PackFileReader();
    let at = 0;
    let total = 0;
    try {
      for (const blob of job.blobs) {
        const inBatch = blob.file === undefined;
        try {
          // A delivered blob is written out before the next is read: its stored bytes and
          // content may live in this thread's scratch memory. What goes back needs its own.
          const delivered = blob.deliverTo !== undefined;
          const stored = inBatch ? bytes.subarray(at, at + blob.length) : packs.read(blob.file!, blob.offset!, blob.length, delivered ? readScratch.takeUpTo16MiB(blob.length) : undefined);
          const data = decodeBlob(master, blob.id, blob, stored, delivered ? contentScratch.takeUpTo16MiB(blob.rawLength) : undefined);
          decoded.dropping(blob.length);
          if (delivered) {
            results.push(deliver ? deliver(blob.deliverTo, data) : { deliveryFailed: 'this thread has nowhere to deliver blobs' });
          } else {
            plain.push(data);
            total += data.length;
            results.push(data.length);
          }
        } catch (err) {
          results.push(errorMessage(err));
        }
        if (inBatch) at += blob.length;
      }
    } finally {
      packs.close();
    }
    const out = concatOwned(plain, total);
    return { reply: { n: job.n, results, bytes: out }, transfer: [out.buffer as ArrayBuffer] };
  } catch (err) {
    return { reply: { n: job.n, error: errorMessage(err) }, transfer: [] };
  }
}

/**
 * A pack read from its file on this thread, into memory it reuses: read on the main thread,
 * each pack took 16 MiB of fresh memory there (a page fault per 4 KiB) and a copy out of
 * the aligned reads. A pack that cannot be read whole is said so, as a backend's read.
 */
function verifyPackFile(master: Pick<MasterKey, 'encryptionKey' | 'idKey'>, job: Extract<DecodeJob, { kind: 'verifyFile' }>): PackVerdict {
  const packs = new PackFileReader();
  let bytes: Buffer;
  try {
    bytes = packs.read(job.file, 0, job.size, job.size <= PACK_SCRATCH_MAX ? packScratch.take(job.size) : undefined);
  } catch (err) {
    return { hashOk: false, damaged: [], headerMismatch: false, unreadable: errorMessage(err) };
  } finally {
    packs.close();
  }
  return verifyPack(master, job.packId, bytes, job.indexed, dropDecoded);
}
