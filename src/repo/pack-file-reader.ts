import { closeSync, constants, openSync, readSync } from 'node:fs';
import { IntegrityError, errorMessage } from '../util/errors.js';
import { DIRECT_READ_MIN_BYTES, O_DIRECT, directIoRefused, readDirectSync } from '../util/direct-io.js';

/** cleared for this thread once a file system refuses O_DIRECT */
let directReads = O_DIRECT !== 0;

/**
 * Reads stored blobs straight from the pack files of a folder repository, on a worker
 * thread, with blocking calls; packs stay open until close() (a batch's blobs mostly
 * share a pack or two). Large blobs are read past the page cache, as packs are written
 * (see direct-io.ts), through a second descriptor.
 */
export class PackFileReader {
  private readonly fds = new Map<string, number>();
  private readonly directFds = new Map<string, number>();

  read(file: string, offset: number, length: number): Buffer {
    const buf = Buffer.allocUnsafe(length);
    const done = (length >= DIRECT_READ_MIN_BYTES ? this.readPastCache(file, buf, offset) : undefined) ?? this.readThroughCache(file, buf, offset);
    if (done < length) throw new IntegrityError(`pack ${file} is truncated: wanted bytes ${offset}..${offset + length}, it ends at ${offset + done}`);
    return buf;
  }

  /** Bytes read into `buf`, fewer only where the pack ends; undefined where direct reads are refused. */
  private readPastCache(file: string, buf: Buffer, offset: number): number | undefined {
    const fd = directReads ? this.open(file, true) : undefined;
    if (fd === undefined) return undefined;
    try {
      return readDirectSync(fd, buf, offset, buf.length);
    } catch (err) {
      if (!directIoRefused(err)) throw err;
      // Opened for direct reads, but refused them: through the page cache from now on.
      directReads = false;
      return undefined;
    }
  }

  private readThroughCache(file: string, buf: Buffer, offset: number): number {
    const fd = this.open(file, false)!;
    let done = 0;
    for (let n = -1; done < buf.length && n !== 0; done += n) n = readSync(fd, buf, done, buf.length - done, offset + done);
    return done;
  }

  /** The pack's descriptor, direct or not; undefined where the file system refuses direct reads. */
  private open(file: string, direct: boolean): number | undefined {
    const fds = direct ? this.directFds : this.fds;
    let fd = fds.get(file);
    if (fd !== undefined) return fd;
    try {
      fd = openSync(file, constants.O_RDONLY | (direct ? O_DIRECT : 0));
    } catch (err) {
      if (direct && directIoRefused(err)) {
        directReads = false;
        return undefined;
      }
      throw Object.assign(new Error(`cannot read pack ${file}: ${errorMessage(err)}`), { code: (err as NodeJS.ErrnoException).code });
    }
    fds.set(file, fd);
    return fd;
  }

  close(): void {
    for (const fd of [...this.fds.values(), ...this.directFds.values()]) closeSync(fd);
    this.fds.clear();
    this.directFds.clear();
  }
}
