import { execFile } from 'node:child_process';
import { UsageError, errorMessage } from '../../util/errors.js';

/**
 * The file system's immutable flag (chattr +i, FS_IMMUTABLE_FL): a flagged file cannot
 * be changed, renamed, linked or deleted, not even by root, until root lifts the flag.
 * Node has no ioctl, so chattr (e2fsprogs) sets it: one process per object, which for
 * 16 MiB packs is nothing next to writing them.
 */
export function setImmutable(path: string, on: boolean): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile('chattr', [on ? '+i' : '-i', path], { timeout: 30_000 }, (err, _stdout, stderr) => {
      if (!err) return resolve();
      const why = (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'chattr is not installed (apt-get install e2fsprogs)' : stderr.trim() || errorMessage(err);
      reject(new UsageError(`cannot ${on ? 'set' : 'lift'} the immutable flag of ${path}: ${why}`));
    });
  });
}
