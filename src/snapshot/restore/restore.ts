import { randomBytes } from 'node:crypto';
import { close as closeFd, mkdirSync } from 'node:fs';
import { link, lstat, mkdir, open, readdir, rename, rm, symlink, unlink } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { BlobBatchLoader } from '../../repo/decode/blob-batch-loader.js';
import type { BlobLoader } from '../../repo/roles.js';
import type { Repository } from '../../repo/repository.js';
import type { PackFiles } from '../../repo/decode/pack-spool.js';
import { applyMetadata, applyMetadataSync, makeSymlinkSync, writeSmallFile, type RestorableMetadata, type SmallFileCreation } from '../../sources/files/restore.js';
import { Semaphore } from '../../util/concurrency.js';
import { openForDirectWrites } from '../../util/direct-io.js';
import { BlockingWhileFast, SMALL_FILE_BYTES, entryPath } from '../../util/adaptive-io.js';
import { EventLoopTurns } from '../../util/event-loop-turns.js';
import { IntegrityError, InterruptedError, ObjectNotFoundError, StackvaultError, UsageError, describeSystemError, errorMessage } from '../../util/errors.js';
import { SmallFileWriters, startWriterThreads, type WriterThreads } from './small-file-writers.js';
import type { SnapshotRef } from '../snapshot.js';
import { contentLists, isSplitContent, smallFileContent, type FileContent } from '../content-list.js';
import { TreeLoader, childPath, type TreeNode } from '../tree.js';
import { findNode, normalizeSnapshotPath, walkTree } from '../walk.js';
import { osPath } from '../../util/os-path.js';
import { paceForFiles } from '../../util/v8-tiering.js';
import { cannotRecreate, createSpecialFile } from '../../sources/files/special-files.js';
import { isAllZeros, type FilePlace } from './file-places.js';

/**
 * Files in flight at once. Their blobs are decoded on a worker in batches, so enough must
 * be asked for together to fill batches and keep both threads busy; a larger file also
 * reads ahead. Measured on 1 GiB / 50,000 files into tmpfs: 6 files and one blob at a
 * time 4.8 s, these 3.9 s. Memory: 128 x 256 KiB + 12 x (4 MiB ahead + one chunk).
 * The writer threads may want more small files at once (SmallFileWriters.filesInFlight).
 */
const SMALL_FILE_CONCURRENCY = 128;
const FILE_CONCURRENCY = 12;
/**
 * Threads writing small files and decoding larger files' blobs: one per core. Measured on
 * 1 GiB / 50,000 files to disk, 2 cores: one thread (the main one) 6.5 s, two writers
 * 5.8 s. More threads than cores once paid while every file of 64 KiB and more was written
 * past the page cache (four took 3.54-5.03 s against three's 3.79-5.41 s, nine alternating
 * pairs into a fresh ext4, peak RSS 362 against 323 MiB), and no longer do (eighth
 * session, four alternating runs each, medians): a copy of /usr/share and /usr/lib of
 * 1.05 GB (35,000 entries, through the page cache) took 3.35 s with two threads and 3.99 s
 * with four, peak RSS 215 against 267 MiB; one of 1.24 GB (37,000 entries, past the page
 * cache) 4.54 s against 4.71 s, 218 against 268 MiB. Each thread also loads its modules
 * (60-90 ms of a core) as the restore starts.
 */
function writerThreads(): number {
  return availableParallelism();
}
/** bytes of one file's next blobs read and decoded while the current one is written (at least one blob) */
const BYTES_AHEAD = 4 * 1024 * 1024;
/**
 * Restored files go past the page cache (see direct-io.ts) in a restore of at least this
 * many bytes; a smaller one writes through it, as restic does. Each file of 64 KiB and more
 * written directly waits for the disk. Onto this machine's disk (medians, alternating), a
 * restore of 97 MB (9,600 files) through rclone took 1.52 s directly against 1.28 s through
 * the cache; of /usr/lib/x86_64-linux-gnu (687 MiB) 2.13 against 1.94 s; of that and a copy
 * of /usr/share (1.23 GiB, 83,000 files) 4.77 against 5.16 s (docs/performance.md, seventh
 * session).
 */
const DIRECT_RESTORE_MIN_TOTAL_BYTES = 1024 * 1024 * 1024;

/** A restore's options, with what it decided before writing. */
type WritingOptions = RestoreOptions & { directWrites: boolean };
/**
 * Folders restored ahead of the ones still finishing. Enough that the small files gathered
 * for the writers come from as many folders as a backup packs at once (see
 * small-file-writers.ts); a folder open costs its tree and its files' tasks.
 */
const MAX_OPEN_DIRS = 64;

export interface RestoreProgress {
  filesDone: number;
  filesTotal: number;
  bytesDone: number;
  bytesTotal: number;
  errors: number;
  currentPath: string;
}

export interface RestoreOptions {
  target: string;
  /** snapshot paths ("/source/dir") to restore; everything when empty */
  include?: string[];
  /** restore into a folder that already holds files, replacing what has the same name */
  force?: boolean;
  /** a snapshot folder ("/source/dir") whose content goes straight into target, like restic's snapshot:/path */
  from?: string;
  progress?: (p: RestoreProgress) => void;
  signal?: AbortSignal;
  /** writer threads started earlier (startRestoreThreads): the restore uses them, and closes them whatever happens */
  threads?: WriterThreads;
}

export interface RestoreResult {
  files: number;
  dirs: number;
  bytes: number;
  /** FIFOs and device nodes made */
  specials: number;
  errors: Array<{ path: string; message: string }>;
  /** entries the snapshot holds that cannot be made here (sockets; devices without root), with why */
  notRecreated: Array<{ path: string; message: string }>;
}

/**
 * Restore a snapshot into a folder. A damaged blob never leaves wrong data under a file's
 * name: a small file's blobs are all verified before the file is created, a larger file
 * is written to a temporary name and renamed once every blob has been verified. That file
 * is reported and the rest of the restore goes on.
 */
export async function restore(repo: Repository, ref: SnapshotRef, options: RestoreOptions): Promise<RestoreResult> {
  let threads = options.threads;
  try {
    // A bad include path is refused before anything is created.
    const includes = (options.include ?? []).map(normalizeSnapshotPath);
    await prepareTarget(options.target, options.force ?? false);
    // With more than one core, blobs are decoded (decrypted, decompressed, verified) and
    // written on worker threads: small files whole, a larger file's blobs into the file this
    // thread opened. This thread walks the trees, makes folders and links, and renames and
    // finishes the larger files. The threads start first, if they have not already: each
    // loads its modules (about 0.1 s) while this thread loads the index.
    const smallFiles = availableParallelism() > 1 ? new SmallFileWriters(repo, writerThreads(), options.force ?? false, threads) : undefined;
    threads = undefined;
    try {
      return await restoreWith(repo, ref, options, includes, smallFiles);
    } finally {
      await smallFiles?.close();
    }
  } finally {
    await threads?.close();
  }
}

/**
 * The threads a restore will write on, started now (before the repository is open: see
 * startWriterThreads), for RestoreOptions.threads; none on a machine with one core.
 */
export function startRestoreThreads(): WriterThreads | undefined {
  return availableParallelism() > 1 ? startWriterThreads(writerThreads()) : undefined;
}

async function restoreWith(
  repo: Repository,
  ref: SnapshotRef,
  options: RestoreOptions,
  includes: string[],
  smallFiles?: SmallFileWriters,
): Promise<RestoreResult> {
  const selected = (path: string): 'all' | 'ancestor' | 'no' => {
    if (includes.length === 0 || includes.includes('/')) return 'all';
    if (includes.some((inc) => path === inc || path.startsWith(inc + '/'))) return 'all';
    if (includes.some((inc) => inc.startsWith(path + '/'))) return 'ancestor';
    return 'no';
  };
  await repo.loadIndex();
  const loader = new TreeLoader(repo);
  const from = normalizeSnapshotPath(options.from ?? '/');
  let rootTree = ref.snapshot.tree;
  if (from !== '/') {
    const node = await findNode(loader, rootTree, from);
    if (node?.type !== 'dir' || !node.subtree) throw new UsageError(`not a folder in snapshot ${ref.id.slice(0, 8)}: ${from}`);
    rootTree = node.subtree;
  }

  // From a network repository, packs the restore needs most of are brought over while the
  // first walk finds them (see PackSpool), and the restore starts once the walk is done.
  // Beside it, the restore's own walk, its index lookups and its files took the main thread
  // from the first walk, which then decided on the copies later, and the writer threads
  // waited for them: a restore of /usr/share/perl, vim and icons (9,600 entries) through
  // rclone WebDAV took 1.40 s beside the walk, 1.29 s after it (medians of 10, alternating).
  const packFiles = smallFiles ? await repo.packFiles({ hashFile: (file) => smallFiles.decoder.hashFile(file) }) : undefined;
  const progress: RestoreProgress = { filesDone: 0, filesTotal: 0, bytesDone: 0, bytesTotal: 0, errors: 0, currentPath: '' };
  try {
    // What the whole snapshot holds, as its backup counted it (0 for a part of it).
    const { bytes: wholeBytes, files: wholeFiles } = from === '/' && (includes.length === 0 || includes.includes('/')) ? snapshotTotals(ref) : { bytes: 0, files: 0 };
    // A whole snapshot from a repository that holds no more data than the snapshot's own
    // bytes (a first backup restored on another host: a move) needs every pack: all are
    // brought over at once, not as a walk finds them (through SFTP that walk of 9,600
    // entries took 0.2-0.3 s, beside the copies on two cores, and the restore then waited
    // for them). What it may bring over that the restore does not need is at most the
    // restore's own size.
    const willReadAll = packFiles?.willReadAll?.bind(packFiles);
    const everyPack = wholeBytes > 0 && willReadAll !== undefined && readsEveryPack(repo, willReadAll, wholeBytes);
    const walked = options.progress !== undefined || includes.length > 0 || (packFiles?.willRead !== undefined && !everyPack);
    if (walked) await firstWalk({ repo, loader, rootTree, from, selected, includes, ref, wholeBytes, packFiles: everyPack ? undefined : packFiles, progress, signal: options.signal });
    packFiles?.planned?.();
    // Its size as the first walk counted it, else as the snapshot's backup did; a part of a
    // snapshot not walked is of a size not known, and goes past the cache as a large one.
    const restoreBytes = walked ? progress.bytesTotal : wholeBytes;
    const directWrites = !(restoreBytes > 0 && restoreBytes < DIRECT_RESTORE_MIN_TOTAL_BYTES);
    paceForFiles(walked ? progress.filesTotal : wholeFiles);
    smallFiles?.start(packFiles, directWrites);
    return await restoreTree(smallFiles ? new BlobBatchLoader(repo, smallFiles.decoder, packFiles) : repo, smallFiles, loader, rootTree, from, selected, progress, { ...options, directWrites });
  } finally {
    // The writers read from these files until their last batch is done.
    await smallFiles?.close();
    await packFiles?.close();
  }
}

/**
 * A first walk finds the totals for a progress display, checks that every include is in
 * the snapshot before anything is written, and tells the pack files what the restore will
 * read. Without any of these it would only load and parse every tree twice (the cache
 * holds a few hundred): 0.1 s of a 1 GiB restore.
 */
async function firstWalk(
  walk: {
    repo: Repository;
    loader: TreeLoader;
    rootTree: string;
    from: string;
    selected: Selection;
    includes: string[];
    ref: SnapshotRef;
    /** the bytes of a whole snapshot restored, as its backup counted them; 0 for a part of one */
    wholeBytes: number;
    packFiles: PackFiles | undefined;
    progress: RestoreProgress;
    signal?: AbortSignal;
  },
): Promise<void> {
  const { repo, selected, includes, progress } = walk;
  const willRead = walk.packFiles?.willRead?.bind(walk.packFiles);
  // The share of a whole snapshot walked so far lets the pack files judge a pack by what the
  // restore will likely need of it, early in the walk, instead of only once the walk has
  // found that need (see PackSpool.willRead).
  const { wholeBytes } = walk;
  const matchedIncludes = new Set<string>();
  // A folder whose tree is damaged is left to the restore, which names it; the totals leave it out.
  const unreadable: string[] = [];
  const turns = new EventLoopTurns();
  for await (const { path, node } of walkTree(walk.loader, walk.rootTree, walk.from, (path) => unreadable.push(path))) {
    // A signal is only seen at a turn, too: an interrupted walk stops before anything is written.
    if (turns.due) {
      await turns.take();
      throwIfInterrupted(walk.signal);
    }
    if (selected(path) !== 'all') continue;
    for (const inc of includes) if (path === inc || path.startsWith(inc + '/')) matchedIncludes.add(inc);
    if (node.type !== 'file') continue;
    progress.filesTotal++;
    progress.bytesTotal += node.size ?? 0;
    if (willRead) {
      const share = wholeBytes > 0 ? progress.bytesTotal / wholeBytes : undefined;
      const plan = (ids: readonly string[]) => {
        for (const id of ids) {
          // A blob the index lacks is left to the restore to report.
          const entry = repo.index.get(id);
          if (entry) willRead(entry.pack, entry.length, share);
        }
      };
      if (!isSplitContent(node.content)) plan(node.content ?? []);
      else await planParts(repo, node.content, plan);
    }
  }
  const hidden = (inc: string) => unreadable.some((dir) => dir === '/' || inc === dir || inc.startsWith(dir + '/'));
  const missing = includes.filter((inc) => inc !== '/' && !matchedIncludes.has(inc) && !hidden(inc));
  if (missing.length > 0) throw new UsageError(`not in snapshot ${walk.ref.id.slice(0, 8)}: ${missing.join(', ')}`);
}

/** A large file's blobs for the plan, its content parts read one at a time; a damaged part is left to the restore to report. */
async function planParts(repo: Repository, content: FileContent, plan: (ids: readonly string[]) => void): Promise<void> {
  try {
    for await (const ids of contentLists(repo, content)) plan(ids);
  } catch (err) {
    if (!(err instanceof IntegrityError) && !(err instanceof ObjectNotFoundError)) throw err;
  }
}

/** At most this many index entries are summed to judge whether a restore reads every pack. */
const EVERY_PACK_MOST_BLOBS = 1_000_000;

/**
 * Whether the repository's data blobs hold at most `wholeBytes` (the restore's own bytes)
 * of content, and if so, every pack holding them is planned to be brought over.
 */
function readsEveryPack(repo: Repository, willReadAll: NonNullable<PackFiles['willReadAll']>, wholeBytes: number): boolean {
  const packs = repo.index.dataPacks(EVERY_PACK_MOST_BLOBS);
  if (!packs || packs.length === 0) return false;
  let raw = 0;
  for (const p of packs) raw += p.raw;
  if (raw > wholeBytes) return false;
  return willReadAll(packs.map((p) => ({ pack: p.pack, storedBytes: p.stored })));
}

/** The files a snapshot holds and their bytes, as its backup counted them; 0 where it did not say. */
function snapshotTotals(ref: SnapshotRef): { bytes: number; files: number } {
  let bytes = 0;
  let files = 0;
  for (const source of ref.snapshot.sources ?? []) {
    bytes += typeof source.stats?.bytes === 'number' ? source.stats.bytes : 0;
    files += typeof source.stats?.files === 'number' ? source.stats.files : 0;
  }
  return { bytes, files };
}

async function restoreTree(
  blobs: BlobLoader,
  smallFiles: SmallFileWriters | undefined,
  loader: TreeLoader,
  rootTree: string,
  from: string,
  selected: Selection,
  progress: RestoreProgress,
  options: WritingOptions,
): Promise<RestoreResult> {
  const restorer = new TreeRestorer(blobs, smallFiles, loader, selected, progress, options);
  await restorer.restoreDir(rootTree, options.target, from);
  // The last files may have been written after the signal: the restore did not finish.
  throwIfInterrupted(options.signal);
  options.progress?.(progress);
  return restorer.result;
}

type Selection = (path: string) => 'all' | 'ancestor' | 'no';

/** What a folder still waits for: files and subfolders being written, and small files out on the writer threads. */
class FolderWork {
  private readonly tasks: Array<Promise<void>> = [];
  /** small files handed to the writer threads report back by callback; the folder waits for the count */
  writing = 0;
  private allWritten: (() => void) | undefined;

  /**
   * A file's or subfolder's work, left running while the folder's walk goes on. Its failure
   * is marked handled at once: a subfolder interrupted while this folder's walk still waited
   * (for a writer's slot) was an unhandled rejection, which ended Ctrl-C with a stack trace;
   * done() and settled() still see it.
   */
  add(task: Promise<void>): void {
    task.catch(() => undefined);
    this.tasks.push(task);
  }

  written(): void {
    if (--this.writing === 0) this.allWritten?.();
  }

  async done(): Promise<void> {
    await Promise.all(this.tasks);
    if (this.writing > 0) await new Promise<void>((resolve) => (this.allWritten = resolve));
  }

  /**
   * Every task settled, whatever it gave: a folder that stops early (interrupted) waits for
   * the subfolders it left running, which stop at the signal too, before the restore closes
   * its writers.
   */
  async settled(): Promise<void> {
    await Promise.allSettled(this.tasks);
  }
}

/**
 * Walks a snapshot's trees and restores what they hold: folders, files (small ones on the
 * writer threads, larger ones blob by blob here), links and special files, counting what
 * it did and what failed.
 */
class TreeRestorer {
  readonly result: RestoreResult = { files: 0, dirs: 0, bytes: 0, specials: 0, errors: [], notRecreated: [] };
  private readonly writer: FileWriter;
  /** dev:inode -> the restored path of the first link, once it is complete (undefined if it failed) */
  private readonly hardLinks = new Map<string, Promise<string | undefined>>();
  // Several files at once hide per-file I/O latency; folders are finished (metadata) after all they hold.
  private readonly fileSlots = new Semaphore(FILE_CONCURRENCY);
  private readonly smallFileSlots: Semaphore;
  private openDirs = 0;
  /** shared by the folders restored at once: whichever walks on takes the next turn */
  private readonly turns = new EventLoopTurns();

  constructor(
    blobs: BlobLoader,
    private readonly smallFiles: SmallFileWriters | undefined,
    private readonly loader: TreeLoader,
    private readonly selected: Selection,
    private readonly progress: RestoreProgress,
    private readonly options: WritingOptions,
  ) {
    this.writer = {
      blobs,
      smallFiles,
      progress,
      report: options.progress,
      io: new BlockingWhileFast(),
      creation: { replaceExisting: options.force ?? false, directWrites: options.directWrites },
      tmpPrefix: randomBytes(4).toString('hex'),
      tmpCount: 0,
      signal: options.signal,
    };
    this.smallFileSlots = new Semaphore(smallFiles?.filesInFlight ?? SMALL_FILE_CONCURRENCY);
  }

  private fail(path: string, err: unknown): void {
    this.progress.errors++;
    this.result.errors.push({ path, message: errorMessage(err) });
  }

  /** A file restored, or failed with `err`: counted, its slot freed, progress reported. */
  private fileSettled(path: string, node: TreeNode, release: () => void, err?: Error): void {
    if (err) {
      this.fail(path, err);
    } else {
      this.result.files++;
      this.result.bytes += node.size ?? 0;
    }
    release();
    this.options.progress?.(this.progress);
  }

  async restoreDir(treeId: string, dir: string, snapPath: string): Promise<void> {
    const work = new FolderWork();
    const names = new Set<string>();
    try {
      // A large folder is read a part at a time: its nodes are never all held at once.
      for await (const nodes of this.loader.nodeLists(treeId)) {
        for (const node of nodes) {
          // Without turns the walk kept the event loop to itself for 90-130 ms as it began
          // (through WebDAV and from S3).
          if (this.turns.due) await this.turns.take();
          throwIfInterrupted(this.options.signal);
          const path = childPath(snapPath, node.name);
          if (!isPlainName(node.name)) {
            // A damaged or forged tree must not write outside the target ("../..") or elsewhere in it ("a/b").
            this.fail(path, new IntegrityError(`tree ${treeId} is damaged: ${JSON.stringify(node.name)} is not a name a folder can hold`));
            continue;
          }
          if (names.has(node.name)) {
            // A second entry of one name (a folder, then a symlink called like it) could redirect
            // what is written below the first: only the first is restored.
            this.fail(path, new IntegrityError(`tree ${treeId} is damaged: it lists ${JSON.stringify(node.name)} twice`));
            continue;
          }
          names.add(node.name);
          const choice = this.selected(path);
          if (choice === 'no') continue;
          let finished = true;
          try {
            finished = await this.restoreEntry(node, entryPath(dir, node.name), path, choice, work);
          } catch (err) {
            if (err instanceof InterruptedError) throw err;
            this.fail(path, err);
          }
          if (finished) this.options.progress?.(this.progress);
        }
      }
    } catch (err) {
      await work.settled();
      throw err;
    }
    await work.done();
  }

  /** One entry of a folder; false when it goes on in the background (a folder, a file) and reports when done. */
  private async restoreEntry(node: TreeNode, dest: string, path: string, choice: 'all' | 'ancestor', work: FolderWork): Promise<boolean> {
    const { io } = this.writer;
    if (node.type === 'dir') {
      await makeDir(io, dest);
      const sub = (async () => {
        if (node.subtree) await this.restoreDir(node.subtree, dest, path);
        await finishEntry(io, dest, { ...node, type: 'dir' });
        if (choice === 'all') this.result.dirs++;
      })();
      if (this.openDirs >= MAX_OPEN_DIRS) {
        await sub;
        return true;
      }
      // The restore goes on to the next folders while this one's last files are written:
      // otherwise every folder waits for its slowest file and the pipeline idles.
      this.openDirs++;
      work.add(
        sub
          .catch((err: unknown) => {
            if (err instanceof InterruptedError) throw err;
            this.fail(path, err);
          })
          .finally(() => this.openDirs--),
      );
      return false;
    }
    if (node.type === 'file') {
      await this.startFile(node, dest, path, work);
      return false;
    }
    if (node.type === 'symlink') {
      // Without --force the target was empty: nothing of this name can be there.
      if (this.options.force) await removeExisting(dest);
      if (io.blocking) {
        io.timed(() => makeSymlinkSync(dest, node.target ?? '', node));
      } else {
        await symlink(osPath(node.target ?? ''), osPath(dest));
        await applyMetadata(dest, node);
      }
      return true;
    }
    // FIFOs and (as root) device nodes are made as tar makes them; a socket is reported.
    const why = cannotRecreate(node.type);
    if (why) {
      this.result.notRecreated.push({ path, message: why });
    } else {
      await removeExisting(dest);
      await createSpecialFile(dest, node, this.options.target);
      await applyMetadata(dest, node);
      if (choice === 'all') this.result.specials++;
    }
    return true;
  }

  /** A file, once a slot is free: a small one to the writer threads, a larger one (or a hard link) here. */
  private async startFile(node: TreeNode, dest: string, path: string, work: FolderWork): Promise<void> {
    const small = (node.size ?? 0) <= SMALL_FILE_BYTES;
    const slots = small ? this.smallFileSlots : this.fileSlots;
    // Most files find a slot free: taking it without a promise spares one per file.
    const release = slots.tryAcquire() ?? (await slots.acquire());
    this.progress.currentPath = path;
    if (small && this.smallFiles && !(node.nlink > 1)) {
      // Most files go this way: a callback instead of a chain of promises per file.
      work.writing++;
      this.smallFiles.write(dest, node, (err) => {
        if (!err) {
          this.progress.filesDone++;
          this.progress.bytesDone += node.size ?? 0;
        }
        this.fileSettled(path, node, release, err);
        work.written();
      });
      return;
    }
    work.add(
      restoreFile(this.writer, node, dest, this.hardLinks).then(
        () => this.fileSettled(path, node, release),
        (err: unknown) => this.fileSettled(path, node, release, err instanceof Error ? err : new Error(String(err))),
      ),
    );
  }
}

function throwIfInterrupted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw new InterruptedError('restore interrupted; files not yet complete were not written under their names');
}

/** A name one folder entry can have: not empty, not "." or "..", no "/" and no NUL. */
function isPlainName(name: unknown): name is string {
  return typeof name === 'string' && name !== '' && name !== '.' && name !== '..' && !name.includes('/') && !name.includes('\0');
}

async function prepareTarget(target: string, force: boolean): Promise<void> {
  try {
    const entries = await readdir(target);
    if (entries.length > 0 && !force) {
      throw new UsageError(`target ${target} is not empty; restore into an empty folder or add --force to write into it`);
    }
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
      if (err instanceof StackvaultError) throw err;
      throw describeSystemError(err, `cannot use ${target} as restore target`);
    }
    try {
      await mkdir(target, { recursive: true });
    } catch (e) {
      throw describeSystemError(e, `cannot create restore target ${target}`);
    }
  }
}

/** A folder made only its owner can enter until its metadata is set, once all it holds is restored. */
async function makeDir(io: BlockingWhileFast, path: string): Promise<void> {
  try {
    if (io.blocking) io.timed(() => mkdirSync(osPath(path), { mode: 0o700 }));
    else await mkdir(osPath(path), { mode: 0o700 });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    const st = await lstat(osPath(path));
    if (!st.isDirectory()) {
      await rm(osPath(path), { force: true });
      await mkdir(osPath(path), { mode: 0o700 });
    }
  }
}

/** applyMetadata() of a folder or file, in blocking calls while the file system answers fast. */
async function finishEntry(io: BlockingWhileFast, path: string, meta: RestorableMetadata & { type: 'dir' | 'file' }): Promise<void> {
  if (io.blocking) io.timed(() => applyMetadataSync(path, meta));
  else await applyMetadata(path, meta);
}

async function removeExisting(path: string): Promise<void> {
  try {
    const st = await lstat(osPath(path));
    if (st.isDirectory()) await rm(osPath(path), { recursive: true, force: true });
    else await unlink(osPath(path));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
}

/** What writing files needs throughout one restore. */
interface FileWriter {
  blobs: BlobLoader;
  smallFiles?: SmallFileWriters;
  progress: RestoreProgress;
  report?: (p: RestoreProgress) => void;
  io: BlockingWhileFast;
  /** how this thread creates small files (whether a name may exist already, for one) */
  creation: SmallFileCreation;
  tmpPrefix: string;
  tmpCount: number;
  signal?: AbortSignal;
}

async function restoreFile(writer: FileWriter, node: TreeNode, dest: string, hardLinks: Map<string, Promise<string | undefined>>): Promise<void> {
  const linkKey = node.nlink > 1 ? `${node.dev}:${node.inode}` : undefined;
  if (linkKey === undefined) return writeFileContent(writer, node, dest);
  // Claimed before any await: two links of a group must never both find it unclaimed.
  const first = hardLinks.get(linkKey);
  if (first === undefined) {
    // The first of a link group: later links wait for it, and write content themselves if it fails.
    const written = writeFileContent(writer, node, dest);
    hardLinks.set(
      linkKey,
      written.then(
        () => dest,
        () => undefined,
      ),
    );
    return written;
  }
  const firstLink = await first;
  if (firstLink === undefined) return writeFileContent(writer, node, dest);
  await removeExisting(dest);
  await link(osPath(firstLink), osPath(dest));
  writer.progress.filesDone++;
  writer.progress.bytesDone += node.size ?? 0;
}

async function writeFileContent(writer: FileWriter, node: TreeNode, dest: string): Promise<void> {
  const { blobs, progress, report } = writer;
  if (writer.smallFiles && (node.size ?? 0) <= SMALL_FILE_BYTES) {
    const { smallFiles } = writer;
    await new Promise<void>((resolve, reject) => smallFiles.write(dest, node, (err) => (err ? reject(err) : resolve())));
    progress.bytesDone += node.size ?? 0;
    progress.filesDone++;
    report?.(progress);
    return;
  }
  if (writer.io.blocking && (node.size ?? 0) <= SMALL_FILE_BYTES) {
    // Every blob is verified before a byte is written; then the file goes out in blocking calls.
    const parts: Buffer[] = [];
    for (const id of smallFileContent(node)) parts.push(await blobs.loadBlob(id, 'data'));
    const data = parts.length === 1 ? parts[0]! : Buffer.concat(parts);
    writer.io.timed(() => writeSmallFile(dest, data, node, writer.creation));
    progress.bytesDone += data.length;
    progress.filesDone++;
    report?.(progress);
    return;
  }
  const tmp = `${dest}.sv-restore-${writer.tmpPrefix}${(writer.tmpCount++).toString(36)}`;
  const fh = await open(osPath(tmp), 'wx', 0o600);
  let directFd: number | undefined;
  let length = 0;
  const written = (bytes: number) => {
    length += bytes;
    progress.bytesDone += bytes;
    report?.(progress);
  };
  try {
    const { content } = node;
    const { deliverBlob } = blobs;
    if (deliverBlob) {
      // The decode threads write each verified blob at its offset: its content never comes
      // back here (handing it back cost them a third of their time faulting in fresh memory).
      // Whole blocks go past the page cache where the file system allows (see direct-io.ts).
      directFd = writer.creation.directWrites !== false ? await openForDirectWrites(tmp) : undefined;
      for await (const bytes of ahead(blobs, content, (id, position) => deliverBlob.call(blobs, id, { fd: fh.fd, position, directFd } satisfies FilePlace))) {
        throwIfInterrupted(writer.signal);
        written(bytes);
      }
    } else {
      let position = 0;
      for await (const data of ahead(blobs, content, (id) => blobs.loadBlob(id, 'data'))) {
        throwIfInterrupted(writer.signal);
        // A block of zeros stays a hole: the file is new, so a hole reads as zeros.
        if (!isAllZeros(data)) await fh.write(data, 0, data.length, position);
        position += data.length;
        written(data.length);
      }
    }
    // The length, holes at the end included.
    await fh.truncate(length);
    await fh.close();
  } catch (err) {
    await fh.close().catch(() => undefined);
    await unlink(osPath(tmp)).catch(() => undefined);
    throw err;
  } finally {
    // After ahead() has settled every write: none can land in a file that reuses the number.
    if (directFd !== undefined) await new Promise((resolve) => closeFd(directFd!, resolve));
  }
  await removeExisting(dest);
  await rename(osPath(tmp), osPath(dest));
  await finishEntry(writer.io, dest, { ...node, type: 'file' });
  progress.filesDone++;
}

/**
 * What `start` gives for each of a file's blobs, in order, with the next ones already
 * started up to BYTES_AHEAD past the first unfinished one: one at a time, a large file
 * waited for each blob's trip to the decode thread. Ends only once nothing it started is
 * still running, even when one failed: a write still queued after the caller closed the
 * file would land in whatever file reuses its descriptor.
 */
async function* ahead<T>(blobs: BlobLoader, content: FileContent | undefined, start: (id: string, position: number) => Promise<T>): AsyncGenerator<T> {
  const running: Array<{ result: Promise<T>; length: number }> = [];
  // A file of many blobs lists them in content parts, read one at a time as the last one's blobs are started.
  const lists = isSplitContent(content) ? contentLists(blobs, content) : undefined;
  let ids: readonly string[] = isSplitContent(content) ? [] : (content ?? []);
  let next = 0;
  let position = 0;
  let bytesAhead = 0;
  try {
    for (;;) {
      while (running.length === 0 || bytesAhead < BYTES_AHEAD) {
        if (next === ids.length) {
          const list = lists && (await lists.next());
          if (!list || list.done) break;
          ids = list.value;
          next = 0;
          continue;
        }
        const id = ids[next++]!;
        const length = blobs.blobLength(id) ?? 0;
        const result = start(id, position);
        result.catch(() => undefined); // awaited below
        running.push({ result, length });
        position += length;
        bytesAhead += length;
      }
      const first = running.shift();
      if (!first) return;
      bytesAhead -= first.length;
      yield await first.result;
    }
  } finally {
    await Promise.allSettled(running.map((r) => r.result));
  }
}
