import type { Repository } from '../repo/repository.js';
import { sameContent } from './content-list.js';
import type { SnapshotRef } from './snapshot.js';
import { TreeLoader, childPath, eachNode, type TreeNode } from './tree.js';
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
  // Both folders' nodes in name order, merged a part at a time: a large folder is never held whole.
  const lefts = eachNode(loader, left);
  const rights = eachNode(loader, right);
  try {
    let a = await lefts.next();
    let b = await rights.next();
    while (!a.done || !b.done) {
      const x = a.done ? undefined : a.value;
      const y = b.done ? undefined : b.value;
      if (x && (!y || x.name < y.name)) {
        yield* everything(loader, x, childPath(base, x.name), '-');
        a = await lefts.next();
        continue;
      }
      if (!x || y!.name < x.name) {
        yield* everything(loader, y!, childPath(base, y!.name), '+');
        b = await rights.next();
        continue;
      }
      yield* compareNodes(loader, x, y!, childPath(base, x.name));
      a = await lefts.next();
      b = await rights.next();
    }
  } finally {
    await lefts.return(undefined);
    await rights.return(undefined);
  }
}

async function* compareNodes(loader: TreeLoader, x: TreeNode, y: TreeNode, path: string): AsyncGenerator<Change> {
  if (x.type !== y.type) {
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
