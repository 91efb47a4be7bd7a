import { constants, open as openFd, openSync, read as readFd, writeSync } from 'node:fs';
import { UsageError } from './errors.js';
import { osPath } from './os-path.js';

/**
 * Writing and reading past the page cache (O_DIRECT): the folder backend's packs, and
 * restored files.
 *
 * A pack is written once and read rarely (a restore, a check). Written through the page
 * cache, every pack takes fresh memory from the kernel and pushes out what the machine's
 * applications had cached there: on a virtual machine that hands freed memory back to its
 * host, filling fresh page cache cost 2.3-2.8 s of kernel time per GB, against 0.4 s for
 * the same bytes written directly (measured: 512 MiB of 16 MiB packs with fsync, 0.74-1.5 s
 * against 0.03-0.05 s of system time). Borg drops what it writes from the page cache for the
 * same reason (posix_fadvise, which Node does not offer).
 *
 * Restored files go past it too, but for the partial blocks at the ends of each write. A
 * restore writes each byte once and reads none back; through the page cache, a restore of
 * 1 GiB took 1 GiB of fresh memory (on this VM, 0.5-1.3 s more system time for its 512 MiB
 * of large files alone), and a large restore pushed the machine's working set out of it.
 * The data is on the device when the restore ends, where buffered writes would have left
 * it to the kernel's write-back: on a slow disk a small restore takes longer, a large one
 * (beyond the kernel's dirty limits) waits for the disk either way. So only a restore of
 * 1 GiB and more writes directly (DIRECT_RESTORE_MIN_TOTAL_BYTES in restore.ts).
 *
 * The folder backend's large reads (a whole pack for check) go past it too, or each would
 * fill the cache with a pack just written past it. A restore's reads of pack files do not
 * (see pack-file-reader.ts): it reads packs a few blobs at a time, and the kernel's
 * read-ahead then brings the next ones while the blobs before are decoded.
 *
 * O_DIRECT wants memory, file offsets and lengths aligned to the device's logical block
 * size. Node's Buffers are not aligned, WebAssembly memory is (it is mapped in whole pages),
 * so the bytes go through aligned slots of it; the last block is padded with zeros and the
 * file truncated to its length after. Where the file system refuses O_DIRECT (EINVAL), the
 * caller writes and reads through the page cache instead.
 */

/** 4096 covers every logical block size up to 4 KiB: the alignment O_DIRECT can demand. */
export const DIRECT_ALIGNMENT = 4096;
/** bytes copied into a slot before they are written: a few system calls per pack */
const SLOT_BYTES = 4 * 1024 * 1024;
const WASM_PAGE_BYTES = 65536;

/**
 * O_DIRECT where the platform has it (Linux), else 0: the caller then never tries.
 * STACKVAULT_DIRECT_IO=off keeps everything in the page cache, as restic's and Borg's
 * restores do: for a slow disk, where a small restore should return before its data is
 * written out.
 */
export const O_DIRECT: number = process.env.STACKVAULT_DIRECT_IO === 'off' ? 0 : (constants.O_DIRECT ?? 0);

/** Refuses a STACKVAULT_DIRECT_IO other than on or off (the CLI asks before any work). */
export function checkDirectIoSetting(setting = process.env.STACKVAULT_DIRECT_IO): void {
  if (setting !== undefined && setting !== '' && setting !== 'on' && setting !== 'off') {
    throw new UsageError(`STACKVAULT_DIRECT_IO=${setting}: expected on or off`);
  }
}

/** Objects at least this large bypass the page cache; smaller ones (trees, indexes) are read back soon. */
export const DIRECT_WRITE_MIN_BYTES = 1024 * 1024;
/** The folder backend's reads at least this large bypass it: at most a block's worth more is read at each end. */
export const DIRECT_READ_MIN_BYTES = 64 * 1024;
/** Restored files at least this large go past it, but for the partial blocks at their ends. */
export const DIRECT_RESTORE_MIN_BYTES = 64 * 1024;

/** cleared for this thread once a file system refuses direct writes to an open file */
let directFileWrites = O_DIRECT !== 0;

/** The one WebAssembly API used here; TypeScript declares it only with the DOM's types. */
declare const WebAssembly: { Memory: new (descriptor: { initial: number; maximum?: number }) => { buffer: ArrayBuffer } };

/**
 * Aligned slots, reused: each is touched once, then later packs need no fresh memory. There
 * are as many of a size as reads and writes were ever in flight at once in this thread.
 */
const freeSlots = new Map<number, Buffer[]>();

/** Aligned memory of `bytes` (a multiple of 64 KiB), for direct reads and writes: give it back with giveSlot(). */
export function takeSlot(bytes = SLOT_BYTES): Buffer {
  const reused = freeSlots.get(bytes)?.pop();
  if (reused) return reused;
  const pages = bytes / WASM_PAGE_BYTES;
  try {
    return Buffer.from(new WebAssembly.Memory({ initial: pages, maximum: pages }).buffer);
  } catch (err) {
    // Each memory reserves address space of its own, which a limit (ulimit -v) may refuse: then no direct I/O.
    throw Object.assign(new Error(`no aligned memory for direct I/O: ${(err as Error).message}`), { code: 'ENOTSUP' });
  }
}

/** Memory from takeSlot() back for the next caller; the caller no longer uses it. */
export function giveSlot(slot: Buffer): void {
  const free = freeSlots.get(slot.length);
  if (free) free.push(slot);
  else freeSlots.set(slot.length, [slot]);
}

/** Whether an error says the file system or device does not do direct I/O as asked. */
export function directIoRefused(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException).code;
  return code === 'EINVAL' || code === 'EOPNOTSUPP' || code === 'ENOTSUP';
}

function pread(fd: number, buf: Buffer, length: number, position: number): Promise<number> {
  return new Promise((resolve, reject) => readFd(fd, buf, 0, length, position, (err, n) => (err ? reject(err) : resolve(n))));
}

export const alignUp = (n: number): number => Math.ceil(n / DIRECT_ALIGNMENT) * DIRECT_ALIGNMENT;

/** The aligned read that brings the bytes at `position` (of `length` still wanted) into a slot. */
function alignedRead(position: number, length: number): { from: number; skip: number; bytes: number } {
  const skip = position % DIRECT_ALIGNMENT;
  return { from: position - skip, skip, bytes: Math.min(SLOT_BYTES, alignUp(skip + length)) };
}

/**
 * Reads up to `length` bytes at `position` of `fd`, a file opened with O_DIRECT, into
 * `target` from its start, through an aligned slot: whatever the position and length.
 * Returns how many were read, fewer only where the file ends.
 */
export async function readDirect(fd: number, target: Buffer, position: number, length: number): Promise<number> {
  const slot = takeSlot();
  try {
    let done = 0;
    while (done < length) {
      const { from, skip, bytes } = alignedRead(position + done, length - done);
      const got = await pread(fd, slot, bytes, from);
      if (got <= skip) break;
      done += slot.copy(target, done, skip, Math.min(got, skip + length - done));
    }
    return done;
  } finally {
    giveSlot(slot);
  }
}

/**
 * Opens `path`, a file being written (already open, or just created), a second time for
 * direct writes. Undefined where the file system refuses them: the caller then writes
 * through its first descriptor only.
 */
export function openForDirectWritesSync(path: string): number | undefined {
  if (!directFileWrites) return undefined;
  try {
    return openSync(osPath(path), constants.O_WRONLY | O_DIRECT);
  } catch (err) {
    if (!directIoRefused(err)) throw err;
    directFileWrites = false;
    return undefined;
  }
}

/** openForDirectWritesSync, without blocking the thread. */
export async function openForDirectWrites(path: string): Promise<number | undefined> {
  if (!directFileWrites) return undefined;
  return new Promise((resolve, reject) =>
    openFd(osPath(path), constants.O_WRONLY | O_DIRECT, (err, fd) => {
      if (!err) return resolve(fd);
      if (!directIoRefused(err)) return reject(err);
      directFileWrites = false;
      resolve(undefined);
    }),
  );
}

/**
 * Writes `data` at `position` of a file open as `fd` and, where direct writes are allowed,
 * as `directFd` too: the whole blocks within go past the page cache through an aligned
 * slot, the partial blocks at either end through `fd` (another write may fill the rest of
 * those blocks; the kernel keeps both kinds coherent). Blocking calls, for worker threads.
 */
export function writeAtSync(fd: number, directFd: number | undefined, data: Buffer, position: number): void {
  const head = Math.min(data.length, (DIRECT_ALIGNMENT - (position % DIRECT_ALIGNMENT)) % DIRECT_ALIGNMENT);
  const middle = directFd === undefined || !directFileWrites ? 0 : Math.floor((data.length - head) / DIRECT_ALIGNMENT) * DIRECT_ALIGNMENT;
  let written = 0;
  if (middle > 0) {
    try {
      written = writeWholeBlocksSync(directFd!, data.subarray(head, head + middle), position + head);
    } catch (err) {
      if (!directIoRefused(err)) throw err;
      // Opened for direct writes, but refused them: through the page cache from now on.
      directFileWrites = false;
    }
  }
  const buffered = (from: number, to: number) => {
    for (let at = from; at < to; ) at += writeSync(fd, data, at, to - at, position + at);
  };
  if (written === middle) {
    buffered(0, head);
    buffered(head + middle, data.length);
  } else {
    buffered(0, data.length);
  }
}

/** Whole blocks at an aligned position, through slots; returns how many bytes, all of them or throws. */
function writeWholeBlocksSync(fd: number, blocks: Buffer, position: number): number {
  const slot = takeSlot();
  try {
    for (let at = 0; at < blocks.length; ) {
      const n = blocks.copy(slot, 0, at, Math.min(blocks.length, at + slot.length));
      for (let done = 0; done < n; ) {
        const wrote = writeSync(fd, slot, done, n - done, position + at + done);
        if (wrote === 0) throw new Error(`short write: ${done} of ${n} bytes`);
        done += wrote;
      }
      at += n;
    }
    return blocks.length;
  } finally {
    giveSlot(slot);
  }
}
