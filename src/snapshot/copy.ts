import type { Repository } from '../repo/repository.js';
import { InterruptedError } from '../util/errors.js';
import { forgottenIds, listSnapshots, type Snapshot, type SnapshotRef } from './snapshot.js';
import { ContentBuilder, contentIds, contentPieces, isSplitContent, sameContent, type FileContent } from './content-list.js';
import { NodeCursor, TreeBuilder, TreeLoader, eachNode, type TreeNode } from './tree.js';

/** At most this many copied contents are remembered, so that one seen again is not read again. */
const COPIED_FILES_KEPT = 4096;

export interface CopyResult {
  id: string;
  /** the target already held this copy: nothing was written */
  existing: boolean;
  files: number;
  bytes: number;
  bytesAdded: number;
  /** folders taken whole from an earlier copy: nothing in them was read */
  reused: number;
}

/** A folder of an earlier copy: its tree in the source and the tree the copy made of it. */
interface CopiedPair {
  from: string;
  to: string;
}

/**
 * Copy a snapshot into another repository, which has keys, ids and chunk boundaries of
 * its own: each file is read from the source repository and chunked anew by the target's
 * chunker, so the copy deduplicates against what the target already holds and what it
 * backs up later (a release brought into a stack's repository, then the stack's nights).
 * The snapshot is written last; copying the same snapshot again finds it and writes nothing.
 *
 * What an earlier copy from the same repository already holds is not read again: its
 * source and copied trees are walked side by side with the new snapshot's, and a folder
 * (or file) whose source tree (or content) is unchanged takes the earlier copy's, once
 * every blob it needs is found in the target and not recorded for deletion. A nightly
 * copy of an unchanged snapshot reads trees only, no data.
 */
export async function copySnapshot(from: Repository, to: Repository, ref: SnapshotRef, options: { signal?: AbortSignal } = {}): Promise<CopyResult> {
  const origin = { repository: from.config.id, snapshot: ref.id };
  // One reading of the target's snapshots: a copy made already (even forgotten), and the kept earlier copies.
  const forgotten = await forgottenIds(to);
  const copies = (await listSnapshots(to, { includeForgotten: true })).filter((s) => s.snapshot.copiedFrom?.repository === origin.repository);
  const already = copies.find((s) => s.snapshot.copiedFrom!.snapshot === origin.snapshot);
  if (already) return { id: already.id, existing: true, files: 0, bytes: 0, bytesAdded: 0, reused: 0 };

  await from.loadIndex();
  await to.loadIndex();
  const loader = new TreeLoader(from);
  const targetLoader = new TreeLoader(to);
  const writer = to.newBlobWriter();
  const earlier = await earlierCopy(from, copies.filter((c) => !forgotten.has(c.id)));
  const result: CopyResult = { id: '', existing: false, files: 0, bytes: 0, bytesAdded: 0, reused: 0 };
  const copiedTrees = new Map<string, string>();
  /** contents copied lately (the same file twice, a hard link): bounded, as a copy of millions of files would otherwise hold every one */
  const copiedFiles = new Map<string, FileContent>();

  const copyContent = async (content: FileContent): Promise<FileContent> => {
    // Parts are cut by the ids alone: the same parts list the same blobs.
    const key = `${isSplitContent(content) ? 'parts:' : ''}${contentPieces(content).join()}`;
    const known = copiedFiles.get(key);
    if (known) return known;
    const blocks = async function* () {
      for await (const id of contentIds(from, content)) yield await from.loadBlob(id, 'data');
    };
    const copied = new ContentBuilder(writer);
    for await (const chunk of to.chunker.chunkStream(blocks())) {
      if (options.signal?.aborted) throw new InterruptedError('copy interrupted; nothing was committed');
      const saved = await writer.save('data', chunk);
      await copied.add(saved.id);
      result.bytes += chunk.length;
      result.bytesAdded += saved.storedBytes;
    }
    const list = await copied.finish();
    copiedFiles.set(key, list);
    if (copiedFiles.size > COPIED_FILES_KEPT) copiedFiles.delete(copiedFiles.keys().next().value!);
    return list;
  };

  /** Whether a copied tree and everything below it is in the target, for this writer to rely on. */
  const present = new Map<string, Promise<boolean>>();
  const stillThere = (treeId: string): Promise<boolean> => {
    let known = present.get(treeId);
    if (!known) {
      known = (async () => {
        if (!writer.has(treeId)) return false;
        for (const part of await targetLoader.pieces(treeId)) if (!writer.has(part)) return false;
        for await (const node of eachNode(targetLoader, treeId)) {
          if (node.content && !contentPieces(node.content).every((id) => writer.has(id))) return false;
          if (node.subtree && !(await stillThere(node.subtree))) return false;
        }
        return true;
      })().catch(() => false); // an earlier copy that cannot be read is only no help: the folder is copied anew
      present.set(treeId, known);
    }
    return known;
  };

  const copyTree = async (treeId: string, before?: CopiedPair): Promise<string> => {
    const done = copiedTrees.get(treeId);
    if (done) return done;
    if (before?.from === treeId && (await stillThere(before.to))) {
      copiedTrees.set(treeId, before.to);
      result.reused++;
      return before.to;
    }
    // The earlier copy's entries of this folder, by name: the source's and the copy's side by
    // side, read a part at a time as the folder's own nodes are (a large folder is never held whole).
    const earlierFrom = before && new NodeCursor(loader.nodeLists(before.from));
    const earlierTo = before && new NodeCursor(targetLoader.nodeLists(before.to));
    const folder = new TreeBuilder(writer);
    for await (const node of eachNode(loader, treeId)) {
      const copy: TreeNode = { ...node };
      // An earlier copy that cannot be read is only no help: what it would have given is copied anew.
      const from = await earlierFrom?.find(node.name).catch(() => undefined);
      const to = from && (await earlierTo!.find(node.name).catch(() => undefined));
      const old = from && to ? { from, to } : undefined;
      if (node.content) {
        const unchanged = old?.from.content && old.to.content && sameContent(old.from.content, node.content) && contentPieces(old.to.content).every((id) => writer.has(id));
        copy.content = unchanged ? old.to.content! : await copyContent(node.content);
        if (unchanged) result.bytes += node.size ?? 0;
        result.files++;
      }
      if (node.subtree) copy.subtree = await copyTree(node.subtree, old?.from.subtree && old.to.subtree ? { from: old.from.subtree, to: old.to.subtree } : undefined);
      await folder.add(copy);
    }
    const id = await folder.finish();
    copiedTrees.set(treeId, id);
    return id;
  };

  const tree = await copyTree(ref.snapshot.tree, earlier);
  // Everything the snapshot references is stored and indexed before the snapshot exists.
  await writer.flush();
  result.id = await writer.commit('snapshots', { ...ref.snapshot, tree, parent: null, copiedFrom: origin });
  return result;
}

/**
 * Of the kept copies from the source repository (oldest first), the newest whose snapshot
 * the source still holds: its root trees, source and copy, to walk side by side. Only
 * those originals are read, newest first, not every snapshot of the source.
 */
async function earlierCopy(from: Repository, copies: readonly SnapshotRef[]): Promise<CopiedPair | undefined> {
  for (const copy of [...copies].reverse()) {
    const original = await from.loadObject<Snapshot>('snapshots', copy.snapshot.copiedFrom!.snapshot).catch(() => undefined);
    if (typeof original?.tree === 'string') return { from: original.tree, to: copy.snapshot.tree };
  }
  return undefined;
}
