import { closeSync, ftruncateSync, mkdtempSync, openSync, readSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** A file dropped without close() (a long-lived process makes many) still gives its space back. */
const closeForgotten = new FinalizationRegistry<number>((fd) => {
  try {
    closeSync(fd);
  } catch {
    // closed already
  }
});

/**
 * Scratch space on disk for this process alone: a file created in the temporary folder and
 * unlinked at once, so its space comes back when the process ends however it ends (a
 * SIGKILL, a power cut) and nothing is ever left for anyone to clean up. Reads and writes
 * are blocking and go through the page cache.
 */
export class AnonymousFile {
  private readonly fd: number;

  /** Throws when the folder takes no file. */
  constructor(readonly parent = tmpdir()) {
    const dir = mkdtempSync(join(parent, 'stackvault-scratch-'));
    try {
      this.fd = openSync(join(dir, 'scratch'), 'w+', 0o600);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    closeForgotten.register(this, this.fd, this);
  }

  writeAt(bytes: Uint8Array, length: number, position: number): void {
    let done = 0;
    while (done < length) done += writeSync(this.fd, bytes, done, length - done, position + done);
  }

  /** Exactly `length` bytes at `position`, or an error when the file ends first. */
  readAt(into: Uint8Array, length: number, position: number): void {
    let got = 0;
    while (got < length) {
      const bytes = readSync(this.fd, into, got, length - got, position + got);
      if (bytes === 0) throw new Error(`scratch file ended at ${position + got} of ${position + length}`);
      got += bytes;
    }
  }

  truncate(bytes: number): void {
    ftruncateSync(this.fd, bytes);
  }

  close(): void {
    closeForgotten.unregister(this);
    closeSync(this.fd);
  }
}
