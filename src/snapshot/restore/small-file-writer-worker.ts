import { parentPort } from 'node:worker_threads';
import { decoded, runDecodeJob, type DecodeJob } from '../../repo/decode/decode-jobs.js';
import { PackFileReader, type PackPlace } from '../../repo/decode/pack-file-reader.js';
import type { MasterKey } from '../../repo/format/crypto.js';
import { decodeBlob } from '../../repo/format/pack-verify.js';
import { writeSmallFile, type SmallFileCreation } from '../../sources/files/restore.js';
import { IntegrityError, errorMessage } from '../../util/errors.js';
import { Scratch } from '../../util/scratch.js';
import { writeIntoPlace } from './file-places.js';
import { BLOB_FIELDS, FILE_FIELDS, type SmallFileBatch, type SmallFileFailure, type WriterSetup } from './small-file-batch.js';

/**
 * Decodes and writes small files for SmallFileWriters, and serves its DecodePool; see
 * small-file-writers.ts. The keys come in the first message (WriterSetup): the thread may
 * start before the repository is open.
 */
let keys: Pick<MasterKey, 'encryptionKey' | 'idKey'> | undefined;
function master(): Pick<MasterKey, 'encryptionKey' | 'idKey'> {
  if (!keys) throw new Error('internal error: a restore writer thread got work before its setup');
  return keys;
}
/** Where a batch's stored bytes are read, and a file's content decoded: reused, not fresh memory per batch and file. */
const batchScratch = new Scratch();
const contentScratch = new Scratch();
/** This thread's files of one restore (a pool of writers serves one restore). */
const creation: SmallFileCreation = { replaceExisting: false };

parentPort!.on('message', (message: WriterSetup | (SmallFileBatch & { n: number }) | DecodeJob) => {
  if ('setup' in message) {
    keys = { encryptionKey: message.encryptionKey ? Buffer.from(message.encryptionKey) : null, idKey: Buffer.from(message.idKey) };
    creation.replaceExisting = message.replaceExisting;
    creation.directWrites = message.directWrites;
    return;
  }
  if ('kind' in message) {
    const { reply, transfer } = runDecodeJob(master(), message, writeIntoPlace);
    parentPort!.postMessage(reply, transfer);
    return;
  }
  writeBatch(message);
});

function writeBatch(batch: SmallFileBatch & { n: number }): void {
  const { dests, mtimes, files, ids, blobs, packs: packIds, packFiles } = batch;
  const bytes = Buffer.from(batch.bytes.buffer, batch.bytes.byteOffset, batch.bytes.byteLength);
  const packs = new PackFileReader();
  const failed: SmallFileFailure[] = [];
  try {
    // The batch's blobs from packs, in few reads (the batch came in pack order); what those
    // reads could not give is read again per file below, so a damaged blob fails only its file.
    const places: PackPlace[] = [];
    for (let b = 0; b < ids.length; b++) {
      const file = packFiles[blobs[b * BLOB_FIELDS]!]!;
      if (file !== '') places.push({ file, offset: blobs[b * BLOB_FIELDS + 1]!, length: blobs[b * BLOB_FIELDS + 2]! });
    }
    const read = packs.readAll(places, batchScratch);
    const entry = { pack: '', compressed: false, rawLength: 0 };
    let blob = 0;
    let place = 0;
    let at = 0;
    for (let f = 0; f < dests.length; f++) {
      const end = blob + files[f * FILE_FIELDS + 3]!;
      try {
        // Every blob is verified before the file is created: no name ever holds damaged data.
        const parts: Buffer[] = [];
        while (blob < end) {
          // Taken before anything can throw: the skipping below starts at the next blob.
          const b = blob++;
          const pack = blobs[b * BLOB_FIELDS]!;
          const length = blobs[b * BLOB_FIELDS + 2]!;
          const file = packFiles[pack]!;
          let stored: Buffer;
          if (file !== '') {
            stored = read[place++] ?? packs.read(file, blobs[b * BLOB_FIELDS + 1]!, length);
          } else {
            stored = bytes.subarray(at, at + length);
            at += length;
          }
          entry.pack = packIds[pack]!;
          entry.rawLength = blobs[b * BLOB_FIELDS + 3]!;
          entry.compressed = blobs[b * BLOB_FIELDS + 4] === 1;
          // A file of one blob (nearly all small files: the smallest chunk is larger) is
          // written before the next is decoded, so its content may live in scratch memory.
          const into = end - b === 1 && parts.length === 0 ? contentScratch.takeUpTo16MiB(entry.rawLength) : undefined;
          parts.push(decodeBlob(master(), ids[b]!, entry, stored, into));
          decoded.dropping(length);
        }
        const meta = { type: 'file', mode: files[f * FILE_FIELDS]!, uid: files[f * FILE_FIELDS + 1]!, gid: files[f * FILE_FIELDS + 2]!, mtime: mtimes[f]! };
        writeSmallFile(dests[f]!, parts.length === 1 ? parts[0]! : Buffer.concat(parts), meta, creation);
      } catch (err) {
        failed.push([f, errorMessage(err), (err as NodeJS.ErrnoException).code, err instanceof IntegrityError]);
        // The rest of a failed file's blobs are skipped; their places in the reads and the bytes too.
        for (; blob < end; blob++) {
          if (packFiles[blobs[blob * BLOB_FIELDS]!] !== '') place++;
          else at += blobs[blob * BLOB_FIELDS + 2]!;
        }
      }
    }
  } finally {
    packs.close();
  }
  parentPort!.postMessage({ n: batch.n, failed });
}
