import { constants } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { DIRECT_ALIGNMENT, O_DIRECT, alignUp, directIoRefused, giveSlot, takeSlot } from './direct-io.js';

/** Bytes gathered before each write: a few system calls per pack, little memory per open file. */
const SLOT_BYTES = 1024 * 1024;

/**
 * A new file written front to back from appends of any size (a pack's blobs as they come),
 * through two aligned slots: one fills while the other is written, so the file's bytes
 * are never all in memory at once. Past the page cache (O_DIRECT) when `direct` and the
 * file system allows, through it otherwise (see direct-io.ts). The file is created, with
 * O_EXCL, at the first write.
 */
export class FileAppender {
  private file: Promise<FileHandle> | undefined;
  private slot: Buffer | undefined;
  private spare: Buffer | undefined;
  private filled = 0;
  /** bytes of the file handed to writes: whole slots */
  private written = 0;
  /** the last slot's write; a failure stays here and is thrown by every later append and finish */
  private writing: Promise<void> = Promise.resolve();
  /** slots are aligned memory of direct-io.ts's, to be given back; false where there was none */
  private aligned = true;
  /** the file was opened with O_DIRECT: its writes are whole blocks */
  private fileDirect = false;
  /** appends waiting for a slot, in order */
  private queue: Promise<void> | undefined;
  private done = false;

  constructor(
    readonly path: string,
    private direct: boolean,
    private readonly hooks: {
      /** told when the file system refuses direct writes: the file goes on through the page cache */
      directRefused?: () => void;
      /** runs before the file is created (its folder made) */
      beforeCreate?: () => Promise<void>;
    } = {},
  ) {}

  /** Bytes appended so far. */
  get length(): number {
    return this.written + this.filled;
  }

  /**
   * Appends `bytes`. Undefined when they were copied at once; otherwise a promise, resolved
   * once they are (the other slot was still being written): the caller leaves `bytes`
   * unchanged until then. Appends made meanwhile follow in order.
   */
  append(bytes: Uint8Array): Promise<void> | undefined {
    if (this.done) throw new Error(`${this.path} is finished`);
    const slot = (this.slot ??= this.takeSlot());
    if (!this.queue && this.filled + bytes.length <= slot.length) {
      slot.set(bytes, this.filled);
      this.filled += bytes.length;
      return undefined;
    }
    const appended = (this.queue ?? Promise.resolve()).then(() => this.copy(bytes));
    this.queue = appended;
    appended.then(
      () => this.queue === appended && (this.queue = undefined),
      () => undefined,
    );
    return appended;
  }

  private async copy(bytes: Uint8Array): Promise<void> {
    for (let at = 0; at < bytes.length; ) {
      if (this.filled === this.slot!.length) await this.flush();
      const n = Math.min(bytes.length - at, this.slot!.length - this.filled);
      this.slot!.set(bytes.subarray(at, at + n), this.filled);
      this.filled += n;
      at += n;
    }
  }

  /** Writes the full slot while the other one fills; waits for the other's write first. */
  private async flush(): Promise<void> {
    await this.writing;
    const full = this.slot!;
    const bytes = this.filled;
    const position = this.written;
    this.slot = this.spare ?? this.takeSlot();
    this.spare = undefined;
    this.filled = 0;
    this.written += bytes;
    this.writing = this.write(full, bytes, position).then(() => {
      this.spare = full;
    });
    // Seen by the next flush or finish, which await it; not an unhandled rejection meanwhile.
    this.writing.catch(() => undefined);
  }

  private async write(slot: Buffer, bytes: number, position: number): Promise<void> {
    let file = await (this.file ??= this.create());
    // Direct writes given up since the file was opened (no aligned memory for a slot).
    if (this.fileDirect && !this.direct) file = await this.reopenBuffered(file);
    // O_DIRECT writes whole blocks: the last one is padded with zeros, cut off by finish().
    const length = this.fileDirect ? alignUp(bytes) : bytes;
    slot.fill(0, bytes, length);
    try {
      await writeAll(file, slot, length, position);
    } catch (err) {
      if (!this.fileDirect || !directIoRefused(err)) throw err;
      // Opened, but the device wants other alignment: this and later writes through the page cache.
      this.direct = false;
      this.hooks.directRefused?.();
      await writeAll(await this.reopenBuffered(file), slot, bytes, position);
    }
  }

  private async reopenBuffered(direct: FileHandle): Promise<FileHandle> {
    const buffered = await open(this.path, constants.O_WRONLY);
    this.file = Promise.resolve(buffered);
    this.fileDirect = false;
    await direct.close();
    return buffered;
  }

  private takeSlot(): Buffer {
    if (this.aligned) {
      try {
        return takeSlot(SLOT_BYTES);
      } catch (err) {
        if (!directIoRefused(err)) throw err;
        // No address space for aligned memory (ulimit -v): through the page cache, from plain memory.
        this.aligned = this.direct = false;
        this.hooks.directRefused?.();
      }
    }
    return Buffer.allocUnsafeSlow(SLOT_BYTES);
  }

  private async create(): Promise<FileHandle> {
    await this.hooks.beforeCreate?.();
    const flags = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL;
    if (!this.direct) return open(this.path, flags, 0o600);
    try {
      const file = await open(this.path, flags | O_DIRECT, 0o600);
      this.fileDirect = true;
      return file;
    } catch (err) {
      if (!directIoRefused(err)) throw err;
      this.direct = false;
      this.hooks.directRefused?.();
      // Some file systems (ramfs) create the file before they refuse O_DIRECT.
      return open(this.path, constants.O_WRONLY | constants.O_CREAT, 0o600);
    }
  }

  /** Writes what is left and makes the file durable (fsync); returns its length. */
  async finish(): Promise<number> {
    this.done = true;
    try {
      await this.queue;
      await this.writing;
      const length = this.length;
      // An empty file is created too.
      if (this.filled > 0 || !this.file) await this.write((this.slot ??= this.takeSlot()), this.filled, this.written);
      const file = await this.file!;
      // Where the last write was padded; a no-op otherwise.
      if (length % DIRECT_ALIGNMENT !== 0) await file.truncate(length);
      await file.sync();
      return length;
    } finally {
      await this.close();
    }
  }

  /** Stops writing: the file stays as far as it was written, for the caller to remove. */
  async abandon(): Promise<void> {
    this.done = true;
    await this.queue?.catch(() => undefined);
    await this.writing.catch(() => undefined);
    await this.close();
  }

  private async close(): Promise<void> {
    const file = this.file;
    this.file = undefined;
    if (this.aligned) for (const slot of [this.slot, this.spare]) if (slot) giveSlot(slot);
    this.slot = this.spare = undefined;
    await (await file?.catch(() => undefined))?.close().catch(() => undefined);
  }
}

async function writeAll(file: FileHandle, buffer: Buffer, length: number, position: number): Promise<void> {
  for (let done = 0; done < length; ) {
    const { bytesWritten } = await file.write(buffer, done, length - done, position + done);
    // A short write (the disk filling up) goes on with the rest, which then fails with the reason.
    if (bytesWritten === 0) throw new Error(`short write to a file: ${done} of ${length} bytes`);
    done += bytesWritten;
  }
}
