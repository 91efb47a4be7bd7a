import type { SnapshotRef } from './snapshot.js';
import { UsageError } from '../util/errors.js';
import { NodeCursor, TreeLoader, childPath, type TreeNode } from './tree.js';

export interface WalkEntry {
  path: string;
  node: TreeNode;
}

/**
 * Depth-first, in stored order; folders come before what they hold. With `unreadable`, a
 * folder whose tree cannot be loaded (damaged, missing) is passed to it and skipped
 * instead of ending the walk.
 */
export async function* walkTree(loader: TreeLoader, treeId: string, base = '/', unreadable?: (path: string, err: unknown) => void): AsyncGenerator<WalkEntry> {
  // Folders open on a stack, not as nested generators: through yield* every entry passed
  // through one generator per level above it (a fifth of a restore's first walk). A large
  // folder is read a part at a time.
  const open: Array<{ lists: AsyncGenerator<TreeNode[]>; nodes: TreeNode[]; next: number; base: string }> = [];
  /** The open folder's next part; false when it has no more (or, with `unreadable`, the part could not be read). */
  const nextPart = async (folder: (typeof open)[number]): Promise<boolean> => {
    try {
      const part = await folder.lists.next();
      if (part.done) return false;
      folder.nodes = part.value;
      folder.next = 0;
      return true;
    } catch (err) {
      if (!unreadable) throw err;
      unreadable(folder.base, err);
      return false;
    }
  };
  const enter = async (id: string, at: string) => {
    const folder = { lists: loader.nodeLists(id), nodes: [], next: 0, base: at };
    if (await nextPart(folder)) open.push(folder);
  };
  await enter(treeId, base);
  while (open.length > 0) {
    const folder = open[open.length - 1]!;
    if (folder.next === folder.nodes.length) {
      if (!(await nextPart(folder))) open.pop();
      continue;
    }
    const node = folder.nodes[folder.next++]!;
    const path = childPath(folder.base, node.name);
    yield { path, node };
    if (node.type === 'dir' && node.subtree) await enter(node.subtree, path);
  }
}

/** Normalize a user's snapshot path: "/source/dir/file", no trailing slash. */
export function normalizeSnapshotPath(path: string): string {
  const parts = path.split('/').filter((p) => p !== '' && p !== '.');
  if (parts.includes('..')) throw new UsageError(`path ${path} may not contain ".."`);
  return '/' + parts.join('/');
}

/** The node at `path` in the tree, or undefined. */
export async function findNode(loader: TreeLoader, rootTree: string, path: string): Promise<TreeNode | undefined> {
  const parts = normalizeSnapshotPath(path).split('/').filter(Boolean);
  let treeId: string | undefined = rootTree;
  let node: TreeNode | undefined;
  for (const part of parts) {
    if (!treeId) return undefined;
    // A part at a time: a path through a large folder does not load the folder whole.
    node = await new NodeCursor(loader.nodeLists(treeId)).find(part);
    if (!node) return undefined;
    treeId = node.subtree;
  }
  return node;
}

/**
 * The node at `path` of a snapshot, its root ("/") included: a folder of the snapshot's own
 * making (its time, owned by root) whose tree holds one folder per source.
 */
export async function findSnapshotNode(loader: TreeLoader, ref: SnapshotRef, path: string): Promise<TreeNode | undefined> {
  if (normalizeSnapshotPath(path) !== '/') return findNode(loader, ref.snapshot.tree, path);
  const ns = `${BigInt(Date.parse(ref.snapshot.time)) * 1_000_000n}`;
  return { name: '', type: 'dir', mode: 0o755, uid: 0, gid: 0, mtime: ns, ctime: ns, inode: '0', dev: '0', nlink: 1, subtree: ref.snapshot.tree };
}
