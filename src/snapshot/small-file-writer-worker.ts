import { parentPort, workerData } from 'node:worker_threads';
import type { DecodeRequest } from '../repo/decode-worker.js';
import { PackFileReader } from '../repo/pack-file-reader.js';
import { decodeBlob } from '../repo/pack-verify.js';
import { writeSmallFile, type RestorableMetadata, type SmallFileCreation } from '../sources/files-restore.js';
import { IntegrityError, errorMessage } from '../util/errors.js';

/** Decodes and writes small files for SmallFileWriters; see small-file-writers.ts. */
const master = {
  encryptionKey: workerData.encryptionKey ? Buffer.from(workerData.encryptionKey as Uint8Array) : null,
  idKey: Buffer.from(workerData.idKey as Uint8Array),
};
/** This thread's files of one restore (a pool of writers serves one restore). */
const creation: SmallFileCreation = { replaceExisting: workerData.replaceExisting as boolean };

export interface SmallFileJob {
  dest: string;
  meta: RestorableMetadata;
  /**
   * The file's blobs in order. A blob with a `file` is read from that pack file at
   * `offset`; the stored bytes of the others follow one another in the batch's buffer.
   */
  blobs: Array<DecodeRequest & { file?: string; offset?: number }>;
}

type PackBlob = SmallFileJob['blobs'][number] & { file: string; offset: number };

export type SmallFileResult = { ok: true } | { message: string; code?: string; damaged: boolean };

parentPort!.on('message', (job: { n: number; files: SmallFileJob[]; bytes: Uint8Array }) => {
  const bytes = Buffer.from(job.bytes.buffer, job.bytes.byteOffset, job.bytes.byteLength);
  const packs = new PackFileReader();
  const results: SmallFileResult[] = [];
  try {
    // The batch's blobs from packs, in few reads (the batch came in pack order); what those
    // reads could not give is read again per file below, so a damaged blob fails only its file.
    const fromPacks = job.files.flatMap((file) => file.blobs.filter((blob) => blob.file !== undefined)) as PackBlob[];
    const read = new Map(packs.readAll(fromPacks).map((stored, i) => [fromPacks[i]!, stored]));
    let at = 0;
    for (const file of job.files) {
      const start = at;
      for (const blob of file.blobs) if (blob.file === undefined) at += blob.length;
      try {
        // Every blob is verified before the file is created: no name ever holds damaged data.
        const parts: Buffer[] = [];
        let from = start;
        for (const blob of file.blobs) {
          let stored: Buffer;
          if (blob.file !== undefined) {
            stored = read.get(blob as PackBlob) ?? packs.read(blob.file, blob.offset!, blob.length);
          } else {
            stored = bytes.subarray(from, from + blob.length);
            from += blob.length;
          }
          parts.push(decodeBlob(master, blob.id, blob, stored));
        }
        writeSmallFile(file.dest, parts.length === 1 ? parts[0]! : Buffer.concat(parts), file.meta, creation);
        results.push({ ok: true });
      } catch (err) {
        results.push({ message: errorMessage(err), code: (err as NodeJS.ErrnoException).code, damaged: err instanceof IntegrityError });
      }
    }
  } finally {
    packs.close();
  }
  parentPort!.postMessage({ n: job.n, results });
});
