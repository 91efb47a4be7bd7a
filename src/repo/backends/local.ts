import { randomBytes } from 'node:crypto';
import { close as closeFd, constants, fstat, open as openFd, read as readFd } from 'node:fs';
import { chmod, link, lstat, mkdir, open, readdir, stat, unlink, writeFile, type FileHandle } from 'node:fs/promises';
import { dirname, join, relative, sep } from 'node:path';
import { ObjectNotFoundError, StackvaultError, UsageError, describeSystemError, errorMessage } from '../../util/errors.js';
import { setImmutable } from './immutable-flag.js';
import type { Backend, ByteRange, ObjectFile, ObjectInfo } from './backend.js';
import { FileAppender } from '../../util/file-appender.js';
import { DIRECT_READ_MIN_BYTES, DIRECT_WRITE_MIN_BYTES, O_DIRECT, directIoRefused, readDirect } from '../../util/direct-io.js';
import { alreadyStored, truncated } from './objects.js';

const TMP_DIR = 'tmp';
const MAX_OPEN_OBJECTS = 32;
const OPEN_OBJECT_IDLE_MS = 2000;
const READ_WINDOW = 1024 * 1024;
/**
 * Windows kept, in bytes. A window is no longer than what its object holds from its start:
 * a backup's walk reads the previous snapshot's trees from every tree pack written since
 * (one or more a backup), most of them small, and 1 MiB windows of them, sixteen at most,
 * were read and made again and again (see docs/performance.md, tenth session).
 */
const WINDOW_BYTES = 16 * 1024 * 1024;

/** A pack or other object kept open for ranged reads, with its size. */
interface OpenObject {
  fd: Promise<number>;
  size: Promise<number>;
  users: number;
  lastUse: number;
}

/**
 * A repository in a folder: a local disk or an SMB/NFS share mounted on the host.
 *
 * put() writes a temporary file, fsyncs it, makes it read-only, then hard-links it to its
 * final name. link(2) fails with EEXIST instead of replacing, which makes it a no-replace
 * rename that works on local file systems and NFS alike; the folder is fsynced after.
 */
export class LocalBackend implements Backend {
  readonly location: string;
  private readonly knownDirs = new Set<string>();
  /**
   * Objects kept open for ranged reads: a restore or check reads many blobs from few packs,
   * and opening and closing the pack around each blob cost more than reading it. Objects
   * never change once written, so an open descriptor always reads what the name holds.
   */
  private readonly openObjects = new Map<string, OpenObject>();
  private sweeper: NodeJS.Timeout | undefined;
  /** recently read windows of objects, for small ranged reads, least recently used first */
  private readonly windows = new Map<string, { data: Promise<Buffer>; bytes: number }>();
  private windowBytes = 0;
  private lastRead = 0;

  /**
   * @param directIo write and read large objects past the page cache where the file system
   * allows (see direct-io.ts); false keeps everything in it
   */
  constructor(
    private readonly root: string,
    { directIo = O_DIRECT !== 0 }: { directIo?: boolean } = {},
  ) {
    this.location = root;
    this.base = join(root, '/');
    this.directIo = directIo;
  }

  /** the root, normalized and ending in "/": an object's path is this and its key */
  private readonly base: string;

  /** cleared for good once the file system refuses O_DIRECT */
  private directIo: boolean;
  /** every object stored gets the file system's immutable flag (see useImmutableFlag) */
  private immutableFlag = false;

  /**
   * From now on every object stored gets the file system's immutable flag, and a deletion
   * (prune's, after the immutability period) lifts it first. Refused, naming why, when not
   * root or when the file system has no such flag: tried on a probe file first. With
   * `readOnly` (opening a flagged repository), someone who is not root may go on: they
   * cannot write into root's folder anyway, and reading needs no flag.
   */
  async useImmutableFlag({ readOnly = false }: { readOnly?: boolean } = {}): Promise<void> {
    if (this.immutableFlag) return;
    if (process.getuid?.() !== 0) {
      if (readOnly) return;
      throw new UsageError(`the immutable flag (chattr +i) of ${this.root} needs root`);
    }
    await mkdir(join(this.root, TMP_DIR), { recursive: true });
    const probe = join(this.root, TMP_DIR, `${randomBytes(8).toString('hex')}.flag-probe`);
    await writeFile(probe, '');
    try {
      await setImmutable(probe, true);
      await setImmutable(probe, false);
    } catch (err) {
      await setImmutable(probe, false).catch(() => undefined);
      throw new UsageError(`the file system of ${this.root} cannot mark files immutable: ${errorMessage(err)}`);
    } finally {
      await unlink(probe).catch(() => undefined);
    }
    this.immutableFlag = true;
  }

  async prepare(): Promise<void> {
    // A repository goes into a new or empty folder only: never scatter objects among someone's files.
    const existing = await readdir(this.root).catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') return [];
      throw describeSystemError(err, `cannot use ${this.root} for a repository`);
    });
    if (existing.length > 0) {
      throw new StackvaultError(`${this.root} is not empty and holds no repository: give a new or empty folder`);
    }
    try {
      await mkdir(join(this.root, TMP_DIR), { recursive: true });
    } catch (err) {
      throw describeSystemError(err, `cannot create repository folder ${this.root}`);
    }
  }

  localFile(key: string): string {
    return this.path(key);
  }

  private path(key: string): string {
    if (key.includes('..') || key.startsWith('/')) throw new Error(`invalid object key ${key}`);
    // Not path.join, which normalizes character by character: a restore reads a pack's file
    // once per blob (6 MiB of a 9,600-file restore's 72 MiB of allocations on its main thread).
    return this.base + key;
  }

  private async ensureDir(dir: string): Promise<void> {
    if (this.knownDirs.has(dir)) return;
    try {
      await mkdir(dir, { recursive: true });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      // Node's recursive mkdir says ENOENT when it could not make a parent (a full disk's
      // ENOSPC): one level at a time, the error names the real reason.
      for (const level of ancestry(this.root, dir)) {
        await mkdir(level).catch((e: NodeJS.ErrnoException) => {
          if (e.code !== 'EEXIST') throw e;
        });
      }
    }
    this.knownDirs.add(dir);
  }

  async put(key: string, data: Uint8Array): Promise<{ created: boolean }> {
    return this.putParts(key, [data]);
  }

  async putParts(key: string, parts: readonly Uint8Array[]): Promise<{ created: boolean }> {
    const tmp = this.temporaryPath();
    const length = parts.reduce((n, p) => n + p.length, 0);
    try {
      await this.ensureDir(join(this.root, TMP_DIR));
      await this.writeTemporary(tmp, parts, length);
    } catch (err) {
      await unlink(tmp).catch(() => undefined);
      throw describeSystemError(err, `cannot write ${key} to ${this.root}`);
    }
    return this.storeTemporary(tmp, key, length);
  }

  /**
   * A pack written into a temporary file as its blobs come, past the page cache where the
   * file system allows, then stored as put() stores: a backup need not hold its packs in
   * memory (three of 17 MiB were a sixth of a backup's peak, docs/performance.md).
   */
  createObjectFile(): ObjectFile {
    const appender = new FileAppender(this.temporaryPath(), this.directIo, {
      directRefused: () => (this.directIo = false),
      beforeCreate: () => this.ensureDir(join(this.root, TMP_DIR)),
    });
    const failed = (err: unknown) => {
      throw describeSystemError(err, `cannot write a new object to ${this.root}`);
    };
    return {
      append: (bytes) => {
        try {
          return appender.append(bytes)?.catch(failed);
        } catch (err) {
          return failed(err);
        }
      },
      store: async (key) => {
        let length: number;
        try {
          length = await appender.finish();
        } catch (err) {
          await unlink(appender.path).catch(() => undefined);
          throw describeSystemError(err, `cannot write ${key} to ${this.root}`);
        }
        return this.storeTemporary(appender.path, key, length);
      },
      discard: async () => {
        await appender.abandon();
        await unlink(appender.path).catch(() => undefined);
      },
    };
  }

  private temporaryPath(): string {
    return join(this.root, TMP_DIR, `${randomBytes(12).toString('hex')}.upload`);
  }

  /**
   * Stores a complete, fsynced temporary file under `key`: read-only, then hard-linked to
   * its final name (never replacing one), the folder fsynced. The temporary name is gone
   * afterwards, stored or not.
   */
  private async storeTemporary(tmp: string, key: string, length: number): Promise<{ created: boolean }> {
    const final = this.path(key);
    try {
      await this.ensureDir(dirname(final));
      await chmod(tmp, 0o444);
    } catch (err) {
      await unlink(tmp).catch(() => undefined);
      throw describeSystemError(err, `cannot write ${key} to ${this.root}`);
    }
    try {
      await link(tmp, final);
    } catch (err) {
      await unlink(tmp).catch(() => undefined);
      if ((err as NodeJS.ErrnoException).code === 'EEXIST') {
        // Keys are content hashes: an existing object must be the same bytes. A size
        // mismatch means an earlier object was damaged; never paper over that.
        return alreadyStored(this.root, key, (await stat(final)).size, length);
      }
      throw describeSystemError(err, `cannot store ${key} in ${this.root}`);
    }
    await unlink(tmp).catch(() => undefined);
    // Flagged under its name only: an immutable file can be neither linked nor unlinked.
    if (this.immutableFlag) await setImmutable(final, true);
    await fsyncDir(dirname(final));
    return { created: true };
  }

  /**
   * Writes and fsyncs the temporary file, as an object file is written (`FileAppender`):
   * past the page cache for large objects unless the file system refused that once (see
   * direct-io.ts), through it for small ones.
   */
  private async writeTemporary(tmp: string, parts: readonly Uint8Array[], length: number): Promise<void> {
    const file = new FileAppender(tmp, this.directIo && length >= DIRECT_WRITE_MIN_BYTES, { directRefused: () => (this.directIo = false) });
    try {
      for (const part of parts) await file.append(part);
    } catch (err) {
      await file.abandon();
      throw err;
    }
    await file.finish();
  }

  async get(key: string, range?: ByteRange): Promise<Buffer> {
    if (range) return this.getRange(key, range);
    const file = this.path(key);
    let fh;
    try {
      fh = await open(file, 'r');
    } catch (err) {
      throw readError(err, key, this.root);
    }
    try {
      const size = (await fh.stat()).size;
      // A large object (a pack, for check --read-data) is read past the page cache, as it was
      // written; not through getRange, which would keep a third descriptor of it open.
      const whole = { offset: 0, length: size };
      const direct = this.directIo && size >= DIRECT_WRITE_MIN_BYTES ? await this.readDirectly(key, file, whole) : undefined;
      if (direct && direct.length < size) throw truncated(this.root, key, whole, direct.length);
      return direct ?? (await fh.readFile());
    } finally {
      await fh.close();
    }
  }

  private async getRange(key: string, range: ByteRange): Promise<Buffer> {
    const file = this.path(key);
    let entry = this.openObjects.get(file);
    if (!entry) {
      const fd = new Promise<number>((resolve, reject) => openFd(file, 'r', (err, fd) => (err ? reject(err) : resolve(fd))));
      entry = { fd, size: fd.then((n) => new Promise<number>((resolve, reject) => fstat(n, (err, st) => (err ? reject(err) : resolve(st.size))))), users: 0, lastUse: 0 };
      this.openObjects.set(file, entry);
    }
    // In use before anything is evicted: a new entry is the least recently used of all, and
    // evicting it closed the descriptor this read was about to use (a number that another
    // open may already have taken: the read then came from the wrong file).
    entry.users++;
    if (this.openObjects.size > MAX_OPEN_OBJECTS) this.evictIdle(MAX_OPEN_OBJECTS);
    try {
      let fd: number;
      let size: number;
      try {
        [fd, size] = await Promise.all([entry.fd, entry.size]);
      } catch (err) {
        if (this.openObjects.get(file) === entry) this.openObjects.delete(file);
        throw readError(err, key, this.root);
      }
      const start = Math.floor(range.offset / READ_WINDOW) * READ_WINDOW;
      if (range.offset + range.length <= start + READ_WINDOW) {
        // A small range comes out of a window read once: a restore reads a pack's blobs in
        // about the order they were written, and one read per blob was a system call each.
        const window = await this.window(file, key, fd, start, size);
        const from = range.offset - start;
        if (from + range.length > window.length) throw truncated(this.root, key, range, start + window.length);
        // A view, not a copy: windows are never written after their read (see Backend.get).
        return window.subarray(from, from + range.length);
      }
      const buf = (await this.readDirectly(key, file, range)) ?? (await this.readAt(key, fd, range.offset, range.length));
      if (buf.length < range.length) throw truncated(this.root, key, range, range.offset + buf.length);
      return buf;
    } finally {
      entry.users--;
      entry.lastUse = this.lastRead = Date.now();
      this.sweeper ??= setInterval(() => this.evictIdle(0, OPEN_OBJECT_IDLE_MS), OPEN_OBJECT_IDLE_MS).unref();
    }
  }

  /**
   * A large range read past the page cache (see direct-io.ts): up to its bytes, fewer only
   * where the object ends. Undefined for a small range, or where the file system refuses
   * direct reads.
   */
  private async readDirectly(key: string, file: string, range: ByteRange): Promise<Buffer | undefined> {
    if (!this.directIo || range.length < DIRECT_READ_MIN_BYTES) return undefined;
    let fh: FileHandle;
    try {
      fh = await open(file, constants.O_RDONLY | O_DIRECT);
    } catch (err) {
      if (!directIoRefused(err)) throw describeSystemError(err, `cannot read ${key} from ${this.root}`);
      this.directIo = false;
      return undefined;
    }
    try {
      const buf = Buffer.allocUnsafe(range.length);
      const done = await readDirect(fh.fd, buf, range.offset, range.length);
      return done === range.length ? buf : buf.subarray(0, done);
    } catch (err) {
      if (!directIoRefused(err)) throw describeSystemError(err, `cannot read ${key} from ${this.root}`);
      // Opened for direct reads, but refused them: through the page cache from now on.
      this.directIo = false;
      return undefined;
    } finally {
      await fh.close();
    }
  }

  /** Up to `length` bytes at `offset`: fewer only where the object ends. */
  private async readAt(key: string, fd: number, offset: number, length: number): Promise<Buffer> {
    const buf = Buffer.allocUnsafe(length);
    let done = 0;
    while (done < length) {
      const bytesRead = await new Promise<number>((resolve, reject) =>
        readFd(fd, buf, done, length - done, offset + done, (err, n) => (err ? reject(describeSystemError(err, `cannot read ${key} from ${this.root}`)) : resolve(n))),
      );
      if (bytesRead === 0) break;
      done += bytesRead;
    }
    return done === length ? buf : buf.subarray(0, done);
  }

  /** The window of an object of `size` bytes at `start` (shorter at its end), read once while recently used. */
  private window(file: string, key: string, fd: number, start: number, size: number): Promise<Buffer> {
    const name = `${file}@${start}`;
    let window = this.windows.get(name);
    if (window) {
      // Most recently used last: Map keeps insertion order.
      this.windows.delete(name);
    } else {
      const data = this.readAt(key, fd, start, Math.max(0, Math.min(READ_WINDOW, size - start)));
      window = { data, bytes: Math.min(READ_WINDOW, size - start) };
      this.windowBytes += window.bytes;
      data.catch(() => this.dropWindow(name, data));
    }
    this.windows.set(name, window);
    for (const [oldest, kept] of this.windows) {
      if (this.windowBytes <= WINDOW_BYTES || oldest === name) break;
      this.dropWindow(oldest, kept.data);
    }
    return window.data;
  }

  private dropWindow(name: string, data: Promise<Buffer>): void {
    const window = this.windows.get(name);
    if (window?.data !== data) return;
    this.windows.delete(name);
    this.windowBytes -= window.bytes;
  }

  /** Close unused descriptors: the least recently used beyond `keep`, and those idle for `idleMs`. */
  private evictIdle(keep: number, idleMs = Number.POSITIVE_INFINITY): void {
    const idle = [...this.openObjects.entries()].filter(([, e]) => e.users === 0).sort((a, b) => a[1].lastUse - b[1].lastUse);
    let excess = this.openObjects.size - keep;
    const now = Date.now();
    // Windows go with idleness too: a later read then sees the disk, not an old copy.
    if (now - this.lastRead >= idleMs) this.clearWindows();
    for (const [file, e] of idle) {
      if (excess <= 0 && now - e.lastUse < idleMs) continue;
      this.openObjects.delete(file);
      excess--;
      void e.fd.then((fd) => closeFd(fd, () => undefined), () => undefined);
    }
    if (this.openObjects.size === 0 && this.sweeper) {
      clearInterval(this.sweeper);
      this.sweeper = undefined;
    }
  }

  private clearWindows(): void {
    this.windows.clear();
    this.windowBytes = 0;
  }

  async close(): Promise<void> {
    this.clearWindows();
    this.evictIdle(0, 0);
  }

  async stat(key: string): Promise<ObjectInfo | undefined> {
    try {
      const st = await stat(this.path(key));
      return { key, size: st.size, created: st.mtime };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw describeSystemError(err, `cannot stat ${key} in ${this.root}`);
    }
  }

  async *list(prefix: string): AsyncIterable<ObjectInfo> {
    const start = this.path(prefix.replace(/\/$/, ''));
    yield* this.walk(start);
  }

  private async *walk(dir: string): AsyncIterable<ObjectInfo> {
    let entries;
    try {
      entries = await readdir(dir, { withFileTypes: true });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw describeSystemError(err, `cannot list ${dir}`);
    }
    for (const entry of entries) {
      const full = join(dir, entry.name);
      if (entry.isDirectory()) {
        yield* this.walk(full);
      } else if (entry.isFile()) {
        let st;
        try {
          st = await lstat(full);
        } catch (err) {
          // Gone since the folder was read: a prune deleted it, or a backup finished that upload.
          if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue;
          throw describeSystemError(err, `cannot list ${full}`);
        }
        yield { key: relative(this.root, full).split(sep).join('/'), size: st.size, created: st.mtime };
      }
    }
  }

  async delete(key: string): Promise<void> {
    try {
      if (this.immutableFlag && !key.startsWith(`${TMP_DIR}/`)) await setImmutable(this.path(key), false).catch(() => undefined);
      await unlink(this.path(key));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw describeSystemError(err, `cannot delete ${key}`);
    }
  }

  async staleUploads(olderThanMs: number, now: Date): Promise<ObjectInfo[]> {
    const stale: ObjectInfo[] = [];
    for await (const info of this.walk(join(this.root, TMP_DIR))) {
      if (now.getTime() - info.created.getTime() > olderThanMs) stale.push(info);
    }
    return stale;
  }

  async deleteStaleUpload(key: string): Promise<void> {
    if (!key.startsWith(`${TMP_DIR}/`)) throw new Error(`${key} is not a temporary upload`);
    await this.delete(key);
  }
}

/** `dir` and the folders between `root` and it, outermost first. */
function ancestry(root: string, dir: string): string[] {
  const levels: string[] = [];
  for (let at = dir; at.length > root.length && at !== dirname(at); at = dirname(at)) levels.unshift(at);
  return levels;
}

async function fsyncDir(dir: string): Promise<void> {
  const fh = await open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** A missing object is its own error: readers skip what prune deleted between a listing and a read. */
function readError(err: unknown, key: string, root: string): Error {
  if ((err as NodeJS.ErrnoException).code === 'ENOENT') return new ObjectNotFoundError(key, root);
  return describeSystemError(err, `cannot read ${key} from ${root}`);
}
