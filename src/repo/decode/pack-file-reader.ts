import { closeSync, constants, openSync, readSync } from 'node:fs';
import { IntegrityError, errorMessage } from '../../util/errors.js';
import type { Scratch } from '../../util/scratch.js';

/**
 * readAll() joins blobs of one pack into one read when at most this many bytes lie
 * between them, and makes no read longer than JOIN_MAX_BYTES. Reading 64 KiB more costs
 * less than another small read: a cold pack's small reads each wait for the disk.
 */
const JOIN_GAP_BYTES = 64 * 1024;
const JOIN_MAX_BYTES = 8 * 1024 * 1024;

export interface PackPlace {
  file: string;
  offset: number;
  length: number;
}

/**
 * Reads stored blobs straight from the pack files of a folder repository, on a worker
 * thread, with blocking calls; packs stay open until close() (a batch's blobs mostly
 * share a pack or two).
 *
 * Through the page cache, though packs are written past it (see direct-io.ts): a restore
 * reads a pack's blobs in order, a batch after another, and the kernel's read-ahead brings
 * the next ones while a writer thread decodes and writes. Read past the cache, every read
 * waited for the disk (each writer thread of a restore of 31,507 files 0.3 s of 4.5, perf)
 * and went through an aligned slot and a copy: restores of that tree from a cold cache took
 * 3.66 s instead of 4.00 and 6.45 CPU-s instead of 6.77, of 9,600 files 1.21 s instead of
 * 1.28 (docs/performance.md, twenty-sixth session). The pages are clean and read once: the
 * kernel keeps them on its inactive list and evicts them first, as it does restic's and
 * Borg's, which read packs through the cache too.
 */
export class PackFileReader {
  private readonly fds = new Map<string, number>();

  /** The stored bytes at `offset`, in `into` when given (memory the caller reuses; `length` bytes of it). */
  read(file: string, offset: number, length: number, into?: Buffer): Buffer {
    const buf = into?.subarray(0, length) ?? Buffer.allocUnsafe(length);
    const fd = this.open(file);
    let done = 0;
    for (let n = -1; done < length && n !== 0; done += n) n = readSync(fd, buf, done, length - done, offset + done);
    if (done < length) throw new IntegrityError(`pack ${file} is truncated: wanted bytes ${offset}..${offset + length}, it ends at ${offset + done}`);
    return buf;
  }

  /**
   * Many blobs' stored bytes, in the order asked, read in as few calls as their places in
   * the packs allow (see JOIN_GAP_BYTES). Where a joined read fails or comes up short, its
   * blobs are undefined: the caller reads those one by one, to say which blob is damaged.
   * With a `scratch`, the bytes are views of it, valid until its next use.
   */
  readAll(places: readonly PackPlace[], scratch?: Scratch): Array<Buffer | undefined> {
    const out = new Array<Buffer | undefined>(places.length);
    const order = places.map((_, i) => i).sort((a, b) => comparePlaces(places[a]!, places[b]!));
    const runs: Array<{ first: number; last: number; length: number }> = [];
    let total = 0;
    for (let first = 0; first < order.length; ) {
      const start = places[order[first]!]!;
      let end = start.offset + start.length;
      let last = first;
      while (last + 1 < order.length) {
        const next = places[order[last + 1]!]!;
        if (next.file !== start.file || next.offset - end > JOIN_GAP_BYTES || next.offset + next.length - start.offset > JOIN_MAX_BYTES) break;
        end = Math.max(end, next.offset + next.length);
        last++;
      }
      runs.push({ first, last, length: end - start.offset });
      total += end - start.offset;
      first = last + 1;
    }
    // The runs one after another in the caller's scratch, when it has one and they are a batch's few MiB.
    const memory = total <= 64 * 1024 * 1024 ? scratch?.take(total) : undefined;
    let at = 0;
    for (const { first, last, length } of runs) {
      const start = places[order[first]!]!;
      let run: Buffer | undefined;
      try {
        run = this.read(start.file, start.offset, length, memory?.subarray(at, at + length));
      } catch {
        // left undefined: read one by one, each blob's own error reported
      }
      at += length;
      for (let k = first; k <= last; k++) {
        const place = places[order[k]!]!;
        const from = place.offset - start.offset;
        out[order[k]!] = run?.subarray(from, from + place.length);
      }
    }
    return out;
  }

  private open(file: string): number {
    let fd = this.fds.get(file);
    if (fd !== undefined) return fd;
    try {
      fd = openSync(file, constants.O_RDONLY);
    } catch (err) {
      throw Object.assign(new Error(`cannot read pack ${file}: ${errorMessage(err)}`), { code: (err as NodeJS.ErrnoException).code });
    }
    this.fds.set(file, fd);
    return fd;
  }

  close(): void {
    for (const fd of this.fds.values()) closeSync(fd);
    this.fds.clear();
  }
}

/** Pack file, then offset: the order in which reads of a pack run forward. */
export function comparePlaces(a: Pick<PackPlace, 'file' | 'offset'>, b: Pick<PackPlace, 'file' | 'offset'>): number {
  if (a.file !== b.file) return a.file < b.file ? -1 : 1;
  return a.offset - b.offset;
}
