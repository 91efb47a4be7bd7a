import type { Backend } from './backends/backend.js';
import { objectKey } from './layout.js';

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
    const start = Math.floor(offset / WINDOW_BYTES) * WINDOW_BYTES;
    const name = `${packId}:${start}`;
    let window = this.windows.get(name);
    if (window && offset + length <= window.start + window.length) {
      this.windows.delete(name);
      this.windows.set(name, window);
    } else {
      const end = Math.max(offset + length, Math.min(start + WINDOW_BYTES, this.blobsEnd(packId)));
      const fetched: Window = { start, length: end - start, data: this.backend.get(key, { offset: start, length: end - start }) };
      // A failed read is not kept: the next request for the window tries again.
      fetched.data.catch(() => this.forget(name, fetched));
      this.forget(name, window);
      this.windows.set(name, fetched);
      this.cachedBytes += fetched.length;
      this.evict();
      window = fetched;
    }
    let data: Buffer;
    try {
      data = await window.data;
    } catch {
      // A pack cut short (or a window that cannot be read) fails only the blobs it lost: this one on its own.
      return this.backend.get(key, { offset, length });
    }
    const blob = data.subarray(offset - window.start, offset - window.start + length);
    // A view that spans its whole memory could be transferred to a worker thread, which would
    // take the window from under every other reader: such a view goes out as a copy.
    return blob.byteOffset === 0 && blob.length === blob.buffer.byteLength ? Buffer.from(blob) : blob;
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
