import type { BlobLoader } from '../repo/roles.js';
import type { BlobWriter } from '../repo/encode/blob-writer.js';
import type { Tree, TreeNode } from '../sources/files/entries.js';
import { IntegrityError, errorMessage } from '../util/errors.js';

export { NodeCursor, nodeFromStat, sameNodes, type Tree, type TreeNode } from '../sources/files/entries.js';

/**
 * A folder of more than this many entries is stored in parts: one blob of a few hundred
 * thousand nodes took hundreds of MiB to build and to read whole, and changing one file in
 * it wrote the whole blob again (docs/format.md, "Trees").
 */
export const SPLIT_ABOVE = 4096;
/** A part holds at least this many nodes (the last excepted) ... */
export const PART_MIN = 1024;
/** ... and at most this many. */
export const PART_MAX = 8192;
/** Past PART_MIN, a part ends after an item that hashes to 0 under this mask: about 1 in 1,024. */
const CUT_MASK = 0x3ff;

/** A folder's tree blob as stored: its nodes, or (a large folder) the ids of the parts that hold them in order. */
export type StoredTree = Tree | { parts: string[] };

const BLOB_ID = /^[0-9a-f]{64}$/;

/** A tree blob's bytes; damage throws an IntegrityError. */
export function parseStoredTree(id: string, data: Uint8Array): StoredTree {
  let tree: Partial<Tree & { parts: unknown }>;
  try {
    tree = JSON.parse(Buffer.from(data.buffer, data.byteOffset, data.byteLength).toString('utf8')) as typeof tree;
  } catch (err) {
    throw new IntegrityError(`tree ${id} is damaged: ${errorMessage(err)}`);
  }
  if (tree?.parts !== undefined) {
    const { parts } = tree;
    if (tree.nodes !== undefined || !Array.isArray(parts) || parts.length === 0 || !parts.every((p) => typeof p === 'string' && BLOB_ID.test(p))) {
      throw new IntegrityError(`tree ${id} is damaged: its list of parts is not one`);
    }
    return { parts: parts as string[] };
  }
  if (!Array.isArray(tree?.nodes)) throw new IntegrityError(`tree ${id} is damaged: no node list`);
  return tree as Tree;
}

/**
 * Where a large folder's nodes are cut into parts. Cuts depend on the names alone (FNV-1a
 * over a name's UTF-16 code units, as JSON holds it), so adding or removing a file changes
 * the part that holds it and leaves the others as they were, deduplicated.
 */
export function splitNodes(nodes: readonly TreeNode[]): TreeNode[][] {
  const parts: TreeNode[][] = [];
  const cutter = new PartCutter();
  let part: TreeNode[] = [];
  for (const node of nodes) {
    part.push(node);
    if (cutter.endsAfter(nameHash(node.name))) {
      parts.push(part);
      part = [];
    }
  }
  if (part.length > 0) parts.push(part);
  return parts;
}

/** Where parts end, an item at a time: a large folder's nodes (by name) and a large file's content list (by blob id). */
class PartCutter {
  private length = 0;

  /** Whether the part ends after the next item, whose hash is `hash`. */
  endsAfter(hash: number): boolean {
    this.length++;
    if (this.length < PART_MAX && (this.length < PART_MIN || (hash & CUT_MASK) !== 0)) return false;
    this.length = 0;
    return true;
  }
}

function nameHash(name: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < name.length; i++) h = Math.imul(h ^ name.charCodeAt(i), 0x01000193);
  return h >>> 0;
}

/** Store a folder: one tree blob, or its parts and the blob that lists them. Resolves with the id its node records. */
export async function saveTree(writer: BlobWriter, tree: Tree): Promise<string> {
  if (tree.nodes.length <= SPLIT_ABOVE) return (await writer.save('tree', Buffer.from(JSON.stringify(tree)))).id;
  const parts: string[] = [];
  for (const nodes of splitNodes(tree.nodes)) parts.push((await writer.save('tree', Buffer.from(JSON.stringify({ nodes })))).id);
  return (await writer.save('tree', Buffer.from(JSON.stringify({ parts })))).id;
}

/**
 * A list that arrives an item at a time and is stored in parts once it has more than
 * `splitAbove` items: parts are saved as they fill, so that a long list is never held
 * whole. The parts are those PartCutter gives for the whole list, whatever the pace of
 * arrival. Behind a large folder's nodes (TreeBuilder) and a large file's content list.
 */
export class PartedList<T> {
  private readonly cutter = new PartCutter();
  private count = 0;
  /** where parts end (item counts), from the first */
  private readonly ends: number[] = [];
  private readonly parts: string[] = [];
  /** items after the last saved part */
  private held: T[] = [];
  /** items in the saved parts */
  private saved = 0;

  constructor(
    private readonly splitAbove: number,
    private readonly hash: (item: T) => number,
    /** stores one part, resolving with its blob id */
    private readonly savePart: (items: T[]) => Promise<string>,
  ) {}

  /** Adds the next item; a promise when that stored a part (undefined, for most items, when it did not). */
  add(item: T): Promise<void> | undefined {
    this.count++;
    this.held.push(item);
    if (this.cutter.endsAfter(this.hash(item))) this.ends.push(this.count);
    // Until the list has more than splitAbove items, it may still be stored whole.
    return this.count > this.splitAbove && this.parts.length < this.ends.length ? this.saveFullParts() : undefined;
  }

  /** The whole list, when short enough to be stored as one; else the ids of its parts, the last stored now. */
  async finish(): Promise<{ whole: T[] } | { parts: string[] }> {
    if (this.count <= this.splitAbove) return { whole: this.held };
    await this.saveFullParts();
    if (this.held.length > 0) await this.saveNext(this.held.length);
    return { parts: this.parts };
  }

  private async saveFullParts(): Promise<void> {
    while (this.parts.length < this.ends.length) await this.saveNext(this.ends[this.parts.length]! - this.saved);
  }

  private async saveNext(length: number): Promise<void> {
    const items = this.held.slice(0, length);
    // What is left is at most a part being filled (or, when the first parts are cut,
    // splitAbove + 1 items): cheap to copy.
    this.held = this.held.slice(length);
    this.saved += length;
    this.parts.push(await this.savePart(items));
  }
}

/**
 * Stores a folder whose nodes arrive one at a time, in name order, as a backup finishes
 * them: a large folder's parts are saved as they fill, so that its nodes are never all
 * held. The blobs are those saveTree would store for the same nodes, so a folder as the
 * previous snapshot had it comes out as the previous snapshot's tree, deduplicated.
 */
export class TreeBuilder {
  private readonly list: PartedList<TreeNode>;

  constructor(private readonly writer: BlobWriter) {
    this.list = new PartedList(SPLIT_ABOVE, (node) => nameHash(node.name), async (nodes) => (await writer.save('tree', Buffer.from(JSON.stringify({ nodes })))).id);
  }

  async add(node: TreeNode): Promise<void> {
    await this.list.add(node);
  }

  /** The id the folder's node records. */
  async finish(): Promise<string> {
    const list = await this.list.finish();
    const tree = 'whole' in list ? { nodes: list.whole } : list;
    return (await this.writer.save('tree', Buffer.from(JSON.stringify(tree)))).id;
  }
}

/** At most this many nodes (or part ids) kept in a loader's cache, beside its count of trees. */
const MAX_CACHED_NODES = 131_072;

/** Loads tree blobs, keeping a few recent ones: walks revisit parents and siblings. */
export class TreeLoader {
  private readonly cache = new Map<string, StoredTree>();
  private cachedNodes = 0;
  /** trees being loaded: two walks side by side (a restore's first walk and its own) load each once */
  private readonly loading = new Map<string, Promise<StoredTree>>();

  constructor(
    private readonly blobs: Pick<BlobLoader, 'loadBlob'>,
    private readonly capacity = 512,
  ) {}

  /** A folder's nodes, all of them (its parts read at once and joined). */
  async load(id: string): Promise<Tree> {
    const tree = await this.stored(id);
    return 'parts' in tree ? { nodes: await this.joinParts(tree.parts, id) } : tree;
  }

  /** The nodes of the folder `of` from its parts, read at once. */
  async joinParts(parts: readonly string[], of: string): Promise<TreeNode[]> {
    return (await Promise.all(parts.map((part) => this.part(part, of)))).flat();
  }

  /** A folder's nodes part by part, so that a large folder is never held whole. */
  async *nodeLists(id: string): AsyncGenerator<TreeNode[]> {
    const tree = await this.stored(id);
    if (!('parts' in tree)) {
      yield tree.nodes;
      return;
    }
    for (const part of tree.parts) yield await this.part(part, id);
  }

  /** The ids of the blobs that hold a folder's nodes, in order: its parts, or its own. */
  async pieces(id: string): Promise<string[]> {
    const tree = await this.stored(id);
    return 'parts' in tree ? tree.parts : [id];
  }

  /** A part of the folder `of`: a part holds nodes, never parts of its own. */
  async part(id: string, of: string): Promise<TreeNode[]> {
    const tree = await this.stored(id);
    if ('parts' in tree) throw new IntegrityError(`tree ${of} is damaged: its part ${id} lists parts of its own`);
    return tree.nodes;
  }

  /** One tree blob as stored, parsed. */
  stored(id: string): Promise<StoredTree> {
    const hit = this.cache.get(id);
    if (hit) {
      this.cache.delete(id);
      this.cache.set(id, hit);
      return Promise.resolve(hit);
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

  private async decode(id: string): Promise<StoredTree> {
    const tree = parseStoredTree(id, await this.blobs.loadBlob(id, 'tree'));
    this.cache.set(id, tree);
    this.cachedNodes += weight(tree);
    // The newest stays even alone over the bound: it is the one being walked.
    while (this.cache.size > 1 && (this.cache.size > this.capacity || this.cachedNodes > MAX_CACHED_NODES)) {
      const [oldest, dropped] = this.cache.entries().next().value!;
      this.cache.delete(oldest);
      this.cachedNodes -= weight(dropped);
    }
    return tree;
  }
}

/** A folder's nodes one at a time, read a part at a time. */
export async function* eachNode(loader: TreeLoader, id: string): AsyncGenerator<TreeNode> {
  for await (const nodes of loader.nodeLists(id)) yield* nodes;
}

function weight(tree: StoredTree): number {
  return 'parts' in tree ? tree.parts.length : tree.nodes.length;
}

/** Path of a child in snapshot notation: "/source/dir/file". */
export function childPath(parent: string, name: string): string {
  return parent === '/' ? `/${name}` : `${parent}/${name}`;
}
