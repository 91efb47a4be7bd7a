import { parentPort, workerData } from 'node:worker_threads';
import { concatOwned } from '../util/batcher.js';
import { errorMessage } from '../util/errors.js';
import type { PackedBlob } from './pack.js';
import { decodeBlob, verifyPack } from './pack-verify.js';

/** Verifies packs and decodes blobs for a DecodePool; see decode-pool.ts. */
const master = {
  encryptionKey: workerData.encryptionKey ? Buffer.from(workerData.encryptionKey as Uint8Array) : null,
  idKey: Buffer.from(workerData.idKey as Uint8Array),
};

export type DecodeJob =
  | { kind: 'verify'; n: number; packId: string; bytes: Uint8Array; indexed: PackedBlob[] }
  | { kind: 'decode'; n: number; blobs: DecodeRequest[]; bytes: Uint8Array };

/** A stored blob to decode; its stored bytes follow the previous blob's in the job's buffer. */
export interface DecodeRequest {
  id: string;
  pack: string;
  compressed: boolean;
  rawLength: number;
  length: number;
}

parentPort!.on('message', (job: DecodeJob) => {
  try {
    const bytes = Buffer.from(job.bytes.buffer, job.bytes.byteOffset, job.bytes.byteLength);
    if (job.kind === 'verify') {
      parentPort!.postMessage({ n: job.n, verdict: verifyPack(master, job.packId, bytes, job.indexed) });
      return;
    }
    // Each blob's content (its length) or why it is damaged; the contents go back in one buffer.
    const results: Array<number | string> = [];
    const plain: Buffer[] = [];
    let at = 0;
    let total = 0;
    for (const blob of job.blobs) {
      try {
        const data = decodeBlob(master, blob.id, blob, bytes.subarray(at, at + blob.length));
        plain.push(data);
        results.push(data.length);
        total += data.length;
      } catch (err) {
        results.push(errorMessage(err));
      }
      at += blob.length;
    }
    const out = concatOwned(plain, total);
    parentPort!.postMessage({ n: job.n, results, bytes: out }, [out.buffer as ArrayBuffer]);
  } catch (err) {
    parentPort!.postMessage({ n: job.n, error: errorMessage(err) });
  }
});
