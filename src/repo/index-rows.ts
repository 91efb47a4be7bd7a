import { AnonymousFile } from '../util/anonymous-file.js';
import { StackvaultError, errorMessage } from '../util/errors.js';

/**
 * What the index keeps of each blob besides what a lookup compares first (BlobTable): the
 * second half of its id and where it lies (offset, stored and raw length), seven 32-bit
 * words a row, found by the entry's number.
 */
export interface IndexRows {
  readonly size: number;
  append(row: Uint32Array): void;
  /** Row n into `into` (seven words). */
  read(n: number, into: Uint32Array): void;
  /** Rows [first, first + count) into `into` (seven words each): one read for a whole pack's rows. */
  readRange(first: number, count: number, into: Uint32Array): void;
  /** Drops the rows from n on. */
  truncate(n: number): void;
  close(): void;
}

export const ROW_WORDS = 7;
const SEGMENT_BITS = 16;
const SEGMENT = 1 << SEGMENT_BITS;

/** Rows in memory, in segments that never move. */
export class MemoryRows implements IndexRows {
  private readonly segments: Uint32Array[] = [];
  size = 0;

  append(row: Uint32Array): void {
    const seg = this.size >>> SEGMENT_BITS;
    if (this.segments.length <= seg) this.segments.push(new Uint32Array(SEGMENT * ROW_WORDS));
    this.segments[seg]!.set(row.subarray(0, ROW_WORDS), (this.size & (SEGMENT - 1)) * ROW_WORDS);
    this.size++;
  }

  read(n: number, into: Uint32Array): void {
    copyRow(this.segments[n >>> SEGMENT_BITS]!, (n & (SEGMENT - 1)) * ROW_WORDS, into);
  }

  readRange(first: number, count: number, into: Uint32Array): void {
    for (let n = first, end = first + count; n < end; ) {
      const inSegment = Math.min(end - n, SEGMENT - (n & (SEGMENT - 1)));
      const at = (n & (SEGMENT - 1)) * ROW_WORDS;
      into.set(this.segments[n >>> SEGMENT_BITS]!.subarray(at, at + inSegment * ROW_WORDS), (n - first) * ROW_WORDS);
      n += inSegment;
    }
  }

  truncate(n: number): void {
    this.size = Math.min(this.size, n);
  }

  close(): void {
    this.segments.length = 0;
  }
}

/**
 * One row copied word by word: a lookup reads a row or two for each blob a backup checks
 * (tens of thousands for a backup that finds its files unchanged), and a view per read
 * (subarray) was an object to make and collect each time.
 */
function copyRow(from: Uint32Array, at: number, into: Uint32Array): void {
  for (let w = 0; w < ROW_WORDS; w++) into[w] = from[at + w]!;
}

const ROW_BYTES = ROW_WORDS * 4;
/** Rows gathered before they are written out together. */
const PENDING_ROWS = 32_768;

/** Rows in a scratch file of the process's own (AnonymousFile), read through the page cache. */
export class FileRows implements IndexRows {
  private readonly file: AnonymousFile;
  private readonly pending = new Uint32Array(PENDING_ROWS * ROW_WORDS);
  private readonly pendingBytes: Buffer;
  private pendingRows = 0;
  /** rows [0, written) are in the file */
  private written = 0;
  private readonly one = new Uint32Array(ROW_WORDS);
  private readonly oneBytes: Buffer;
  /** the last row read from the file: a lookup reads the same row again for its place */
  private cached = -1;

  /** Throws when the temporary folder takes no file (then keep the rows in memory). */
  constructor(parent?: string) {
    this.file = new AnonymousFile(parent);
    this.pendingBytes = Buffer.from(this.pending.buffer);
    this.oneBytes = Buffer.from(this.one.buffer);
  }

  get size(): number {
    return this.written + this.pendingRows;
  }

  append(row: Uint32Array): void {
    if (this.pendingRows === PENDING_ROWS) this.flush();
    this.pending.set(row.subarray(0, ROW_WORDS), this.pendingRows * ROW_WORDS);
    this.pendingRows++;
  }

  read(n: number, into: Uint32Array): void {
    if (n >= this.written) {
      copyRow(this.pending, (n - this.written) * ROW_WORDS, into);
      return;
    }
    if (n !== this.cached) {
      this.file.readAt(this.oneBytes, ROW_BYTES, n * ROW_BYTES);
      this.cached = n;
    }
    into.set(this.one);
  }

  readRange(first: number, count: number, into: Uint32Array): void {
    const fromFile = Math.max(0, Math.min(count, this.written - first));
    if (fromFile > 0) this.file.readAt(Buffer.from(into.buffer, into.byteOffset, fromFile * ROW_BYTES), fromFile * ROW_BYTES, first * ROW_BYTES);
    for (let i = fromFile; i < count; i++) {
      const at = (first + i - this.written) * ROW_WORDS;
      into.set(this.pending.subarray(at, at + ROW_WORDS), i * ROW_WORDS);
    }
  }

  truncate(n: number): void {
    if (n >= this.written) {
      this.pendingRows = Math.min(this.pendingRows, n - this.written);
      return;
    }
    this.written = n;
    this.pendingRows = 0;
    this.cached = -1;
    this.file.truncate(n * ROW_BYTES);
  }

  close(): void {
    this.file.close();
  }

  private flush(): void {
    try {
      this.file.writeAt(this.pendingBytes, this.pendingRows * ROW_BYTES, this.written * ROW_BYTES);
    } catch (err) {
      throw new StackvaultError(`cannot keep the index in a scratch file under ${this.file.parent} (${this.size} blobs so far): ${errorMessage(err)} (free space there, or point TMPDIR to a folder with room)`);
    }
    this.written += this.pendingRows;
    this.pendingRows = 0;
  }
}
