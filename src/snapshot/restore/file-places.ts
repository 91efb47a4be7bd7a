import type { DecodeResult } from '../../repo/decode/decode-jobs.js';
import { writeAtSync } from '../../util/direct-io.js';
import { errorMessage } from '../../util/errors.js';

/**
 * Where a restore's writer thread puts a larger file's blob: the file this thread opened
 * (its descriptor, and the same file opened for direct writes, which takes whole blocks;
 * see direct-io.ts) at the blob's position. The content never crosses back to the main
 * thread: handing it back cost the decode threads a third of their time faulting in fresh memory.
 */
export interface FilePlace {
  fd: number;
  position: number;
  directFd?: number;
}

/** Writes a verified blob into its place (the DecodePool job's `deliver` on the writer threads). */
export function writeIntoPlace(to: unknown, data: Buffer): DecodeResult {
  const place = to as FilePlace;
  try {
    // The file is new: what is not written is a hole that reads as zeros (a sparse file stays sparse).
    if (!isAllZeros(data)) writeAtSync(place.fd, place.directFd, data, place.position);
    return data.length;
  } catch (err) {
    return { deliveryFailed: errorMessage(err), code: (err as NodeJS.ErrnoException).code };
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
