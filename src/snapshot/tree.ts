import type { BlobLoader } from '../repo/roles.js';
import type { BlobWriter } from '../repo/encode/blob-writer.js';
import type { Tree } from '../sources/files/entries.js';

import { parseTree } from '../sources/files/entries.js';

export { nodeFromStat, parseTree, sameNodes, type Tree, type TreeNode } from '../sources/files/entries.js';

export async function saveTree(writer: BlobWriter, tree: Tree): Promise<string> {
  const { id } = await writer.save('tree', Buffer.from(JSON.stringify(tree)));
  return id;
}

/** Loads tree blobs, keeping a few recent ones: walks revisit parents and siblings. */
export class TreeLoader {
  private readonly cache = new Map<string, Tree>();
  /** trees being loaded: two walks side by side (a restore's first walk and its own) load each once */
  private readonly loading = new Map<string, Promise<Tree>>();

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
    let loading = this.loading.get(id);
    if (!loading) {
      loading = this.decode(id);
      this.loading.set(id, loading);
      void loading.then(
        () => this.loading.delete(id),
        () => this.loading.delete(id),
      );
    }
    return loading;
  }

  /** A tree blob's bytes as stored (JSON), neither parsed nor kept. */
  loadData(id: string): Promise<Buffer> {
    return this.blobs.loadBlob(id, 'tree');
  }

  private async decode(id: string): Promise<Tree> {
    const tree = parseTree(id, await this.blobs.loadBlob(id, 'tree'));
    this.cache.set(id, tree);
    if (this.cache.size > this.capacity) this.cache.delete(this.cache.keys().next().value!);
    return tree;
  }
}

/** Path of a child in snapshot notation: "/source/dir/file". */
export function childPath(parent: string, name: string): string {
  return parent === '/' ? `/${name}` : `${parent}/${name}`;
}
