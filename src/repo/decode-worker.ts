import { parentPort, workerData } from 'node:worker_threads';
import type { PackedBlob } from './pack.js';
import { verifyPack } from './pack-verify.js';

/** Verifies packs for a PackVerifierPool; see pack-verifier-pool.ts. */
const master = {
  encryptionKey: workerData.encryptionKey ? Buffer.from(workerData.encryptionKey as Uint8Array) : null,
  idKey: Buffer.from(workerData.idKey as Uint8Array),
};

parentPort!.on('message', (job: { n: number; packId: string; bytes: Uint8Array; indexed: PackedBlob[] }) => {
  try {
    const bytes = Buffer.from(job.bytes.buffer, job.bytes.byteOffset, job.bytes.byteLength);
    parentPort!.postMessage({ n: job.n, verdict: verifyPack(master, job.packId, bytes, job.indexed) });
  } catch (err) {
    parentPort!.postMessage({ n: job.n, error: (err as Error).message });
  }
});
