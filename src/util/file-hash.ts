import { createHash } from 'node:crypto';
import { closeSync, openSync, readSync } from 'node:fs';

/**
 * The SHA-256 (hex) of a file, read through `buffer` (1 MiB of fresh memory if none is
 * given): a read stream's fresh buffer per chunk faulted in a page per 4 KiB (a fifth of a
 * second of CPU for 24 MB on this machine). Blocking: for a worker thread, or a test.
 */
export function sha256OfFileSync(file: string, buffer: Buffer = Buffer.allocUnsafeSlow(1 << 20)): string {
  const hash = createHash('sha256');
  const fd = openSync(file, 'r');
  try {
    for (let n = readSync(fd, buffer, 0, buffer.length, null); n > 0; n = readSync(fd, buffer, 0, buffer.length, null)) hash.update(buffer.subarray(0, n));
  } finally {
    closeSync(fd);
  }
  return hash.digest('hex');
}
