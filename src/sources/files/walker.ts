import { resolve } from 'node:path';
import { entryPath, type AdaptiveReader } from '../../util/adaptive-io.js';
import { StackvaultError, errorMessage } from '../../util/errors.js';
import { NodeCursor, contentPieces, entryStat, measureTree, nodeFromStat, sameNodes, sortNames, statWalk, type EntryStat, type FileContent, type TreeNode } from './entries.js';
import { resolveExclusionClasses } from './exclusion-classes.js';
import { ExclusionMatcher } from './exclusions.js';
import type { FilesSource } from './driver.js';
import type { Listing, ListingPrefetch } from './listing-prefetch.js';
import { STREAMED_ABOVE, entryName, listingError, readEntry, type CompactListing } from './listing-compact.js';
import type { ListingThread } from './listing-thread.js';
import { rewrittenNode, sameEntry, unchangedFolder, type UnchangedFolder } from './unchanged-folder.js';
import { leftOutMount } from './mounts.js';
import { markOf, type FileMark } from '../../util/file-mark.js';
import { HardLinkGroups, type LinkedContent } from './hard-links.js';

/** Most unreadable entries, and most files changed while read, a source record names (a snapshot's size stays bounded). */
export const MAX_RECORDED_ERRORS = 1000;
const STAT_CONCURRENCY = 16;
/**
 * Folders walked ahead of the ones still finishing. Their files wait in the encoders'
 * batches, so this sets how far ahead the encoder threads are fed: with 8, each idled a
 * third of the backup (1 GiB, 50,000 files in 2,000 folders). Memory is bounded by the
 * batches and packs in flight, not by this; a folder's listing is small.
 */
const MAX_OPEN_DIRS = 32;
/** A folder of more than STREAMED_ABOVE entries is handed to the sink as its entries finish (StreamedFolder), this many at a time ... */
const STREAM_WINDOW = 2048;
/** ... while the walk reads this many windows ahead. */
const WINDOWS_AHEAD = 2;
/**
 * A previous folder of at most this many parts is read whole while its listing comes: parts
 * average about 2,048 entries (docs/format.md), so these are folders of about STREAMED_ABOVE
 * entries and fewer, 262,144 at the very most.
 */
const WHOLE_PARTS = 32;

/** What a walk counts as it goes (a backup's progress holds more). */
export interface WalkProgress {
  filesDone: number;
  bytesDone: number;
  bytesAdded: number;
  errors: number;
  currentPath: string;
}

/** What one source's walk found and stored (a snapshot's SourceStats). */
export interface WalkStats {
  files: number;
  dirs: number;
  others: number;
  bytes: number;
  newFiles: number;
  changedFiles: number;
  unchangedFiles: number;
  /** bytes read from the source (unchanged files are not read) */
  bytesRead: number;
  /** bytes this backup added to the repository, after deduplication and compression */
  bytesAdded: number;
}

/** Entries left out (a snapshot's ExclusionRecord). */
export interface ExclusionCount {
  /** an exclusion class name, or "exclude" for the source's own patterns, or "include" for what include patterns left out, or a mount's reason */
  class: string;
  count: number;
  bytes: number;
}

/** A file's content as stored: its blobs, its length, and whether the file changed while it was read (see util/file-mark.ts). */
export interface StoredFile {
  content: FileContent;
  size: number;
  changed: boolean;
}

/** A file's place in the sink's pipeline, held while its content is stored. */
export interface Admission {
  release(): void;
}

/**
 * Where a walk's content and folders go: the backup's repository side. The walk decides
 * what to store (new and changed files, every folder whose entries differ from the
 * previous snapshot's); the sink stores it, and bounds how much is in flight.
 */
export interface FilesSink {
  /**
   * The previous snapshot's folder stored under `id`: its nodes, or a large folder's parts
   * to read one at a time; undefined when it cannot be read (its files are then read again).
   */
  previousFolder(id: string): Promise<PreviousNodes | undefined>;
  /** Whether content or a folder stored under `id` is there to be referenced again. */
  has(id: string): boolean;
  /** A place for a file of `size` bytes when one is free now, without a promise (most files). */
  admitNow(size: number): Admission | undefined;
  /** A place for a file of `size` bytes, once the pipeline has room. */
  admit(size: number): Promise<Admission>;
  /**
   * Store a file's content; `stored` is told each piece (its stored bytes, 0 when
   * deduplicated). `mark` is what the walk saw of the file (its size, its change time):
   * compared after the read, it tells whether the file changed meanwhile. Resolves with the
   * content's ids and length, and whether it changed. `previous`: the content of the
   * file's previous version, most of which a changed large file often still holds.
   */
  storeFile(path: string, mark: FileMark, admission: Admission, stored: (storedBytes: number, length: number) => void, previous?: FileContent): Promise<StoredFile>;
  /** Store a folder's entries; resolves with the id its node records. */
  saveFolder(nodes: TreeNode[]): Promise<string>;
  /** Store a large folder's entries as they come, in name order (see FolderWriter). */
  folderWriter(): FolderWriter;
}

/** A previous snapshot's folder: its nodes, or (a large folder) its parts in name order, read one at a time or all at once. */
export type PreviousNodes = readonly TreeNode[] | { parts: number; part(i: number): Promise<readonly TreeNode[]>; whole(): Promise<readonly TreeNode[]> };

/** A folder stored an entry at a time, so that a large one is never held whole. */
export interface FolderWriter {
  add(node: TreeNode): Promise<void>;
  /** Resolves with the id the folder's node records. */
  finish(): Promise<string>;
}

/**
 * Walks one files source: lists folders (several ahead of the ones still finishing),
 * applies exclusions and include patterns, leaves out pseudo and other file systems,
 * keeps a file whose size, times and inode match the previous snapshot's as it was, reads
 * a file of several links once, and hands the rest to a FilesSink. Errors reading an entry
 * are counted and recorded for the source; the sink's own errors (repository full or
 * damaged, interrupted) end the walk.
 */
export class FilesWalker {
  readonly stats: WalkStats = { files: 0, dirs: 0, others: 0, bytes: 0, newFiles: 0, changedFiles: 0, unchangedFiles: 0, bytesRead: 0, bytesAdded: 0 };
  private readonly excluded = new Map<string, ExclusionCount>();
  readonly errors: Array<{ path: string; message: string }> = [];
  /** files that changed while they were read (see util/file-mark.ts): saved as read; the first of them, and how many */
  readonly changedWhileRead: string[] = [];
  changedCount = 0;
  private readonly matcher: ExclusionMatcher;
  /** folders whose walk runs while the walk has gone on past them */
  private openDirs = 0;
  /** the first of the sink's errors (full, damaged, interrupted): it ends the whole walk, not just one folder */
  private fatal: unknown;
  /** files of more than one link: read at the first, their content taken by the others */
  private readonly hardLinks = new HardLinkGroups();

  constructor(
    private readonly source: FilesSource,
    exclusionClasses: Record<string, readonly string[]>,
    private readonly sink: FilesSink,
    private readonly progress: WalkProgress,
    private readonly report: () => void,
    private readonly checkInterrupt: () => void,
    /** shared with the sink's reads of files: one judgement of whether blocking calls still pay */
    private readonly reader: AdaptiveReader,
    private readonly prefetched?: ListingPrefetch,
    private readonly listingThread?: ListingThread,
  ) {
    this.matcher = new ExclusionMatcher({ include: source.include, exclude: source.exclude, classes: exclusionClasses });
  }

  /** What was left out, per class, in a stable order. */
  exclusions(): ExclusionCount[] {
    return [...this.excluded.values()].sort((a, b) => a.class.localeCompare(b.class));
  }

  private fail(relPath: string, err: unknown): void {
    this.progress.errors++;
    if (this.errors.length < MAX_RECORDED_ERRORS) this.errors.push({ path: `/${this.source.name}/${relPath}`, message: errorMessage(err) });
  }

  private async exclude(reason: string, full: string, st: EntryStat): Promise<void> {
    const rec = this.excluded.get(reason) ?? { class: reason, count: 0, bytes: 0 };
    if (st.type === 'dir') {
      const m = await measureTree(full);
      rec.count += m.count;
      rec.bytes += m.bytes;
    } else {
      rec.count += 1;
      rec.bytes += st.size;
    }
    this.excluded.set(reason, rec);
  }

  /**
   * Store the folder at `dir`: the id its node records and how many entries it holds.
   * `insideInclude` means an include pattern matched an ancestor.
   */
  async saveDir(dir: string, relDir: string, previousId: string | undefined, insideInclude: boolean, dev: string): Promise<{ id: string; entries: number }> {
    this.checkInterrupt();
    let listing: Listing | undefined;
    /** the listing thread's, with its text split at NULs */
    let compact: { listing: CompactListing; fields: string[] } | undefined;
    let found: PreviousNodes | undefined;
    /** the previous folder's nodes read whole, where that was started before the listing came */
    let early: Promise<readonly TreeNode[] | undefined> | undefined;
    if (this.listingThread) {
      // Asked for first: the thread lists it (or has already) while the previous tree loads.
      const listed = this.listingThread.list(dir);
      found = previousId === undefined ? undefined : await this.sink.previousFolder(previousId);
      // Read while the thread lists, where they are few enough to hold whole anyway: read
      // after the listing, a folder of 18,000 entries kept a no-change backup waiting 5% longer.
      early = found !== undefined && (!('parts' in found) || found.parts <= WHOLE_PARTS) ? wholeNodes(found) : undefined;
      const answer = await listed;
      const error = answer && listingError(answer);
      // A folder the thread lists is not a large one: its previous nodes are compared whole.
      const nodes = answer && !error ? await (early ?? wholeNodes(found)) : undefined;
      if (answer && nodes) {
        const same = unchangedFolder(answer, nodes, relDir, dev, this.matcher);
        const kept = same && (await this.keepUnchanged(dir, relDir, previousId!, nodes, same));
        if (kept) return kept;
        found = nodes;
      }
      if (error) {
        this.fail(relDir, error);
        listing = { names: [], stats: [] };
      } else if (answer) {
        compact = { listing: answer, fields: answer.text.split('\0') };
      }
    } else {
      found = previousId === undefined ? undefined : await this.sink.previousFolder(previousId);
    }
    if (!compact) listing ??= await this.listing(dir, relDir);
    const count = compact ? compact.listing.count : listing!.names.length;
    // A large folder's previous nodes are read a part at a time as the walk reaches their names.
    const previous = count > STREAMED_ABOVE && found !== undefined && 'parts' in found ? { byName: new Map<string, TreeNode>(), cursor: previousCursor(found) } : byName(await (early ?? wholeNodes(found)));
    // Slots keep the folder in name order while files finish in any order.
    const slots: Array<TreeNode | undefined> = new Array(count);
    let tasks: Array<Promise<void>> = [];
    const streamed = count > STREAMED_ABOVE ? new StreamedFolder(slots, this.sink.folderWriter()) : undefined;
    for (let i = 0; i < count && this.fatal === undefined; i++) {
      if (streamed && i % STREAM_WINDOW === 0) {
        tasks = await streamed.nextWindow();
        if (listing && listing.stats.length < count) await this.statWindow(dir, listing, i);
      }
      const place = (n: TreeNode) => {
        slots[i] = n;
      };
      const name = compact ? entryName(compact.fields, i) : listing!.names[i]!;
      // A large previous folder is read a part at a time as the names come, in the same order.
      const before = previous.cursor ? await previous.cursor.find(name) : previous.byName.get(name);
      let st: EntryStat | NodeJS.ErrnoException;
      let target: string | NodeJS.ErrnoException | undefined;
      if (compact) {
        // An entry as the previous snapshot recorded it keeps its node, without a stat made of it.
        if (before && before.type !== 'dir' && sameEntry(compact.listing, compact.fields, i, before) && this.keepRecorded(relDir, before, place)) continue;
        const entry = readEntry(compact.listing, compact.fields, i);
        st = entry.st ?? entry.error;
        target = entry.st && entry.target;
      } else {
        st = listing!.stats[i]!;
        target = listing!.targets?.[i];
        // Dropped as soon as it is read: a folder's files wait for the encoders until its last is stored.
        listing!.stats[i] = undefined;
      }
      const full = entryPath(dir, name);
      const rel = relDir ? `${relDir}/${name}` : name;
      if (st instanceof Error) {
        if ((st as NodeJS.ErrnoException).code !== 'ENOENT') this.fail(rel, st);
        continue;
      }
      const type = st.type;
      if (!type) continue;
      const isDir = type === 'dir';
      const verdict = this.matcher.classify(rel, isDir);
      if (verdict.excluded) {
        await this.exclude(verdict.reason, full, st);
        continue;
      }
      const included = insideInclude || !this.matcher.hasIncludes || this.matcher.isIncluded(rel, isDir);
      if (!included && !isDir) {
        await this.exclude('include', full, st);
        continue;
      }
      const node = nodeFromStat(name, type, st);
      if (type === 'file') {
        if (!(await this.startFile(full, rel, st, node, before, place, tasks))) break;
      } else if (isDir) {
        await this.startSubdir(full, rel, st, node, before, included, dev, place, tasks);
      } else if (await this.readSpecial(full, rel, type, st, node, target)) {
        place(node);
      }
    }
    if (streamed) {
      // Every file first: a walk that must stop stores no tree.
      await streamed.settle();
      if (this.fatal !== undefined) throw this.fatal;
      return streamed.finish();
    }
    await Promise.all(tasks);
    if (this.fatal !== undefined) throw this.fatal;
    const nodes = slots.filter((n): n is TreeNode => n !== undefined);
    // An unchanged folder is the previous snapshot's: no serialising and hashing it again.
    if (previous.nodes && sameNodes(nodes, previous.nodes) && this.sink.has(previousId!)) return { id: previousId!, entries: nodes.length };
    return { id: await this.sink.saveFolder(nodes), entries: nodes.length };
  }

  /** The folder's names in order and their lstat results (read ahead while the key was derived, where it was). */
  private async listing(dir: string, relDir: string): Promise<Listing> {
    const prefetched = this.prefetched?.take(dir);
    if (prefetched) return prefetched;
    let names: string[];
    try {
      names = sortNames(await this.reader.names(dir));
    } catch (err) {
      this.fail(relDir, err);
      names = [];
    }
    // A large folder's entries are read a window at a time as the walk reaches them (statWindow).
    if (names.length > STREAMED_ABOVE) return { names, stats: [] };
    return { names, stats: await this.reader.lstatAll(dir, names, STAT_CONCURRENCY, entryStat) };
  }

  /** The lstat results of a large folder's next window of entries, from `from` on. */
  private async statWindow(dir: string, listing: Listing, from: number): Promise<void> {
    const stats = await this.reader.lstatAll(dir, listing.names.slice(from, from + STREAM_WINDOW), STAT_CONCURRENCY, entryStat);
    for (let k = 0; k < stats.length; k++) listing.stats[from + k] = stats[k];
  }

  /**
   * A folder the listing thread found as the previous snapshot recorded it: its files keep
   * their content lists where all their blobs are still stored, its subfolders are walked,
   * and the previous tree is its tree again unless a subfolder's changed. Undefined when a
   * blob or the tree itself is gone from the repository: the folder is then walked entry
   * by entry (its files read again).
   */
  private async keepUnchanged(dir: string, relDir: string, previousId: string, previous: readonly TreeNode[], found: UnchangedFolder): Promise<{ id: string; entries: number } | undefined> {
    if (!this.sink.has(previousId)) return undefined;
    for (const content of found.content) for (const id of content) if (!this.sink.has(id)) return undefined;
    this.countUnchanged(relDir, found.files, found.bytes);
    this.stats.others += found.others;
    const subtrees: Array<string | undefined> = new Array(found.subfolders.length);
    const tasks: Array<Promise<void>> = [];
    for (let i = 0; i < found.subfolders.length && this.fatal === undefined; i++) {
      const [name, dev, previousSubtree] = found.subfolders[i]!;
      const rel = relDir ? `${relDir}/${name}` : name;
      await this.walkSubfolder(
        this.saveDir(entryPath(dir, name), rel, previousSubtree, true, dev).then(
          ({ id }) => {
            subtrees[i] = id;
            this.stats.dirs++;
          },
          (err: unknown) => this.failed(rel, err),
        ),
        tasks,
      );
    }
    await Promise.all(tasks);
    if (this.fatal !== undefined) throw this.fatal;
    if (subtrees.every((id, i) => id === found.subfolders[i]![2])) return { id: previousId, entries: found.entries };
    // A subfolder changed (or could not be read): this folder's tree is written anew.
    const nodes: TreeNode[] = [];
    let sub = 0;
    for (const node of previous) {
      if (node.type !== 'dir') nodes.push(rewrittenNode(node));
      else if (subtrees[sub++] !== undefined) nodes.push(rewrittenNode(node, subtrees[sub - 1]));
    }
    return { id: await this.sink.saveFolder(nodes), entries: nodes.length };
  }

  /**
   * An entry the listing thread found as the previous snapshot recorded it, in a folder
   * where something else changed: its node again, unless an exclusion now leaves it out
   * or (a file) a blob of it is no longer stored. False: the walk goes on with it as with
   * any other entry.
   */
  private keepRecorded(relDir: string, recorded: TreeNode, place: (n: TreeNode) => void): boolean {
    const rel = relDir ? `${relDir}/${recorded.name}` : recorded.name;
    if (this.matcher.hasIncludes || this.matcher.classify(rel, false).excluded) return false;
    if (recorded.type === 'file') {
      if (!contentPieces(recorded.content).every((id) => this.sink.has(id))) return false;
      this.countUnchanged(rel, 1, recorded.size!);
    } else {
      this.stats.others++;
    }
    place(rewrittenNode(recorded));
    return true;
  }

  /**
   * A file: unchanged since the previous snapshot, its node as it was; a further link of a
   * file this walk reads, that read's content (see HardLinkGroups); else stored by the sink
   * in the background. False when the walk must stop.
   */
  private async startFile(full: string, rel: string, st: EntryStat, node: TreeNode, previous: TreeNode | undefined, place: (n: TreeNode) => void, tasks: Array<Promise<void>>): Promise<boolean> {
    if (this.reuseUnchanged(rel, st, node, previous)) {
      place(node);
      return true;
    }
    const earlier = st.nlink > 1 ? this.hardLinks.earlier(st) : undefined;
    if (earlier) {
      tasks.push(
        this.linkedFile(full, rel, st, node, previous, earlier).then(
          (placed) => {
            if (placed) place(node);
          },
          (err: unknown) => this.failed(rel, err),
        ),
      );
      return true;
    }
    const settleLinks = st.nlink > 1 ? this.hardLinks.reading(st) : undefined;
    const size = st.size;
    const admission = this.sink.admitNow(size) ?? (await this.sink.admit(size));
    if (this.fatal !== undefined) {
      admission.release();
      settleLinks?.(undefined);
      return false;
    }
    tasks.push(
      this.saveFile(full, rel, size, node, previous, admission)
        .then((saved) => {
          settleLinks?.(saved.changed ? undefined : { content: saved.content, size: saved.size });
          place(node);
        })
        .catch((err: unknown) => {
          settleLinks?.(undefined);
          this.failed(rel, err);
        })
        .finally(() => admission.release()),
    );
    return true;
  }

  /**
   * A link of a file another link of which this walk reads: its content once that read
   * ends, or (the read failed, or saw the file change) read on its own. False when the walk
   * stopped meanwhile: nothing to place.
   */
  private async linkedFile(full: string, rel: string, st: EntryStat, node: TreeNode, previous: TreeNode | undefined, earlier: Promise<LinkedContent | undefined>): Promise<boolean> {
    const linked = await earlier;
    if (linked) {
      node.size = linked.size;
      node.content = linked.content;
      this.progress.currentPath = `/${this.source.name}/${rel}`;
      this.stats.files++;
      this.progress.bytesDone += linked.size;
      this.countStored(previous, linked.size);
      return true;
    }
    if (this.fatal !== undefined) return false;
    const admission = await this.sink.admit(st.size);
    try {
      if (this.fatal !== undefined) return false;
      await this.saveFile(full, rel, st.size, node, previous, admission);
      return true;
    } finally {
      admission.release();
    }
  }

  /** A subfolder (or a mount recorded as empty), walked on while this folder goes on where it may. */
  private async startSubdir(
    full: string,
    rel: string,
    st: EntryStat,
    node: TreeNode,
    previous: TreeNode | undefined,
    included: boolean,
    dev: string,
    place: (n: TreeNode) => void,
    tasks: Array<Promise<void>>,
  ): Promise<void> {
    const finish = (sub: { id: string; entries: number }) => {
      // A folder kept only because include patterns might match inside it goes if nothing did.
      if (!included && sub.entries === 0) return;
      node.subtree = sub.id;
      this.stats.dirs++;
      place(node);
    };
    const failed = (err: unknown) => this.failed(rel, err);
    const sub = st.dev !== dev && (await this.excludeMount(full)) ? this.emptyDir() : this.saveDir(full, rel, previous?.subtree, included, st.dev);
    await this.walkSubfolder(sub.then(finish, failed), tasks);
  }

  /**
   * A subfolder's walk: left running while the walk goes on to the next folder, as long as
   * fewer than MAX_OPEN_DIRS are (otherwise every folder would wait for its slowest file,
   * idling the pipeline), else waited for.
   */
  private async walkSubfolder(walk: Promise<void>, tasks: Array<Promise<void>>): Promise<void> {
    if (this.openDirs >= MAX_OPEN_DIRS) return walk;
    this.openDirs++;
    tasks.push(walk.finally(() => this.openDirs--));
  }

  /** A symlink's target or a device's number; false (and recorded) when it cannot be read. */
  private async readSpecial(full: string, rel: string, type: TreeNode['type'], st: EntryStat, node: TreeNode, listed: string | Error | undefined): Promise<boolean> {
    try {
      if (listed instanceof Error) throw listed;
      if (type === 'symlink') node.target = listed ?? (await this.reader.readLink(full));
      if (type === 'chardev' || type === 'blockdev') node.rdev = st.rdev;
      this.stats.others++;
      return true;
    } catch (err) {
      this.failed(rel, err);
      return false;
    }
  }

  /**
   * Whether the mount point `full` is recorded as an empty folder instead of walked: another
   * file system with oneFileSystem, and always a pseudo file system (/proc, /sys, /dev).
   */
  private async excludeMount(full: string): Promise<boolean> {
    const reason = await leftOutMount(full, this.source.oneFileSystem);
    if (!reason) return false;
    const rec = this.excluded.get(reason) ?? { class: reason, count: 0, bytes: 0 };
    rec.count++;
    this.excluded.set(reason, rec);
    return true;
  }

  private async emptyDir(): Promise<{ id: string; entries: number }> {
    return { id: await this.sink.saveFolder([]), entries: 0 };
  }

  /** The sink's own errors (repository full or damaged, interrupted) end the walk; a source entry's error does not. */
  private failed(rel: string, err: unknown): void {
    if (err instanceof StackvaultError) this.fatal ??= err;
    else this.fail(rel, err);
  }

  /**
   * A file whose size, times and inode match the previous snapshot's keeps its content
   * list without being read. Decided here, synchronously: a no-change backup is 50,000 of
   * these, and a slot and a promise each were a tenth of its time. A file of many blobs is
   * checked by its content parts, which prune keeps or deletes with the blobs they list.
   */
  private reuseUnchanged(rel: string, st: EntryStat, node: TreeNode, previous: TreeNode | undefined): boolean {
    if (
      previous?.type !== 'file' ||
      previous.size !== st.size ||
      previous.mtime !== node.mtime ||
      previous.ctime !== node.ctime ||
      previous.inode !== node.inode ||
      previous.content === undefined ||
      !contentPieces(previous.content).every((id) => this.sink.has(id))
    ) {
      return false;
    }
    node.size = previous.size;
    node.content = previous.content;
    this.countUnchanged(rel, 1, node.size);
    return true;
  }

  /** `files` files of `bytes` kept as the previous snapshot had them, at `rel`. */
  private countUnchanged(rel: string, files: number, bytes: number): void {
    this.progress.currentPath = `/${this.source.name}/${rel}`;
    this.stats.files += files;
    this.stats.unchangedFiles += files;
    this.stats.bytes += bytes;
    this.progress.filesDone += files;
    this.progress.bytesDone += bytes;
  }

  private async saveFile(full: string, rel: string, size: number, node: TreeNode, previous: TreeNode | undefined, admission: Admission): Promise<StoredFile> {
    this.progress.currentPath = `/${this.source.name}/${rel}`;
    this.stats.files++;
    const saved = await this.sink.storeFile(
      full,
      markOf(size, node.ctime),
      admission,
      (storedBytes, length) => {
        this.stats.bytesAdded += storedBytes;
        this.progress.bytesAdded += storedBytes;
        this.progress.bytesDone += length;
        this.report();
      },
      previous?.type === 'file' ? previous.content : undefined,
    );
    node.size = saved.size;
    node.content = saved.content;
    // Saved as read, and reported, as tar and borg do: a database's files copied while it
    // runs, or an application's store written meanwhile, may not come back usable.
    if (saved.changed) {
      this.changedCount++;
      if (this.changedWhileRead.length < MAX_RECORDED_ERRORS) this.changedWhileRead.push(`/${this.source.name}/${rel}`);
    }
    this.stats.bytesRead += saved.size;
    this.countStored(previous, saved.size);
    return saved;
  }

  /** A file stored by this walk (read, or taken from a link read), `bytes` long. */
  private countStored(previous: TreeNode | undefined, bytes: number): void {
    this.stats.bytes += bytes;
    if (previous) this.stats.changedFiles++;
    else this.stats.newFiles++;
    this.progress.filesDone++;
    this.report();
  }
}

/**
 * A large folder's entries, handed to the sink's folder writer a window at a time once
 * every file of the window is stored, while the walk goes on a window or two ahead: a
 * folder of 300,000 files held every node and every file's task until its last (270 MiB).
 */
class StreamedFolder {
  /** the tasks of each window not yet handed on */
  private readonly windows: Array<Array<Promise<void>>> = [];
  /** windows handed on */
  private handed = 0;
  private entries = 0;

  constructor(
    private readonly slots: Array<TreeNode | undefined>,
    private readonly out: FolderWriter,
  ) {}

  /** The next window's task list, once the windows before the last WINDOWS_AHEAD are handed on. */
  async nextWindow(): Promise<Array<Promise<void>>> {
    while (this.windows.length - this.handed >= WINDOWS_AHEAD) await this.handOn();
    const tasks: Array<Promise<void>> = [];
    this.windows.push(tasks);
    return tasks;
  }

  async finish(): Promise<{ id: string; entries: number }> {
    while (this.handed < this.windows.length) await this.handOn();
    return { id: await this.out.finish(), entries: this.entries };
  }

  /** Wait for the files still being stored, handing nothing on yet. */
  async settle(): Promise<void> {
    await Promise.all(this.windows.flat());
  }

  private async handOn(): Promise<void> {
    const window = this.handed;
    await Promise.all(this.windows[window]!);
    this.windows[window] = [];
    const end = Math.min((window + 1) * STREAM_WINDOW, this.slots.length);
    for (let i = window * STREAM_WINDOW; i < end; i++) {
      const node = this.slots[i];
      if (node === undefined) continue;
      this.slots[i] = undefined;
      this.entries++;
      await this.out.add(node);
    }
    this.handed++;
  }
}

/** The previous snapshot's entries of a folder: by name, or (a large folder) through a cursor. */
interface PreviousFolder {
  /** the folder's nodes, where it was read whole */
  nodes?: readonly TreeNode[];
  byName: Map<string, TreeNode>;
  cursor?: NodeCursor;
}

function byName(nodes: readonly TreeNode[] | undefined): PreviousFolder {
  const named = new Map<string, TreeNode>();
  for (const n of nodes ?? []) named.set(n.name, n);
  return { nodes, byName: named };
}

/** A previous folder's nodes, all of them; undefined where a part cannot be read. */
async function wholeNodes(found: PreviousNodes | undefined): Promise<readonly TreeNode[] | undefined> {
  if (found === undefined || !('parts' in found)) return found;
  return found.whole().catch(() => undefined);
}

/**
 * A large previous folder's entries by name, for a walk that asks in name order: one part
 * is held at a time. A name asked out of order, or one in a part that cannot be read, only
 * finds nothing: that entry is read again, and the next part's are found as before.
 */
function previousCursor(previous: Exclude<PreviousNodes, readonly TreeNode[]>): NodeCursor {
  return new NodeCursor(
    (async function* () {
      for (let i = 0; i < previous.parts; i++) yield await previous.part(i).catch(() => []);
    })(),
  );
}

/** Totals for progress and ETA: a stat-only walk of the sources that runs alongside the backup. */
export async function scanTotals(sources: FilesSource[], progress: { filesTotal: number; bytesTotal: number; scanDone: boolean }, signal?: AbortSignal): Promise<void> {
  for (const source of sources) {
    const matcher = new ExclusionMatcher({ include: source.include, exclude: source.exclude, classes: source.exclusionClasses ?? resolveExclusionClasses() });
    /** folders an include pattern matched: everything below them is kept */
    const includedDirs = new Set<string>();
    await statWalk(
      resolve(source.path),
      (rel, st) => {
        const isDir = st.isDirectory();
        if (matcher.classify(rel, isDir).excluded) return false;
        const parent = rel.includes('/') ? rel.slice(0, rel.lastIndexOf('/')) : '';
        const included = !matcher.hasIncludes || includedDirs.has(parent) || matcher.isIncluded(rel, isDir);
        if (isDir) {
          if (included) includedDirs.add(rel);
          return true;
        }
        if (st.isFile() && included) {
          progress.filesTotal++;
          progress.bytesTotal += st.size;
        }
        return false;
      },
      signal,
      { oneFileSystem: source.oneFileSystem },
    );
  }
  progress.scanDone = true;
}
