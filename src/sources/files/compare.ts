import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { lstat } from 'node:fs/promises';
import { join } from 'node:path';
import { osPath, readLinkTarget } from '../../util/os-path.js';
import { entryType, sortedNames } from './entries.js';

export interface CompareOptions {
  /** paths (relative, "/"-separated) to leave out of the comparison, e.g. excluded ones */
  skip?: (relPath: string, isDir: boolean) => boolean;
  /** compare owners too (only meaningful when the restore ran as root) */
  owners?: boolean;
}

export interface CompareResult {
  files: number;
  dirs: number;
  bytes: number;
  differences: string[];
}

async function fileHash(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(osPath(path), { highWaterMark: 1 << 20 })) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/**
 * Compare two folder trees: names (byte for byte), types (FIFOs, sockets and devices
 * too), content, mode, mtime (to the microsecond), symlink targets, device numbers and
 * hard-link structure. Used to prove a restore is faithful.
 */
export async function compareTrees(expected: string, actual: string, options: CompareOptions = {}): Promise<CompareResult> {
  const result: CompareResult = { files: 0, dirs: 0, bytes: 0, differences: [] };
  const linkGroupsA = new Map<string, string>();
  const linkGroupsB = new Map<string, string>();
  const walk = async (rel: string): Promise<void> => {
    const a = join(expected, rel);
    const b = join(actual, rel);
    const namesA = await sortedNames(a);
    const namesB = await sortedNames(b);
    const setB = new Set(namesB);
    for (const name of namesA) {
      const r = rel ? `${rel}/${name}` : name;
      const sa = await lstat(osPath(join(a, name)), { bigint: true });
      if (options.skip?.(r, sa.isDirectory())) continue;
      if (!setB.has(name)) {
        result.differences.push(`missing: ${r}`);
        continue;
      }
      setB.delete(name);
      const sb = await lstat(osPath(join(b, name)), { bigint: true });
      const type = (s: typeof sa) => entryType(s) ?? 'other';
      if (type(sa) !== type(sb)) {
        result.differences.push(`type differs: ${r} (${type(sa)} vs ${type(sb)})`);
        continue;
      }
      if (!sa.isSymbolicLink() && (sa.mode & 0o7777n) !== (sb.mode & 0o7777n)) {
        result.differences.push(`mode differs: ${r} (${(sa.mode & 0o7777n).toString(8)} vs ${(sb.mode & 0o7777n).toString(8)})`);
      }
      if (options.owners && (sa.uid !== sb.uid || sa.gid !== sb.gid)) result.differences.push(`owner differs: ${r}`);
      if (sa.mtimeNs / 1000n !== sb.mtimeNs / 1000n) result.differences.push(`mtime differs: ${r}`);
      if (sa.isDirectory()) {
        result.dirs++;
        await walk(r);
      } else if (sa.isSymbolicLink()) {
        if ((await readLinkTarget(join(a, name))) !== (await readLinkTarget(join(b, name)))) result.differences.push(`symlink target differs: ${r}`);
      } else if ((sa.isCharacterDevice() || sa.isBlockDevice()) && sa.rdev !== sb.rdev) {
        result.differences.push(`device number differs: ${r}`);
      } else if (sa.isFile()) {
        result.files++;
        result.bytes += Number(sa.size);
        if (sa.size !== sb.size || (await fileHash(join(a, name))) !== (await fileHash(join(b, name)))) {
          result.differences.push(`content differs: ${r}`);
        }
        if (sa.nlink > 1n) {
          const key = `${sa.dev}:${sa.ino}`;
          const first = linkGroupsA.get(key);
          if (first === undefined) linkGroupsA.set(key, r);
          const otherKey = `${sb.dev}:${sb.ino}`;
          const firstB = linkGroupsB.get(otherKey);
          if (firstB === undefined) linkGroupsB.set(otherKey, r);
          if ((first ?? r) !== (firstB ?? r)) result.differences.push(`hard link differs: ${r} (linked to ${first ?? 'nothing'} vs ${firstB ?? 'nothing'})`);
        }
      }
    }
    for (const extra of setB) result.differences.push(`unexpected: ${rel ? `${rel}/${extra}` : extra}`);
  };
  await walk('');
  return result;
}
