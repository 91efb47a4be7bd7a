import { closeSync, fchmodSync, fchownSync, futimesSync, lstatSync, openSync, rmSync, unlinkSync } from 'node:fs';
import { chmod, lchown, lutimes, utimes } from 'node:fs/promises';
import { DIRECT_RESTORE_MIN_BYTES, openForDirectWritesSync, writeAtSync } from '../util/direct-io.js';

/** What a restore applies to a path once its content is in place. */
export interface RestorableMetadata {
  type: string;
  mode: number;
  uid: number;
  gid: number;
  /** nanoseconds since the epoch, decimal */
  mtime: string;
}

const canChown = typeof process.getuid === 'function' && process.getuid() === 0;

/**
 * Seconds as a double for utimes/lutimes, which take nothing finer. A double near today's
 * epoch carries about a quarter of a microsecond, and libuv truncates it to nanoseconds,
 * so aiming at the exact microsecond can land one nanosecond short of it. Aiming at the
 * middle of the microsecond restores it exactly; finer digits cannot be restored.
 */
export function nsToSeconds(ns: string): number {
  const big = BigInt(ns);
  const seconds = big / 1_000_000_000n;
  const micros = (big % 1_000_000_000n) / 1000n;
  return Number(seconds) + (Number(micros) * 1000 + 500) / 1e9;
}

/**
 * Owner (only as root, like tar and restic), mode, then times last: chmod and chown
 * would otherwise not disturb mtime, but writing does, so callers finish content first.
 */
export async function applyMetadata(path: string, meta: RestorableMetadata): Promise<void> {
  if (canChown) await lchown(path, meta.uid, meta.gid);
  const seconds = nsToSeconds(meta.mtime);
  if (meta.type === 'symlink') {
    await lutimes(path, seconds, seconds);
    return;
  }
  await chmod(path, meta.mode);
  await utimes(path, seconds, seconds);
}

/**
 * A small file whose content the caller has verified, with its metadata, in blocking
 * calls on one descriptor: created under its name (what was there goes first when
 * `replaceExisting`), written, owner, mode and times set. No name ever holds data that
 * failed its check; a temporary name and a rename would double the directory updates,
 * which are most of a small file's cost.
 */
export function writeSmallFile(dest: string, data: Buffer, meta: RestorableMetadata, replaceExisting: boolean): void {
  if (replaceExisting) {
    try {
      if (lstatSync(dest).isDirectory()) rmSync(dest, { recursive: true, force: true });
      else unlinkSync(dest);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
  }
  const fd = openSync(dest, 'wx', 0o600);
  try {
    // A larger one's whole blocks go past the page cache where the file system allows (see direct-io.ts).
    const directFd = data.length >= DIRECT_RESTORE_MIN_BYTES ? openForDirectWritesSync(dest) : undefined;
    try {
      writeAtSync(fd, directFd, data, 0);
    } finally {
      if (directFd !== undefined) closeSync(directFd);
    }
    if (canChown) fchownSync(fd, meta.uid, meta.gid);
    fchmodSync(fd, meta.mode);
    const seconds = nsToSeconds(meta.mtime);
    futimesSync(fd, seconds, seconds);
  } catch (err) {
    closeSync(fd);
    unlinkSync(dest);
    throw err;
  }
  closeSync(fd);
}
