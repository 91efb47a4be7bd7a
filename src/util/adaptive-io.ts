import { close, closeSync, lstatSync, open, openSync, read, readSync, type BigIntStats } from 'node:fs';
import { lstat } from 'node:fs/promises';
import { mapConcurrent } from './concurrency.js';
import { osPath, readLinkTarget, readLinkTargetSync, readNames, readNamesSync } from './os-path.js';
import { changedSince, type FileMark } from './file-mark.js';

/**
 * The path of entry `name` (a plain name, without "/") in folder `dir`, which it keeps as
 * given: the result is normalized when `dir` is, as the walks' folders are. path.join
 * normalizes its result character by character: in a backup of 50,000 files it allocated
 * 67 MiB, an eighth of the main thread's allocations.
 */
export function entryPath(dir: string, name: string): string {
  return dir.endsWith('/') ? dir + name : `${dir}/${name}`;
}

/** What the chunker reads from: a FileHandle, or a PlainFile. */
export interface Readable {
  read(buffer: Buffer, offset: number, length: number, position: null): Promise<{ bytesRead: number }>;
}

/** A file a backup reads, on its descriptor. */
export interface SourceFile extends Readable {
  close(): Promise<void>;
  /** Whether the file differs from what the walk saw of it (see file-mark.ts). */
  changedSince(mark: FileMark): boolean;
}

/**
 * A file opened for reading on a bare descriptor: fs/promises' FileHandle adds a class, a
 * close promise and a finalizer per file, for nothing a backup or an encoder worker uses.
 */
export class PlainFile implements SourceFile {
  private constructor(private readonly fd: number) {}

  static open(path: string): Promise<PlainFile> {
    return new Promise((resolve, reject) => open(osPath(path), 'r', (err, fd) => (err ? reject(err) : resolve(new PlainFile(fd)))));
  }

  changedSince(mark: FileMark): boolean {
    return changedSince(this.fd, mark);
  }

  read(buffer: Buffer, offset: number, length: number, position: null): Promise<{ bytesRead: number }> {
    return new Promise((resolve, reject) => read(this.fd, buffer, offset, length, position, (err, bytesRead) => (err ? reject(err) : resolve({ bytesRead }))));
  }

  close(): Promise<void> {
    return new Promise((resolve, reject) => close(this.fd, (err) => (err ? reject(err) : resolve())));
  }
}

/** A file read with blocking calls: for small files whose data is at hand, cheaper than a trip through the thread pool. */
class BlockingFile implements SourceFile {
  constructor(
    private readonly fd: number,
    private readonly timed: <T>(call: () => T) => T,
  ) {}

  changedSince(mark: FileMark): boolean {
    return changedSince(this.fd, mark);
  }

  async read(buffer: Buffer, offset: number, length: number, position: null): Promise<{ bytesRead: number }> {
    return { bytesRead: this.timed(() => readSync(this.fd, buffer, offset, length, position)) };
  }

  async close(): Promise<void> {
    closeSync(this.fd);
  }
}

/**
 * A blocking call slower than this looks like storage that makes us wait (a cold disk, an
 * SMB/NFS share) rather than a cached local file system.
 */
const SLOW_CALL_NS = 1_000_000n;
/** Judged over windows of calls: being preempted on a busy machine makes a few calls slow, slow storage makes most. */
const WINDOW = 256;
const SLOW_SHARE = 0.25;

/**
 * Whether blocking file-system calls still pay. On a local disk whose metadata and small
 * files are cached, a blocking call costs less than a trip through libuv's thread pool;
 * on a cold disk or an SMB/NFS share, blocking the one thread that does everything else
 * would serialise all I/O. `timed` runs a blocking call and watches: once a quarter of a
 * window's calls were slow, `blocking` turns false for good and callers go asynchronous.
 */
export class BlockingWhileFast {
  private asynchronous = false;
  private calls = 0;
  private slowCalls = 0;

  constructor(private readonly slowCallNs = SLOW_CALL_NS) {}

  get blocking(): boolean {
    return !this.asynchronous;
  }

  readonly timed = <T>(call: () => T): T => {
    const started = process.hrtime.bigint();
    try {
      return call();
    } finally {
      if (process.hrtime.bigint() - started > this.slowCallNs) this.slowCalls++;
      if (++this.calls === WINDOW) {
        if (this.slowCalls > WINDOW * SLOW_SHARE) this.asynchronous = true;
        this.calls = 0;
        this.slowCalls = 0;
      }
    }
  };
}

/**
 * Opens small files and stats entries for a backup with blocking calls while those are
 * fast (profiled: a 50,000-file backup went from 14.0 s to 10.6 s), asynchronously once
 * the storage turns out slow.
 */
export class AdaptiveReader {
  private readonly budget: BlockingWhileFast;

  /** `blockingUpTo`: the largest file read with blocking calls (while they are fast) */
  constructor(
    slowCallNs = SLOW_CALL_NS,
    private readonly blockingUpTo = SMALL_FILE_BYTES,
  ) {
    this.budget = new BlockingWhileFast(slowCallNs);
  }

  get blocking(): boolean {
    return this.budget.blocking;
  }

  private get timed() {
    return this.budget.timed;
  }

  async open(path: string, size: number): Promise<SourceFile> {
    if (!this.blocking || size > this.blockingUpTo) return PlainFile.open(path);
    return new BlockingFile(this.timed(() => openSync(osPath(path), 'r')), this.timed);
  }

  async lstat(path: string): Promise<BigIntStats> {
    if (!this.blocking) return lstat(osPath(path), { bigint: true });
    return this.timed(() => lstatSync(osPath(path), { bigint: true }));
  }

  /**
   * A folder's names (see readNames). A walk asks for one folder at a time, and a trip
   * through the thread pool cost some 100 µs of CPU here, a blocking call a tenth of that.
   */
  async names(dir: string): Promise<string[]> {
    if (!this.blocking) return readNames(dir);
    return this.timed(() => readNamesSync(dir));
  }

  /**
   * A symlink's target, byte for byte. The walk reads a folder's links one after another:
   * /usr's 3,085 took 300 ms so through the thread pool, 15 ms with blocking calls.
   */
  async readLink(path: string): Promise<string> {
    if (!this.blocking) return readLinkTarget(path);
    return this.timed(() => readLinkTargetSync(path));
  }

  /**
   * The entries of one folder, each what `keep` takes of its stat, or the error that stat
   * gave. While blocking calls pay, one loop without a promise per entry (a no-change
   * backup is mostly this).
   */
  async lstatAll<T>(dir: string, names: readonly string[], concurrency: number, keep: (st: BigIntStats) => T): Promise<Array<T | NodeJS.ErrnoException>> {
    const one = (name: string) => this.lstat(entryPath(dir, name)).then(keep, (err: NodeJS.ErrnoException) => err);
    if (!this.blocking) return mapConcurrent(names, concurrency, one);
    const stats: Array<T | NodeJS.ErrnoException> = [];
    for (let i = 0; i < names.length; i++) {
      if (!this.blocking) return stats.concat(await mapConcurrent(names.slice(i), concurrency, one));
      try {
        stats.push(keep(this.timed(() => lstatSync(osPath(entryPath(dir, names[i]!)), { bigint: true }))));
      } catch (err) {
        stats.push(err as NodeJS.ErrnoException);
      }
    }
    return stats;
  }
}

/** Files up to this size are read in one blocking call; larger ones overlap reading with the rest of the work. */
export const SMALL_FILE_BYTES = 256 * 1024;
