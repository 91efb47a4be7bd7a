import type { BigIntStats, Stats } from 'node:fs';
import { lstat } from 'node:fs/promises';
import { join } from 'node:path';
import { osPath, readNames } from '../../util/os-path.js';
import { leftOutMount } from './mounts.js';

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
  return sortNames(await readNames(dir));
}

/** Names in the order trees keep them (by UTF-16 code units), sorted in place. */
export function sortNames(names: string[]): string[] {
  return names.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
}

/**
 * A stat-only walk below `root` (nothing is read). `visit` sees each entry with its path
 * relative to root and says whether to descend into it (only folders are descended).
 * Entries that vanish or cannot be listed are passed over: callers only measure. Like the
 * backup, it never enters a pseudo file system (/proc, /sys), nor with `oneFileSystem`
 * any other mount.
 */
export async function statWalk(
  root: string,
  visit: (rel: string, st: Stats) => boolean,
  signal?: AbortSignal,
  options: { oneFileSystem?: boolean } = {},
): Promise<void> {
  let rootDev: number;
  try {
    rootDev = (await lstat(osPath(root))).dev;
  } catch {
    return;
  }
  const pending: Array<[string, string, number]> = [[root, '', rootDev]];
  while (pending.length > 0) {
    if (signal?.aborted) return;
    const [dir, relDir, dev] = pending.pop()!;
    let names: string[];
    try {
      names = await readNames(dir);
    } catch {
      continue;
    }
    for (const name of names) {
      // Within a folder too: one of 300,000 entries kept an interrupted backup alive until its hard stop.
      if (signal?.aborted) return;
      const full = join(dir, name);
      const rel = relDir ? `${relDir}/${name}` : name;
      let st: Stats;
      try {
        st = await lstat(osPath(full));
      } catch {
        continue;
      }
      if (!visit(rel, st) || !st.isDirectory()) continue;
      if (st.dev !== dev && (await leftOutMount(full, options.oneFileSystem))) continue;
      pending.push([full, rel, st.dev]);
    }
  }
}

/** Count and size of everything below an excluded folder. */
export async function measureTree(dir: string): Promise<{ count: number; bytes: number }> {
  let count = 0;
  let bytes = 0;
  await statWalk(dir, (_rel, st) => {
    if (st.isDirectory()) return true;
    count++;
    bytes += st.size;
    return false;
  });
  return { count, bytes };
}

/**
 * One entry of a folder as stored in a tree blob. Times are nanoseconds since the epoch
 * as decimal strings (JSON numbers cannot hold them exactly).
 */
export interface TreeNode {
  name: string;
  type: EntryType;
  /** permission bits including setuid/setgid/sticky */
  mode: number;
  uid: number;
  gid: number;
  mtime: string;
  /** ctime, inode and device identify an unchanged file on the next backup and hard links on restore */
  ctime: string;
  inode: string;
  dev: string;
  nlink: number;
  size?: number;
  content?: FileContent;
  subtree?: string;
  target?: string;
  rdev?: number;
}

export interface Tree {
  nodes: TreeNode[];
}

/**
 * A file's content as its node records it: the ids of its data blobs in order, or, for a
 * file of more blobs than one list should hold, the ids of the content parts (tree blobs
 * `{"content": [...]}`) that list them in order (docs/format.md, "Files of many blobs").
 */
export type FileContent = string[] | SplitContent;
export interface SplitContent {
  parts: string[];
  /**
   * parts.length, stored too: versions before content parts read a file's list by its
   * length, and would have read this object as an empty file; with a length they look up
   * an id that is not there and name the file as one they cannot restore.
   */
  length: number;
}

/** What a file's node records for a content list stored in `parts`. */
export function splitContent(parts: string[]): SplitContent {
  return { parts, length: parts.length };
}

export function isSplitContent(content: FileContent | undefined): content is SplitContent {
  return content !== undefined && !Array.isArray(content);
}

/** The blobs a node names itself: its data blobs, or its content parts. */
export function contentPieces(content: FileContent | undefined): readonly string[] {
  if (content === undefined) return [];
  return Array.isArray(content) ? content : content.parts;
}

/** Whether two nodes' content is the same: the same blobs, listed the same way (parts are cut by the ids alone). */
export function sameContent(a: FileContent | undefined, b: FileContent | undefined): boolean {
  if (isSplitContent(a) !== isSplitContent(b)) return false;
  return sameIds(contentPieces(a), contentPieces(b));
}

function sameIds(a: readonly string[], b: readonly string[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** Whether a value read from a tree is a FileContent: a list of ids, or a list of part ids. */
export function isFileContent(value: unknown): value is FileContent {
  if (Array.isArray(value)) return value.every((id) => typeof id === 'string');
  if (typeof value !== 'object' || value === null || Object.keys(value).length !== 2) return false;
  const { parts, length } = value as Partial<SplitContent>;
  return Array.isArray(parts) && parts.length > 0 && length === parts.length && parts.every((id) => typeof id === 'string');
}

export function nodeFromStat(name: string, type: EntryType, st: BigIntStats | EntryStat): TreeNode {
  const entry = 'isFile' in st ? entryStat(st) : st;
  return { name, type, mode: entry.mode, uid: entry.uid, gid: entry.gid, mtime: entry.mtime, ctime: entry.ctime, inode: entry.inode, dev: entry.dev, nlink: entry.nlink };
}

/**
 * What a walk keeps of an entry's lstat. A BigIntStats is about 1 KiB with its bigints and
 * four dates; a large folder's thousands of them lived until the walk reached each,
 * outlived a scavenge or two and ended up in V8's old generation (docs/performance.md,
 * sixth session). Made as each stat is read, so that the stat dies young.
 */
export interface EntryStat extends Pick<TreeNode, 'mode' | 'uid' | 'gid' | 'mtime' | 'ctime' | 'inode' | 'nlink'> {
  /** undefined for what a tree cannot hold */
  type: EntryType | undefined;
  size: number;
  /** the device, as the node records it; a folder on another one than its parent's is a mount point */
  dev: string;
  rdev: number;
}

export function entryStat(st: BigIntStats): EntryStat {
  return {
    type: entryType(st),
    size: Number(st.size),
    dev: st.dev.toString(),
    rdev: Number(st.rdev),
    mode: Number(st.mode & 0o7777n),
    uid: Number(st.uid),
    gid: Number(st.gid),
    mtime: st.mtimeNs.toString(),
    ctime: st.ctimeNs.toString(),
    inode: st.ino.toString(),
    nlink: Number(st.nlink),
  };
}

/**
 * Whether two node lists hold the same values, so the stored tree of one stands for the
 * other. Field by field, not by key order: a tree written by an older version with its
 * fields in another order still matches.
 */
export function sameNodes(a: readonly TreeNode[], b: readonly TreeNode[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (!sameNode(a[i]!, b[i]!)) return false;
  return true;
}

function sameNode(a: TreeNode, b: TreeNode): boolean {
  const keys = Object.keys(a) as Array<keyof TreeNode>;
  if (keys.length !== Object.keys(b).length) return false;
  for (const key of keys) {
    const x = a[key];
    const y = b[key];
    if (x === y) continue;
    if (key !== 'content' || !sameContent(x as FileContent, y as FileContent)) return false;
  }
  return true;
}

/**
 * A folder's nodes looked up by name in ascending order, a part at a time, so that a large
 * folder is never held whole. A part that cannot be read throws, and ends the lookups.
 */
export class NodeCursor {
  private nodes: readonly TreeNode[] = [];
  private at = 0;
  private ended = false;

  constructor(private readonly lists: AsyncIterator<readonly TreeNode[]>) {}

  async find(name: string): Promise<TreeNode | undefined> {
    for (;;) {
      while (this.at < this.nodes.length) {
        const node = this.nodes[this.at]!;
        if (node.name > name) return undefined;
        this.at++;
        if (node.name === name) return node;
      }
      if (this.ended) return undefined;
      let next: IteratorResult<readonly TreeNode[]>;
      try {
        next = await this.lists.next();
      } catch (err) {
        this.ended = true;
        throw err;
      }
      if (next.done) {
        this.ended = true;
        return undefined;
      }
      this.nodes = next.value;
      this.at = 0;
    }
  }
}
