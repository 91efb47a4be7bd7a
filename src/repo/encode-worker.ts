import { parentPort } from 'node:worker_threads';
import { encodeBlob } from './blob-encoding.js';

/** A worker thread of the EncoderPool: compresses and seals blobs off the main thread. */
export interface EncodeRequest {
  job: number;
  key: Uint8Array | null;
  data: Uint8Array;
}

export type EncodeReply = { job: number; stored: Uint8Array; compressed: boolean } | { job: number; error: string };

parentPort!.on('message', (request: EncodeRequest) => {
  try {
    const key = request.key ? Buffer.from(request.key.buffer, request.key.byteOffset, request.key.byteLength) : null;
    const { stored, compressed } = encodeBlob(key, request.data);
    // A fresh ArrayBuffer of exactly the stored bytes, so it can be handed over without a copy.
    const out = new Uint8Array(stored.length);
    out.set(stored);
    parentPort!.postMessage({ job: request.job, stored: out, compressed } satisfies EncodeReply, [out.buffer]);
  } catch (err) {
    parentPort!.postMessage({ job: request.job, error: (err as Error).message } satisfies EncodeReply);
  }
});
