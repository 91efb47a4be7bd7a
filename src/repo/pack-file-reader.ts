import { closeSync, openSync, readSync } from 'node:fs';
import { IntegrityError, errorMessage } from '../util/errors.js';

/**
 * Reads stored blobs straight from the pack files of a folder repository, on a worker
 * thread, with blocking calls; packs stay open until close() (a batch's blobs mostly
 * share a pack or two).
 */
export class PackFileReader {
  private readonly fds = new Map<string, number>();

  read(file: string, offset: number, length: number): Buffer {
    let fd = this.fds.get(file);
    if (fd === undefined) {
      try {
        fd = openSync(file, 'r');
      } catch (err) {
        throw Object.assign(new Error(`cannot read pack ${file}: ${errorMessage(err)}`), { code: (err as NodeJS.ErrnoException).code });
      }
      this.fds.set(file, fd);
    }
    const buf = Buffer.allocUnsafe(length);
    let done = 0;
    while (done < length) {
      const n = readSync(fd, buf, done, length - done, offset + done);
      if (n === 0) throw new IntegrityError(`pack ${file} is truncated: wanted bytes ${offset}..${offset + length}, it ends at ${offset + done}`);
      done += n;
    }
    return buf;
  }

  close(): void {
    for (const fd of this.fds.values()) closeSync(fd);
    this.fds.clear();
  }
}
