import { parentPort, workerData } from 'node:worker_threads';
import type { DecodeRequest } from '../repo/decode-worker.js';
import { decodeBlob } from '../repo/pack-verify.js';
import { writeSmallFile, type RestorableMetadata } from '../sources/files-restore.js';
import { IntegrityError, errorMessage } from '../util/errors.js';

/** Decodes and writes small files for SmallFileWriters; see small-file-writers.ts. */
const master = {
  encryptionKey: workerData.encryptionKey ? Buffer.from(workerData.encryptionKey as Uint8Array) : null,
  idKey: Buffer.from(workerData.idKey as Uint8Array),
};

export interface SmallFileJob {
  dest: string;
  meta: RestorableMetadata;
  /** the file's blobs in order; their stored bytes follow one another in the batch's buffer */
  blobs: DecodeRequest[];
}

export type SmallFileResult = { ok: true } | { message: string; code?: string; damaged: boolean };

parentPort!.on('message', (job: { n: number; files: SmallFileJob[]; bytes: Uint8Array; replaceExisting: boolean }) => {
  const bytes = Buffer.from(job.bytes.buffer, job.bytes.byteOffset, job.bytes.byteLength);
  const results: SmallFileResult[] = [];
  let at = 0;
  for (const file of job.files) {
    const start = at;
    for (const blob of file.blobs) at += blob.length;
    try {
      // Every blob is verified before the file is created: no name ever holds damaged data.
      const parts: Buffer[] = [];
      let from = start;
      for (const blob of file.blobs) {
        parts.push(decodeBlob(master, blob.id, blob, bytes.subarray(from, from + blob.length)));
        from += blob.length;
      }
      writeSmallFile(file.dest, parts.length === 1 ? parts[0]! : Buffer.concat(parts), file.meta, job.replaceExisting);
      results.push({ ok: true });
    } catch (err) {
      results.push({ message: errorMessage(err), code: (err as NodeJS.ErrnoException).code, damaged: err instanceof IntegrityError });
    }
  }
  parentPort!.postMessage({ n: job.n, results });
});
