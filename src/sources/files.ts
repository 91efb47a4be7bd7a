import type { BigIntStats } from 'node:fs';
import { lstat, readdir } from 'node:fs/promises';
import { join } from 'node:path';

/**
 * The files source: reading folder trees with the metadata a restore needs, and
 * measuring what exclusions leave out. It knows nothing about where the data goes.
 */
export type EntryType = 'file' | 'dir' | 'symlink' | 'fifo' | 'socket' | 'chardev' | 'blockdev';

export function entryType(st: BigIntStats): EntryType | undefined {
  if (st.isFile()) return 'file';
  if (st.isDirectory()) return 'dir';
  if (st.isSymbolicLink()) return 'symlink';
  if (st.isFIFO()) return 'fifo';
  if (st.isSocket()) return 'socket';
  if (st.isCharacterDevice()) return 'chardev';
  if (st.isBlockDevice()) return 'blockdev';
  return undefined;
}

/** Names in a folder in a stable order, so identical folders produce identical trees. */
export async function sortedNames(dir: string): Promise<string[]> {
  const names = await readdir(dir);
  return names.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
}

/** Count and size of everything below an excluded folder (stat only, nothing is read). */
export async function measureTree(dir: string): Promise<{ count: number; bytes: number }> {
  let count = 0;
  let bytes = 0;
  const pending = [dir];
  while (pending.length > 0) {
    const current = pending.pop()!;
    let names: string[];
    try {
      names = await readdir(current);
    } catch {
      continue;
    }
    for (const name of names) {
      const full = join(current, name);
      try {
        const st = await lstat(full);
        if (st.isDirectory()) pending.push(full);
        else {
          count++;
          bytes += st.size;
        }
      } catch {
        /* vanished while measuring: nothing to count */
      }
    }
  }
  return { count, bytes };
}
