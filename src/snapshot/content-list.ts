import type { BlobLoader } from '../repo/roles.js';
import type { BlobWriter } from '../repo/encode/blob-writer.js';
import { isSplitContent, splitContent, type FileContent, type TreeNode } from '../sources/files/entries.js';
import { IntegrityError, errorMessage } from '../util/errors.js';
import { PartedList } from './tree.js';

export { contentPieces, isSplitContent, sameContent, type FileContent } from '../sources/files/entries.js';

/**
 * A file of more than this many blobs lists them in content parts: one list in the node
 * grew with the file (a 100 GB file, 100,000 ids, 6.5 MB of JSON in its folder's tree and
 * held whole by every reader), and a change anywhere in it wrote the whole list again
 * (docs/format.md, "Files of many blobs"). At the default chunk sizes, files of 2-4 GiB.
 */
export const CONTENT_SPLIT_ABOVE = 4096;

const BLOB_ID = /^[0-9a-f]{64}$/;

/** Where a content list is cut: the last 8 hex digits of a blob id (a hash already), as a number. */
function idHash(id: string): number {
  return Number.parseInt(id.slice(-8), 16);
}

/**
 * A file's content list as its blobs are stored, in order: a long one goes to content
 * parts as they fill, so that a large file's ids are never all held. Most files have a
 * few blobs: for them this is one array, as before parts (a backup makes one per file).
 */
export class ContentBuilder {
  private ids: string[] = [];
  private list: PartedList<string> | undefined;

  constructor(private readonly writer: Pick<BlobWriter, 'save'>) {}

  /** Adds the next blob's id; a promise only when that stored a part. Each must settle before the next add. */
  add(id: string): Promise<void> | undefined {
    if (this.list) return this.list.add(id);
    this.ids.push(id);
    return this.ids.length > CONTENT_SPLIT_ABOVE ? this.split() : undefined;
  }

  /** What the file's node records: at once for a file of few blobs (no promise per file), once its last part is stored for one of many. */
  finish(): FileContent | Promise<FileContent> {
    return this.list ? this.finishParts(this.list) : this.ids;
  }

  private async finishParts(parts: PartedList<string>): Promise<FileContent> {
    const list = await parts.finish();
    return 'whole' in list ? list.whole : splitContent(list.parts);
  }

  private async split(): Promise<void> {
    const { writer } = this;
    const list = new PartedList(CONTENT_SPLIT_ABOVE, idHash, async (content: string[]) => (await writer.save('tree', Buffer.from(JSON.stringify({ content })))).id);
    this.list = list;
    const ids = this.ids;
    this.ids = [];
    for (const id of ids) await list.add(id);
  }
}

/** A content part's bytes; damage throws an IntegrityError naming the part. */
export function parseContentPart(id: string, data: Uint8Array): string[] {
  let part: { content?: unknown };
  try {
    part = JSON.parse(Buffer.from(data.buffer, data.byteOffset, data.byteLength).toString('utf8')) as typeof part;
  } catch (err) {
    throw new IntegrityError(`content part ${id} is damaged: ${errorMessage(err)}`);
  }
  const ids = part?.content;
  if (!Array.isArray(ids) || ids.length === 0 || !ids.every((blob) => typeof blob === 'string' && BLOB_ID.test(blob))) {
    throw new IntegrityError(`content part ${id} is damaged: no list of blob ids`);
  }
  return ids as string[];
}

/** One content part's blob ids, loaded and verified; damage throws an IntegrityError naming the part. */
export async function loadContentPart(blobs: Pick<BlobLoader, 'loadBlob'>, id: string): Promise<string[]> {
  return parseContentPart(id, await blobs.loadBlob(id, 'tree'));
}

/** A file's blob ids a part at a time (its own list, at once, when it has no parts). */
export async function* contentLists(blobs: Pick<BlobLoader, 'loadBlob'>, content: FileContent | undefined): AsyncGenerator<readonly string[]> {
  if (!isSplitContent(content)) {
    yield content ?? [];
    return;
  }
  for (const part of content.parts) yield await loadContentPart(blobs, part);
}

/** A file's blob ids, in order. */
export async function* contentIds(blobs: Pick<BlobLoader, 'loadBlob'>, content: FileContent | undefined): AsyncGenerator<string> {
  for await (const ids of contentLists(blobs, content)) yield* ids;
}

/**
 * The blob ids of a file the caller only sees small (at most SMALL_FILE_BYTES, which
 * cannot be more than CONTENT_SPLIT_ABOVE blobs of the smallest chunk size): a node that
 * says otherwise is damage.
 */
export function smallFileContent(node: TreeNode): readonly string[] {
  if (isSplitContent(node.content)) throw new IntegrityError(`${node.name}: a file of ${node.size ?? 0} bytes cannot list its content in parts`);
  return node.content ?? [];
}
