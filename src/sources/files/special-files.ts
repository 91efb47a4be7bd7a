import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { rename, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { osPath } from '../../util/os-path.js';

const run = promisify(execFile);
const isRoot = process.getuid?.() === 0;

/** Why an entry of this kind cannot be recreated here, or undefined when it can. */
export function cannotRecreate(type: string): string | undefined {
  if (type === 'socket') return 'a socket is not recreated (it belongs to the program that listens on it; tar and restic leave it out too)';
  if ((type === 'chardev' || type === 'blockdev') && !isRoot) return 'a device node is recreated only when restoring as root';
  return undefined;
}

/** Linux's dev_t split into major and minor numbers (glibc's gnu_dev_major/minor). */
function deviceNumbers(rdev: number): [number, number] {
  const dev = BigInt(rdev);
  const major = ((dev >> 8n) & 0xfffn) | ((dev >> 32n) & ~0xfffn);
  const minor = (dev & 0xffn) | ((dev >> 12n) & ~0xffn);
  return [Number(major), Number(minor)];
}

/**
 * Create a FIFO or a device node at `path`, as tar does. Node has no call for either, so
 * mkfifo or mknod make it under a plain temporary name in `scratchDir` (a folder of the
 * same file system whose path is plain text), and a rename puts it under its name,
 * whatever bytes that holds.
 */
export async function createSpecialFile(path: string, node: { type: string; rdev?: number }, scratchDir: string): Promise<void> {
  const tmp = join(scratchDir, `.sv-special-${randomBytes(6).toString('hex')}`);
  if (node.type === 'fifo') {
    await run('mkfifo', ['-m', '600', tmp]);
  } else {
    const [major, minor] = deviceNumbers(node.rdev ?? 0);
    await run('mknod', ['-m', '600', tmp, node.type === 'chardev' ? 'c' : 'b', String(major), String(minor)]);
  }
  try {
    await rename(tmp, osPath(path));
  } catch (err) {
    await unlink(tmp).catch(() => undefined);
    throw err;
  }
}
