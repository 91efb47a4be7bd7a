import type { Repository } from '../repo/repository.js';
import { sameContent } from './content-list.js';
import type { SnapshotRef } from './snapshot.js';
import { TreeLoader, childPath, type TreeNode } from './tree.js';
import { walkTree } from './walk.js';

/** restic's markers: + added, - removed, M content changed, T type changed, U metadata only. */
export type ChangeKind = '+' | '-' | 'M' | 'T' | 'U';

export interface Change {
  kind: ChangeKind;
  path: string;
  type: TreeNode['type'];
}

function sameFileContent(a: TreeNode, b: TreeNode): boolean {
  if (a.type !== 'file') return a.target === b.target;
  return a.size === b.size && sameContent(a.content, b.content);
}

function sameMetadata(a: TreeNode, b: TreeNode): boolean {
  return a.mode === b.mode && a.uid === b.uid && a.gid === b.gid && a.mtime === b.mtime;
}

export async function* diffSnapshots(repo: Repository, a: SnapshotRef, b: SnapshotRef): AsyncGenerator<Change> {
  await repo.loadIndex();
  const loader = new TreeLoader(repo);
  yield* diffTrees(loader, a.snapshot.tree, b.snapshot.tree, '/');
}

async function* everything(loader: TreeLoader, node: TreeNode, path: string, kind: '+' | '-'): AsyncGenerator<Change> {
  yield { kind, path, type: node.type };
  if (node.type === 'dir' && node.subtree) {
    for await (const e of walkTree(loader, node.subtree, path)) yield { kind, path: e.path, type: e.node.type };
  }
}

async function* diffTrees(loader: TreeLoader, left: string, right: string, base: string): AsyncGenerator<Change> {
  if (left === right) return;
  const a = new Map((await loader.load(left)).nodes.map((n) => [n.name, n]));
  const b = new Map((await loader.load(right)).nodes.map((n) => [n.name, n]));
  const names = [...new Set([...a.keys(), ...b.keys()])].sort();
  for (const name of names) {
    const path = childPath(base, name);
    const x = a.get(name);
    const y = b.get(name);
    if (!y) yield* everything(loader, x!, path, '-');
    else if (!x) yield* everything(loader, y, path, '+');
    else if (x.type !== y.type) {
      yield { kind: 'T', path, type: y.type };
    } else if (x.type === 'dir') {
      if (!sameMetadata(x, y)) yield { kind: 'U', path, type: 'dir' };
      if (x.subtree && y.subtree) yield* diffTrees(loader, x.subtree, y.subtree, path);
    } else if (!sameFileContent(x, y)) {
      yield { kind: 'M', path, type: y.type };
    } else if (!sameMetadata(x, y)) {
      yield { kind: 'U', path, type: y.type };
    }
  }
}
