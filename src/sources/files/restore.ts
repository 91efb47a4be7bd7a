import { closeSync, constants, fchmodSync, fchownSync, fstatSync, futimesSync, lchownSync, lstatSync, lutimesSync, openSync, rmSync, symlinkSync, unlinkSync } from 'node:fs';
import { chmod, lchown, lstat, lutimes, open } from 'node:fs/promises';
import { DIRECT_RESTORE_MIN_BYTES, openForDirectWritesSync, writeAtSync } from '../../util/direct-io.js';
import { IntegrityError } from '../../util/errors.js';
import { osPath } from '../../util/os-path.js';

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
const ownUid = process.geteuid?.() ?? -1;
const ownGid = process.getegid?.() ?? -1;
/** Nothing in stackvault sets the umask, so it stays what it was at start. */
const umask = process.umask();

/**
 * How one restore creates small files. Without replaceExisting, the target was empty and
 * every folder below it is the restore's own, so each new file is treated alike: the
 * same owner (unless the target is set-group-ID, or a server squashes root) and the same
 * mode for the same asked one (unless a default ACL narrows it). The first file created
 * with its final mode shows whether that holds; until it does not, files whose owner
 * and mode come out right when created skip the chown and chmod (two system calls of
 * about seven per small file).
 */
export interface SmallFileCreation {
  replaceExisting: boolean;
  /** undefined until the first file created with its final mode was looked at */
  createdAsAsked?: boolean;
  /**
   * Whole blocks of files of DIRECT_RESTORE_MIN_BYTES and more go past the page cache where
   * the file system allows (see direct-io.ts); false: every write goes through it. Undefined: true.
   */
  directWrites?: boolean;
}

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
 * The mode a restore gives: as stored when run as root; otherwise without set-user-ID and
 * set-group-ID, as tar does, so that a restore never makes a program run as its user.
 */
export function restoredMode(mode: number): number {
  return canChown ? mode : mode & ~0o6000;
}

/**
 * Owner (only as root, like tar and restic), mode, then times last: chmod and chown
 * would otherwise not disturb mtime, but writing does, so callers finish content first.
 * Set through a descriptor opened without following a symlink: should the path have
 * become a symlink (a forged snapshot, or someone racing the restore), the metadata never
 * lands on whatever it points to, in the target or outside it.
 */
export async function applyMetadata(path: string, meta: RestorableMetadata): Promise<void> {
  const seconds = nsToSeconds(meta.mtime);
  if (meta.type === 'symlink') {
    if (canChown) await lchown(osPath(path), meta.uid, meta.gid);
    await lutimes(osPath(path), seconds, seconds);
    return;
  }
  if (meta.type === 'chardev' || meta.type === 'blockdev') {
    // Opening a device can act on it (a tape rewinds): by name, once it is known to be the node just made.
    if (!(await lstat(osPath(path))).isCharacterDevice() && !(await lstat(osPath(path))).isBlockDevice()) {
      throw new IntegrityError(`${path} is no longer the device node just made: its metadata is not set`);
    }
    if (canChown) await lchown(osPath(path), meta.uid, meta.gid);
    await chmod(osPath(path), restoredMode(meta.mode));
    await lutimes(osPath(path), seconds, seconds);
    return;
  }
  let fh;
  try {
    fh = await open(osPath(path), noFollowFlags(meta));
  } catch (err) {
    throw becameSymlink(path, err);
  }
  try {
    if (canChown) await fh.chown(meta.uid, meta.gid);
    await fh.chmod(restoredMode(meta.mode));
    await fh.utimes(seconds, seconds);
  } finally {
    await fh.close();
  }
}

function noFollowFlags(meta: RestorableMetadata): number {
  return constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK | (meta.type === 'dir' ? constants.O_DIRECTORY : 0);
}

function becameSymlink(path: string, err: unknown): unknown {
  if ((err as NodeJS.ErrnoException).code === 'ELOOP') return new IntegrityError(`${path} became a symlink while it was restored: its metadata is not set through it`);
  return err;
}

/**
 * applyMetadata() of a folder or file in blocking calls, for a restore whose file system
 * answers fast: four calls through the thread pool, each a promise, cost a folder about
 * ten times what the calls themselves do (a third of the main thread's time in a restore
 * of /usr/share/perl, vim and icons).
 */
export function applyMetadataSync(path: string, meta: RestorableMetadata & { type: 'dir' | 'file' }): void {
  let fd: number;
  try {
    fd = openSync(osPath(path), noFollowFlags(meta));
  } catch (err) {
    throw becameSymlink(path, err);
  }
  try {
    if (canChown) fchownSync(fd, meta.uid, meta.gid);
    fchmodSync(fd, restoredMode(meta.mode));
    const seconds = nsToSeconds(meta.mtime);
    futimesSync(fd, seconds, seconds);
  } finally {
    closeSync(fd);
  }
}

/**
 * A symlink pointing at `target`, with its owner (as root) and times, in blocking calls:
 * three calls through the thread pool, each a promise, cost more than the calls (596
 * symlinks of /usr/lib took a tenth of a restore's main thread).
 */
export function makeSymlinkSync(path: string, target: string, meta: RestorableMetadata): void {
  symlinkSync(osPath(target), osPath(path));
  if (canChown) lchownSync(osPath(path), meta.uid, meta.gid);
  const seconds = nsToSeconds(meta.mtime);
  lutimesSync(osPath(path), seconds, seconds);
}

/**
 * A small file whose content the caller has verified, with its metadata, in blocking
 * calls on one descriptor: created under its name (what was there goes first when
 * `replaceExisting`), written, owner, mode and times set (see SmallFileCreation). No
 * name ever holds data that failed its check; a temporary name and a rename would double
 * the directory updates, which are most of a small file's cost.
 */
export function writeSmallFile(dest: string, data: Buffer, meta: RestorableMetadata, creation: SmallFileCreation): void {
  if (creation.replaceExisting) {
    try {
      if (lstatSync(osPath(dest)).isDirectory()) rmSync(osPath(dest), { recursive: true, force: true });
      else unlinkSync(osPath(dest));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
  }
  const mode = restoredMode(meta.mode);
  const permissions = mode & 0o777;
  // Special bits are set after the owner (a chown clears them), and the owner must be able
  // to write the file (the direct-write descriptor below is opened by name).
  const createWithMode =
    !creation.replaceExisting &&
    creation.createdAsAsked !== false &&
    (mode & 0o7777) === permissions &&
    (permissions & umask) === 0 &&
    (permissions & 0o200) !== 0 &&
    (!canChown || (meta.uid === ownUid && meta.gid === ownGid));
  const fd = openSync(osPath(dest), 'wx', createWithMode ? permissions : 0o600);
  try {
    // A larger one's whole blocks go past the page cache where the file system allows (see direct-io.ts).
    const directFd = creation.directWrites !== false && data.length >= DIRECT_RESTORE_MIN_BYTES ? openForDirectWritesSync(dest) : undefined;
    try {
      writeAtSync(fd, directFd, data, 0);
    } finally {
      if (directFd !== undefined) closeSync(directFd);
    }
    let setOwnerAndMode = !createWithMode;
    if (createWithMode && creation.createdAsAsked === undefined) {
      const st = fstatSync(fd);
      creation.createdAsAsked = (st.mode & 0o7777) === permissions && (!canChown || (st.uid === ownUid && st.gid === ownGid));
      setOwnerAndMode = !creation.createdAsAsked;
    }
    if (setOwnerAndMode) {
      if (canChown) fchownSync(fd, meta.uid, meta.gid);
      fchmodSync(fd, mode);
    }
    const seconds = nsToSeconds(meta.mtime);
    futimesSync(fd, seconds, seconds);
  } catch (err) {
    closeSync(fd);
    unlinkSync(osPath(dest));
    throw err;
  }
  closeSync(fd);
}
