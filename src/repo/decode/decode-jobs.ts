import { writeAtSync } from '../../util/direct-io.js';
import { concatOwned } from '../../util/owned-buffer.js';
import { errorMessage } from '../../util/errors.js';
import type { MasterKey } from '../format/crypto.js';
import type { PackedBlob } from '../format/pack.js';
import { PackFileReader } from './pack-file-reader.js';
import { decodeBlob, verifyPack, type PackVerdict } from '../format/pack-verify.js';

/** The work of a DecodePool's threads (see decode-pool.ts), for whichever thread script serves one. */
export type DecodeJob =
  | { kind: 'verify'; n: number; packId: string; bytes: Uint8Array; indexed: PackedBlob[] }
  | { kind: 'decode'; n: number; blobs: DecodeRequest[]; bytes: Uint8Array };

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
   * Write the content into this open file at this position instead of sending it back:
   * a restore's larger files, whose content would otherwise cross to the main thread in
   * fresh memory only to be written from there.
   */
  into?: { fd: number; position: number; directFd?: number };
}

/** Per blob: its length (returned in the reply's buffer, or written), why it is damaged, or why writing it failed. */
export type DecodeResult = number | string | { writeFailed: string; code?: string };

function writeInto(into: NonNullable<DecodeRequest['into']>, data: Buffer): DecodeResult {
  try {
    // The file is new: what is not written is a hole that reads as zeros (a sparse file stays sparse).
    if (!isAllZeros(data)) writeAtSync(into.fd, into.directFd, data, into.position);
    return data.length;
  } catch (err) {
    return { writeFailed: errorMessage(err), code: (err as NodeJS.ErrnoException).code };
  }
}

const ZEROS = Buffer.alloc(1 << 20);

/** Whether every byte is zero: compared a MiB at a time (memcmp), stopping at the first other byte. */
export function isAllZeros(data: Buffer): boolean {
  for (let offset = 0; offset < data.length; offset += ZEROS.length) {
    const n = Math.min(ZEROS.length, data.length - offset);
    if (!data.subarray(offset, offset + n).equals(ZEROS.subarray(0, n))) return false;
  }
  return true;
}

export type DecodeReply = { n: number; verdict?: PackVerdict; results?: DecodeResult[]; bytes?: Uint8Array; error?: string };

/** The reply to one job, and what it hands back to the asking thread (transferred, not copied). */
export function runDecodeJob(master: Pick<MasterKey, 'encryptionKey' | 'idKey'>, job: DecodeJob): { reply: DecodeReply; transfer: ArrayBuffer[] } {
  try {
    const bytes = Buffer.from(job.bytes.buffer, job.bytes.byteOffset, job.bytes.byteLength);
    if (job.kind === 'verify') return { reply: { n: job.n, verdict: verifyPack(master, job.packId, bytes, job.indexed) }, transfer: [] };
    // Each blob's content (its length) or why it is damaged; the contents not written go back in one buffer.
    const results: DecodeResult[] = [];
    const plain: Buffer[] = [];
    const packs = new PackFileReader();
    let at = 0;
    let total = 0;
    try {
      for (const blob of job.blobs) {
        const inBatch = blob.file === undefined;
        try {
          const stored = inBatch ? bytes.subarray(at, at + blob.length) : packs.read(blob.file!, blob.offset!, blob.length);
          const data = decodeBlob(master, blob.id, blob, stored);
          if (blob.into) {
            results.push(writeInto(blob.into, data));
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
