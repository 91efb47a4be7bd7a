import { fstatSync } from 'node:fs';

/**
 * What a backup's walk saw of a file before reading it: its size and its change time. A
 * write to the file (or a truncation) moves its change time, whatever it does to the
 * modification time, and an append its size too. Compared with the file's descriptor
 * after the read, a difference means the bytes read may mix the file's old content with
 * its new: what tar reports as "file changed as we read it" and borg as status C. One
 * fstat per file read (about 4 µs here); the walk's own stat is the other side.
 *
 * The kernel keeps file times at the granularity of its clock tick (a few milliseconds on
 * most systems): a write in the tick of the walk's stat that keeps the size goes unseen,
 * as it does for tar and borg.
 */
export interface FileMark {
  readonly size: number;
  /** as fstatSync gives it: seconds * 1e3 + nanoseconds / 1e6, in a double */
  readonly ctimeMs: number;
}

/** The mark of a file whose walk saw `size` bytes and a change time of `ctimeNs` (nanoseconds, as a tree node records them). */
export function markOf(size: number, ctimeNs: string): FileMark {
  // Computed as Node computes ctimeMs from the kernel's seconds and nanoseconds, so that
  // the same time gives the same double.
  const seconds = ctimeNs.length > 9 ? Number(ctimeNs.slice(0, -9)) : 0;
  return { size, ctimeMs: seconds * 1e3 + Number(ctimeNs.slice(-9)) / 1e6 };
}

/** Whether the open file `fd` differs from `mark`: it changed after the walk saw it. */
export function changedSince(fd: number, mark: FileMark): boolean {
  const st = fstatSync(fd);
  return st.size !== mark.size || st.ctimeMs !== mark.ctimeMs;
}
