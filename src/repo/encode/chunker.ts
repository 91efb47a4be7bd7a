import { createHash } from 'node:crypto';
import { readSync } from 'node:fs';
import type { Readable } from '../../util/adaptive-io.js';
import { gearScanner, type GearScanner } from './gear-scan.js';

export interface ChunkerParams {
  min: number;
  avg: number;
  max: number;
}

export const DEFAULT_CHUNKER: ChunkerParams = { min: 512 * 1024, avg: 1024 * 1024, max: 8 * 1024 * 1024 };

/** log2 of the average chunk size, or an error naming what is wrong with the parameters. */
export function checkChunkerParams(params: ChunkerParams): number {
  const bits = Math.round(Math.log2(params.avg));
  if (2 ** bits !== params.avg || params.min >= params.avg || params.avg >= params.max || params.min < 64) {
    throw new Error(`invalid chunker parameters ${JSON.stringify(params)}: need 64 <= min < avg < max with avg a power of two`);
  }
  return bits;
}

/**
 * Content-defined chunking with FastCDC (gear rolling hash, normalized chunking).
 * The gear table is derived from the repository's secret seed so boundaries cannot be
 * predicted by someone who knows a file's content but not the key.
 */
export class Chunker {
  private readonly scanner: GearScanner;
  private readonly maskSmall: number;
  private readonly maskLarge: number;
  /** what chunkFdSync reads through, made on its first use */
  private window?: Buffer;

  constructor(
    seed: Buffer,
    readonly params: ChunkerParams = DEFAULT_CHUNKER,
  ) {
    const bits = checkChunkerParams(params);
    const gear = new Int32Array(256);
    for (let i = 0; i < 256; i++) {
      gear[i] = createHash('sha256').update(seed).update(Uint8Array.of(i)).digest().readInt32LE(0);
    }
    this.scanner = gearScanner(gear);
    // The gear hash shifts left each byte, so its high bits depend on the last 32 bytes: test high bits.
    this.maskSmall = topBits(Math.min(bits + 2, 31));
    this.maskLarge = topBits(Math.max(bits - 2, 1));
  }

  /**
   * Length of the next chunk of buf[start, end). The caller passes at least `max` bytes
   * unless the input ends before that.
   */
  cut(buf: Uint8Array, start: number, end: number): number {
    const { min, avg, max } = this.params;
    let n = end - start;
    if (n <= min) return n;
    if (n > max) n = max;
    const normal = Math.min(avg, n);
    // Normalized chunking: a cut is harder to find before the average length, easier after.
    const early = this.scanner.scan(buf, start + min, start + normal, this.maskSmall, 0);
    if (early >= 0) return early - start;
    const late = this.scanner.scan(buf, start + normal, start + n, this.maskLarge, this.scanner.h);
    return late >= 0 ? late - start : n;
  }

  /**
   * Chunks of an open file; each yielded buffer is the caller's to keep. `sizeHint` (the
   * size from stat) keeps the read buffer as small as the file: most files in a stack are
   * small, and a buffer of max+4 MiB per file costs more in allocation and GC than the
   * hashing. The buffer grows if the file turns out larger than its hint. With `window`
   * (of windowBytes), the file is read through it instead, and each chunk is a view into
   * it, valid only until the next is asked for.
   */
  async *chunkFile(fh: Readable, sizeHint = Number.POSITIVE_INFINITY, window?: Buffer): AsyncGenerator<Buffer> {
    const { max } = this.params;
    const capacity = this.windowBytes;
    if (window && window.length < capacity) throw new Error(`a chunker window needs ${capacity} bytes`);
    let buf = window ?? Buffer.allocUnsafe(Math.min(capacity, Math.max(MIN_BUFFER, sizeHint + 1)));
    let start = 0;
    let end = 0;
    let eof = false;
    for (;;) {
      while (!eof && end - start < max) {
        if (end === buf.length) {
          if (start > 0) {
            buf.copyWithin(0, start, end);
            end -= start;
            start = 0;
          } else {
            const grown = Buffer.allocUnsafe(Math.min(capacity, buf.length * 2));
            buf.copy(grown, 0, 0, end);
            buf = grown;
          }
        }
        const wanted = Math.min(buf.length - end, READ_BLOCK);
        const { bytesRead } = await fh.read(buf, end, wanted, null);
        end += bytesRead;
        // Only 0 bytes is the end: network and FUSE file systems may read short before it.
        if (bytesRead === 0) eof = true;
      }
      if (end === start) return;
      const length = this.cut(buf, start, end);
      // The last chunk is the buffer's last use: hand it over without a copy.
      const last = eof && start + length === end;
      yield last || window ? buf.subarray(start, start + length) : Buffer.from(buf.subarray(start, start + length));
      if (last) return;
      start += length;
    }
  }

  /**
   * Chunks of a file read to its end with blocking calls on `fd`, for a worker thread that
   * has nothing else to do meanwhile. Each chunk is a view into this chunker's window, valid
   * only until `visit` returns: no buffer is allocated per file or per chunk (allocating one
   * per small file cost more in garbage collection than the file's hashing), and the window
   * is hashed where it lies. Files of any size stream through it. `visit` must not chunk
   * another file with this chunker.
   */
  chunkFdSync(fd: number, visit: (chunk: Buffer) => void): void {
    const { max } = this.params;
    const window = (this.window ??= this.scanner.window(this.windowBytes));
    let start = 0;
    let end = 0;
    let eof = false;
    for (;;) {
      while (!eof && end - start < max) {
        if (window.length - end < READ_BLOCK) {
          window.copyWithin(0, start, end);
          end -= start;
          start = 0;
        }
        const bytesRead = readSync(fd, window, end, window.length - end, null);
        end += bytesRead;
        if (bytesRead === 0) eof = true;
      }
      if (end === start) return;
      const length = this.cut(window, start, end);
      visit(window.subarray(start, start + length));
      start += length;
    }
  }

  /** Bytes of a window for chunkFile: the largest chunk and a read ahead of it. */
  get windowBytes(): number {
    return this.params.max + READ_BLOCK;
  }

  /** Chunks of a stream of any block sizes (a database dump); each yielded buffer is the caller's to keep. */
  async *chunkStream(source: AsyncIterable<Buffer>): AsyncGenerator<Buffer> {
    const { max } = this.params;
    const buf = Buffer.allocUnsafe(max + READ_BLOCK);
    let start = 0;
    let end = 0;
    for await (const block of source) {
      let offset = 0;
      while (offset < block.length) {
        if (end === buf.length) {
          buf.copyWithin(0, start, end);
          end -= start;
          start = 0;
        }
        const n = Math.min(block.length - offset, buf.length - end);
        block.copy(buf, end, offset, offset + n);
        end += n;
        offset += n;
        while (end - start >= max) {
          const length = this.cut(buf, start, end);
          yield Buffer.from(buf.subarray(start, start + length));
          start += length;
        }
      }
    }
    while (end > start) {
      const length = this.cut(buf, start, end);
      yield Buffer.from(buf.subarray(start, start + length));
      start += length;
    }
  }
}

const READ_BLOCK = 4 * 1024 * 1024;
const MIN_BUFFER = 64 * 1024;

function topBits(count: number): number {
  return (~0 << (32 - count)) | 0;
}
