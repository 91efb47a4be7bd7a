import type { BigIntStats } from 'node:fs';
import type { BlobLoader } from '../repo/roles.js';
import type { BlobWriter } from '../repo/encode/blob-writer.js';
import type { EntryType } from '../sources/files/entries.js';
import { IntegrityError, errorMessage } from '../util/errors.js';

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
  content?: string[];
  subtree?: string;
  target?: string;
  rdev?: number;
}

export interface Tree {
  nodes: TreeNode[];
}

export function nodeFromStat(name: string, type: EntryType, st: BigIntStats): TreeNode {
  return {
    name,
    type,
    mode: Number(st.mode & 0o7777n),
    uid: Number(st.uid),
    gid: Number(st.gid),
    mtime: st.mtimeNs.toString(),
    ctime: st.ctimeNs.toString(),
    inode: st.ino.toString(),
    dev: st.dev.toString(),
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
    if (!Array.isArray(x) || !Array.isArray(y) || x.length !== y.length || x.some((id, i) => id !== y[i])) return false;
  }
  return true;
}

export async function saveTree(writer: BlobWriter, tree: Tree): Promise<string> {
  const { id } = await writer.save('tree', Buffer.from(JSON.stringify(tree)));
  return id;
}

/** Loads tree blobs, keeping a few recent ones: walks revisit parents and siblings. */
export class TreeLoader {
  private readonly cache = new Map<string, Tree>();

  constructor(
    private readonly blobs: Pick<BlobLoader, 'loadBlob'>,
    private readonly capacity = 512,
  ) {}

  async load(id: string): Promise<Tree> {
    const hit = this.cache.get(id);
    if (hit) {
      this.cache.delete(id);
      this.cache.set(id, hit);
      return hit;
    }
    const data = await this.blobs.loadBlob(id, 'tree');
    let tree: Tree;
    try {
      tree = JSON.parse(data.toString('utf8')) as Tree;
    } catch (err) {
      throw new IntegrityError(`tree ${id} is damaged: ${errorMessage(err)}`);
    }
    if (!Array.isArray(tree.nodes)) throw new IntegrityError(`tree ${id} is damaged: no node list`);
    this.cache.set(id, tree);
    if (this.cache.size > this.capacity) this.cache.delete(this.cache.keys().next().value!);
    return tree;
  }
}

/** Path of a child in snapshot notation: "/source/dir/file". */
export function childPath(parent: string, name: string): string {
  return parent === '/' ? `/${name}` : `${parent}/${name}`;
}
