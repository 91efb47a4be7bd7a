import type { EntryStat, FileContent } from './entries.js';

/** What a link's read stored: its content and length. */
export interface LinkedContent {
  content: FileContent;
  size: number;
}

interface Group {
  /** what the walk saw of the first link: a later link with other values is another state of the file */
  size: number;
  mtime: string;
  ctime: string;
  /** undefined when the first read failed or the file changed while it was read */
  stored: Promise<LinkedContent | undefined>;
  /** links the walk has met, the first included */
  met: number;
}

/**
 * The hard-link groups of one walk: a file with more than one link is read once, and every
 * other link the walk meets takes the content the first one stored, as Borg does. A copy of
 * /usr/lib holds Mesa's 24.6 MiB driver under 12 names: read, chunked, hashed, compressed
 * and encrypted 12 times before (docs/performance.md, twentieth session).
 *
 * A later link takes that content only where the walk sees it as it saw the first: the same
 * size, modification and change time (the inode and device are the group's key). A write
 * between the two stats moves the change time, so the later link is then read on its own,
 * as a file whose times differ from the previous snapshot's is. A first read that failed or
 * saw the file change leaves every later link to be read on its own too.
 *
 * Bounded: a group is dropped once all its links are met, and the oldest beyond `limit`
 * (links outside the walked folders are never met); a link of a dropped group is read again.
 */
export class HardLinkGroups {
  private readonly groups = new Map<string, Group>();

  constructor(private readonly limit = 10_000) {}

  /**
   * For a link of a group already being read: a promise of what that read stored, or of
   * undefined when the link must be read on its own. Undefined when this is the first link
   * met (or its group was dropped, or the file is seen otherwise than at the first link):
   * read it, and tell the group through `reading`.
   */
  earlier(st: EntryStat): Promise<LinkedContent | undefined> | undefined {
    const key = groupKey(st);
    const group = this.groups.get(key);
    if (!group || group.size !== st.size || group.mtime !== st.mtime || group.ctime !== st.ctime) return undefined;
    if (++group.met >= st.nlink) this.groups.delete(key);
    return group.stored;
  }

  /** The first link met of `st`'s group: returns what settles the group once that link's read ends. */
  reading(st: EntryStat): (stored: LinkedContent | undefined) => void {
    let settle!: (stored: LinkedContent | undefined) => void;
    const stored = new Promise<LinkedContent | undefined>((resolve) => (settle = resolve));
    const key = groupKey(st);
    // A file seen otherwise than at its first link starts the group again, from this read.
    this.groups.delete(key);
    if (this.groups.size >= this.limit) this.groups.delete(this.groups.keys().next().value!);
    this.groups.set(key, { size: st.size, mtime: st.mtime, ctime: st.ctime, stored, met: 1 });
    return settle;
  }
}

function groupKey(st: EntryStat): string {
  return `${st.dev}:${st.inode}`;
}
