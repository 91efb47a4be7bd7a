import type { Repository } from '../repo/repository.js';
import { StackvaultError } from '../util/errors.js';
import { listSnapshots, type SnapshotRef } from './snapshot.js';
import { TreeLoader, saveTree, type TreeNode } from './tree.js';

export interface CopyResult {
  id: string;
  /** the target already held this copy: nothing was written */
  existing: boolean;
  files: number;
  bytes: number;
  bytesAdded: number;
}

/**
 * Copy a snapshot into another repository, which has keys, ids and chunk boundaries of
 * its own: each file is read from the source repository and chunked anew by the target's
 * chunker, so the copy deduplicates against what the target already holds and what it
 * backs up later (a release brought into a stack's repository, then the stack's nights).
 * The snapshot is written last; copying the same snapshot again finds it and writes nothing.
 */
export async function copySnapshot(from: Repository, to: Repository, ref: SnapshotRef, options: { signal?: AbortSignal } = {}): Promise<CopyResult> {
  const origin = { repository: from.config.id, snapshot: ref.id };
  const already = (await listSnapshots(to, { includeForgotten: true })).find(
    (s) => s.snapshot.copiedFrom?.repository === origin.repository && s.snapshot.copiedFrom.snapshot === origin.snapshot,
  );
  if (already) return { id: already.id, existing: true, files: 0, bytes: 0, bytesAdded: 0 };

  await from.loadIndex();
  await to.loadIndex();
  const loader = new TreeLoader(from);
  const writer = to.newBlobWriter();
  const result: CopyResult = { id: '', existing: false, files: 0, bytes: 0, bytesAdded: 0 };
  const copiedTrees = new Map<string, string>();
  const copiedFiles = new Map<string, string[]>();

  const copyContent = async (ids: string[]): Promise<string[]> => {
    const key = ids.join();
    const known = copiedFiles.get(key);
    if (known) return known;
    const blocks = async function* () {
      for (const id of ids) yield await from.loadBlob(id, 'data');
    };
    const content: string[] = [];
    for await (const chunk of to.chunker.chunkStream(blocks())) {
      if (options.signal?.aborted) throw new StackvaultError('copy interrupted; nothing was committed', 130);
      const saved = await writer.save('data', chunk);
      content.push(saved.id);
      result.bytes += chunk.length;
      result.bytesAdded += saved.storedBytes;
    }
    copiedFiles.set(key, content);
    return content;
  };

  const copyTree = async (treeId: string): Promise<string> => {
    const done = copiedTrees.get(treeId);
    if (done) return done;
    const nodes: TreeNode[] = [];
    for (const node of (await loader.load(treeId)).nodes) {
      const copy: TreeNode = { ...node };
      if (node.content) {
        copy.content = await copyContent(node.content);
        result.files++;
      }
      if (node.subtree) copy.subtree = await copyTree(node.subtree);
      nodes.push(copy);
    }
    const id = await saveTree(writer, { nodes });
    copiedTrees.set(treeId, id);
    return id;
  };

  const tree = await copyTree(ref.snapshot.tree);
  // Everything the snapshot references is stored and indexed before the snapshot exists.
  await writer.flush();
  result.id = await writer.commit('snapshots', { ...ref.snapshot, tree, parent: null, copiedFrom: origin });
  return result;
}
