import { parentPort, workerData } from 'node:worker_threads';
import { runDecodeJob, type DecodeJob } from './decode-jobs.js';

/** A DecodePool's own thread: verifies packs and decodes blobs; see decode-pool.ts. */
const master = {
  encryptionKey: workerData.encryptionKey ? Buffer.from(workerData.encryptionKey as Uint8Array) : null,
  idKey: Buffer.from(workerData.idKey as Uint8Array),
};

parentPort!.on('message', (job: DecodeJob) => {
  const { reply, transfer } = runDecodeJob(master, job);
  parentPort!.postMessage(reply, transfer);
});
