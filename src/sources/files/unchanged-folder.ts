import { NUMBER_FIELDS, TEXT_FIELDS, TYPES, type CompactListing } from './listing-compact.js';
import { contentPieces, isFileContent, type TreeNode } from './entries.js';
import type { ExclusionMatcher } from './exclusions.js';

/** A folder whose entries are all as the previous snapshot recorded them, but for what its subfolders hold. */
export interface UnchangedFolder {
  entries: number;
  files: number;
  /** the files' bytes */
  bytes: number;
  /** symlinks, devices, FIFOs and sockets */
  others: number;
  /** every file's content ids or content parts (the previous nodes' own lists): the walk checks each is still stored */
  content: Array<readonly string[]>;
  /** subfolders in name order: name, device, the previous snapshot's tree of it */
  subfolders: Array<[string, string, string]>;
}

/** The fields every node has; a node with any other than its type's own is not one the walk would make. */
const BASE_FIELDS = 10;

/**
 * Whether `listing` shows the folder exactly as the previous snapshot's `previous` nodes
 * record it: the same names in the same order, each with the same type, mode, owner,
 * times, inode, device and link count, a file of the same size (its content list kept), a
 * symlink with the same target, a device with the same number, and nothing an exclusion
 * leaves out, nothing that failed to read, no mount point. Then the walk keeps those
 * nodes as they are instead of making new ones, as comparing them one by one would have
 * decided (FilesWalker.saveDir). Anything else answers undefined, and the walk compares
 * entry by entry.
 */
export function unchangedFolder(listing: CompactListing, previous: readonly TreeNode[], rel: string, dev: string, matcher: ExclusionMatcher): UnchangedFolder | undefined {
  if (listing.error || listing.count !== previous.length) return undefined;
  const fields = listing.text.split('\0');
  const found: UnchangedFolder = { entries: listing.count, files: 0, bytes: 0, others: 0, content: [], subfolders: [] };
  for (let i = 0; i < listing.count; i++) {
    const node = previous[i];
    if (!node || !sameEntry(listing, fields, i, node) || matcher.classify(rel ? `${rel}/${node.name}` : node.name, node.type === 'dir').excluded) return undefined;
    if (node.type === 'file') {
      found.content.push(contentPieces(node.content));
      found.files++;
      found.bytes += node.size!;
    } else if (node.type === 'dir') {
      if (node.dev !== dev) return undefined;
      found.subfolders.push([node.name, dev, node.subtree!]);
    } else {
      found.others++;
    }
  }
  return found;
}

/**
 * Whether entry `i` of a listing (`fields` its text split at NULs) is `node` as the walk
 * would make it again: the same name, type, mode, owner, times, inode, device and link
 * count; a file of the same size with a content list, a symlink with the same target, a
 * device with the same number, a folder with a tree; and no field the walk does not write.
 */
export function sameEntry(listing: CompactListing, fields: readonly string[], i: number, node: TreeNode): boolean {
  if (typeof node !== 'object') return false;
  const { numbers } = listing;
  const t = i * TEXT_FIELDS;
  const at = i * NUMBER_FIELDS;
  // A negative type: the entry, or its target, could not be read.
  const type = TYPES[numbers[at]!];
  if (
    !type ||
    node.name !== fields[t] ||
    node.type !== type ||
    node.mode !== numbers[at + 2] ||
    node.uid !== numbers[at + 3] ||
    node.gid !== numbers[at + 4] ||
    node.nlink !== numbers[at + 5] ||
    node.mtime !== fields[t + 1] ||
    node.ctime !== fields[t + 2] ||
    node.inode !== fields[t + 3] ||
    node.dev !== fields[t + 4]
  ) {
    return false;
  }
  const fieldCount = Object.keys(node).length;
  switch (type) {
    case 'file':
      return fieldCount === BASE_FIELDS + 2 && node.size === numbers[at + 1] && isFileContent(node.content);
    case 'dir':
      return fieldCount === BASE_FIELDS + 1 && typeof node.subtree === 'string';
    case 'symlink':
      return fieldCount === BASE_FIELDS + 1 && node.target === fields[t + 5];
    case 'chardev':
    case 'blockdev':
      return fieldCount === BASE_FIELDS + 1 && node.rdev === numbers[at + 6];
    default:
      return fieldCount === BASE_FIELDS;
  }
}

/** A node of an unchanged folder, its fields in the order the walk writes them (so that its tree is stored the same). */
export function rewrittenNode(node: TreeNode, subtree?: string): TreeNode {
  const { name, type, mode, uid, gid, mtime, ctime, inode, dev, nlink } = node;
  const fresh: TreeNode = { name, type, mode, uid, gid, mtime, ctime, inode, dev, nlink };
  if (type === 'file') {
    fresh.size = node.size;
    fresh.content = node.content;
  } else if (type === 'dir') fresh.subtree = subtree ?? node.subtree;
  else if (type === 'symlink') fresh.target = node.target;
  else if (type === 'chardev' || type === 'blockdev') fresh.rdev = node.rdev;
  return fresh;
}
