import type { Backend } from '../backends/backend.js';
import { objectKey } from '../format/layout.js';

/** Bytes of a pack read at once for small blobs, and the most such windows kept. */
const WINDOW_BYTES = 4 * 1024 * 1024;
const CACHED_BYTES = 96 * 1024 * 1024;

interface Window {
  start: number;
  length: number;
  data: Promise<Buffer>;
}

/**
 * Reads blobs from a network backend (S3, Azure, rclone) in few large ranged requests: a
 * small blob brings the 4 MiB window of its pack around it, and the blobs after it (a
 * restore reads a pack's blobs in about the order a backup wrote them) come from memory.
 * One request per blob made a restore through rclone ~65x slower than restic's. Memory is
 * bounded: the least recently used windows go past CACHED_BYTES. A folder repository
 * does not need this: its reads go through the page cache, or straight from the pack files.
 */
export class PackWindows {
  /** `${pack}:${start}` -> window; Map order is the order of last use */
  private readonly windows = new Map<string, Window>();
  private cachedBytes = 0;

  constructor(
    private readonly backend: Backend,
    /** where a pack's blobs end (its header follows): no window reaches past it */
    private readonly blobsEnd: (packId: string) => number,
  ) {}

  async read(packId: string, offset: number, length: number): Promise<Buffer> {
    const key = objectKey('data', packId);
    if (length >= WINDOW_BYTES / 2) return this.backend.get(key, { offset, length });
    const first = Math.floor(offset / WINDOW_BYTES) * WINDOW_BYTES;
    // A blob across a window's end takes its tail from the next window: extending the first
    // window instead read most of it again (45 MB fetched for a 24 MB repository).
    const windows: Window[] = [];
    for (let start = first; start < offset + length; start += WINDOW_BYTES) windows.push(this.window(packId, start));
    // Reads that went from one window to the next are reading the pack in order, as a
    // restore does: the window after is fetched meanwhile, so the next read need not wait
    // for a round trip. A restore of a few files from many packs reads no more than it needs.
    const after = first + windows.length * WINDOW_BYTES;
    if (this.windows.has(`${packId}:${first - WINDOW_BYTES}`) && after < this.blobsEnd(packId)) this.window(packId, after);
    let pieces: Buffer[];
    try {
      pieces = await Promise.all(windows.map(async (w) => (await w.data).subarray(Math.max(0, offset - w.start), Math.min(w.length, offset + length - w.start))));
    } catch {
      // A pack cut short (or a window that cannot be read) fails only the blobs it lost: this one on its own.
      return this.backend.get(key, { offset, length });
    }
    const blob = pieces.length > 1 ? Buffer.concat(pieces) : pieces[0]!;
    // An index that places a blob past where the pack's other blobs end: read as it says.
    if (blob.length !== length) return this.backend.get(key, { offset, length });
    if (pieces.length > 1) return blob;
    // A view that spans its whole memory could be transferred to a worker thread, which would
    // take the window from under every other reader: such a view goes out as a copy.
    return blob.byteOffset === 0 && blob.length === blob.buffer.byteLength ? Buffer.from(blob) : blob;
  }

  /** The window of packId at start (up to where its blobs end), fetched unless cached. */
  private window(packId: string, start: number): Window {
    const name = `${packId}:${start}`;
    const cached = this.windows.get(name);
    if (cached) {
      this.windows.delete(name);
      this.windows.set(name, cached);
      return cached;
    }
    const length = Math.min(WINDOW_BYTES, this.blobsEnd(packId) - start);
    const fetched: Window = { start, length, data: this.backend.get(objectKey('data', packId), { offset: start, length }) };
    // A failed read is not kept: the next request for the window tries again.
    fetched.data.catch(() => this.forget(name, fetched));
    this.windows.set(name, fetched);
    this.cachedBytes += fetched.length;
    this.evict();
    return fetched;
  }

  private forget(name: string, window: Window | undefined): void {
    if (!window || this.windows.get(name) !== window) return;
    this.windows.delete(name);
    this.cachedBytes -= window.length;
  }

  private evict(): void {
    for (const [name, window] of this.windows) {
      if (this.cachedBytes <= CACHED_BYTES) return;
      this.forget(name, window);
    }
  }
}
