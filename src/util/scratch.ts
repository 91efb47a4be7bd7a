/**
 * Memory a thread reuses for bytes it holds only briefly (a blob between its decoding and
 * its write, a batch's stored bytes between their read and their decoding). Fresh memory
 * costs a page fault per 4 KiB the first time it is touched, about 10 µs each on this
 * kind of virtual machine: a restore of 787 MB faulted in 120,000 pages, over a second of
 * CPU, most of them for blobs' content that was written out at once and dropped.
 */
export class Scratch {
  private buf: Buffer | undefined;

  /**
   * `size` bytes of this scratch, whatever they held before: valid until the next take().
   * It grows to the largest size asked for and keeps it (a blob, a batch: a few MiB).
   */
  take(size: number): Buffer {
    if (!this.buf || this.buf.length < size) {
      // Doubling spares the copies of growing one blob size at a time.
      this.buf = Buffer.allocUnsafeSlow(Math.max(size, Math.min(2 * (this.buf?.length ?? 0), 64 * 1024 * 1024)));
    }
    return this.buf.subarray(0, size);
  }

  /**
   * take(size) for sizes up to 16 MiB (a blob is at most 8), else undefined: a size read
   * from a damaged or forged index must not make the scratch that large for good.
   */
  takeUpTo16MiB(size: number): Buffer | undefined {
    return size <= 16 * 1024 * 1024 ? this.take(size) : undefined;
  }
}
