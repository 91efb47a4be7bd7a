import type { BigIntStats } from 'node:fs';
import { lstat } from 'node:fs/promises';
import { hostname, userInfo } from 'node:os';
import { resolve } from 'node:path';
import type { BlobWriter, SaveResult } from '../../repo/encode/blob-writer.js';
import { BATCHED_FILE_BYTES, FileEncoder } from '../../repo/encode/file-encoder.js';
import type { Repository } from '../../repo/repository.js';
import { resolveExclusionClasses } from '../../sources/files/exclusion-classes.js';
import { ExclusionMatcher } from '../../sources/files/exclusions.js';
import { isFilesSource, type FilesSource } from '../../sources/files/driver.js';
import { driverOf, type SourceSpec } from '../../sources/registry.js';
import { entryType, measureTree, sortedNames, statWalk } from '../../sources/files/entries.js';
import type { ListingPrefetch } from '../../sources/files/listing-prefetch.js';
import { Semaphore } from '../../util/concurrency.js';
import { InterruptedError, StackvaultError, UsageError, errorMessage } from '../../util/errors.js';
import { AdaptiveReader, entryPath } from '../../util/adaptive-io.js';
import { PROGRAM } from '../../util/version.js';
import { listSnapshots, type ExclusionRecord, type Snapshot, type SnapshotRef, type SourceRecord, type SourceStats } from '../snapshot.js';
import { DumpTreeWriter } from '../dump-tree.js';
import { TreeLoader, nodeFromStat, sameNodes, saveTree, type Tree, type TreeNode } from '../tree.js';
import { readLinkTarget } from '../../util/os-path.js';
import { leftOutMount } from '../../sources/files/mounts.js';

export interface BackupProgress {
  filesDone: number;
  bytesDone: number;
  /** totals grow while the scan runs; scanDone says they are final */
  filesTotal: number;
  bytesTotal: number;
  scanDone: boolean;
  bytesAdded: number;
  errors: number;
  currentPath: string;
}

export interface BackupOptions {
  sources: SourceSpec[];
  host?: string;
  stack?: string | null;
  tags?: string[];
  /** a snapshot id to compare against; undefined picks the latest matching one; null reads every file */
  parent?: string | null;
  progress?: (p: BackupProgress) => void;
  signal?: AbortSignal;
  now?: () => Date;
  /** folder listings read ahead (while the repository opened), taken by the walk where they fit */
  prefetched?: ListingPrefetch;
}

export interface BackupResult {
  id: string;
  snapshot: Snapshot;
  errorCount: number;
}

const MAX_RECORDED_ERRORS = 1000;
/** files read at once: enough to hide per-file I/O latency, few enough to bound buffers (each up to max chunk + 4 MiB) */
const FILE_CONCURRENCY = 6;
const STAT_CONCURRENCY = 16;
/**
 * Large files handed to the encoder threads ahead of time (they queue there, holding no
 * buffers). With one slot pool for all files, a folder of large files filled every slot
 * and the main thread idled until the worker caught up, then the worker idled through a
 * folder of small files: each thread was idle a third of the backup.
 */
const QUEUED_LARGE_FILES = 64;
/**
 * Folders walked ahead of the ones still finishing. Their files wait in the encoders'
 * batches, so this sets how far ahead the encoder threads are fed: with 8, each idled a
 * third of the backup (1 GiB, 50,000 files in 2,000 folders). Memory is bounded by the
 * batches and packs in flight, not by this; a folder's listing is small.
 */
const MAX_OPEN_DIRS = 32;

/** how long the walk may keep the main thread before the encoder threads' replies are let in */
const YIELD_EVERY_MS = 2;

/** where a file is read and encoded: see SourceWalker.dispatch */
type FileRoute = 'large' | 'batch' | 'here';
/** a file's route and what to release when it is done */
interface Ticket {
  route: FileRoute;
  release: () => void;
}
/** batched files hold no slot of their own: the encoder's room bounds them */
const BATCH_TICKET: Ticket = Object.freeze({ route: 'batch', release: () => undefined });

export async function backup(repo: Repository, options: BackupOptions): Promise<BackupResult> {
  // The encoder threads live as long as this backup.
  const encoder = FileEncoder.create(repo.master, repo.chunker.params);
  try {
    return await backupWith(repo, options, encoder);
  } finally {
    await encoder?.close();
  }
}

async function backupWith(repo: Repository, options: BackupOptions, encoder: FileEncoder | null): Promise<BackupResult> {
  const now = options.now ?? (() => new Date());
  const started = now();
  const host = options.host ?? hostname();
  const stack = options.stack ?? null;
  const sources = options.sources.filter(isFilesSource).map((s) => ({ ...s, path: resolve(s.path) }));
  const streamed = options.sources.filter((s) => !isFilesSource(s));
  await validateSources(sources, streamed);

  const [, refs] = await Promise.all([repo.loadIndex(), listSnapshots(repo)]);
  const parent = pickParent(refs, options.parent, host, stack, sources);
  const loader = new TreeLoader(repo);
  // A parent whose tree cannot be read (damaged, or its index file is) only costs reading every file.
  const parentRoot = parent ? await loader.load(parent.snapshot.tree).catch(() => undefined) : undefined;

  const progress: BackupProgress = { filesDone: 0, bytesDone: 0, filesTotal: 0, bytesTotal: 0, scanDone: false, bytesAdded: 0, errors: 0, currentPath: '' };
  const run: BackupRun = { repo, writer: repo.newBlobWriter(), loader, encoder, options, started, progress, report: () => options.progress?.(progress) };
  // Totals only serve a progress display: without one, the second walk would cost a stat per file for nothing.
  const scan = options.progress ? scanTotals(sources, progress, options.signal).then(run.report, () => undefined) : Promise.resolve();

  const saved: SavedSource[] = [];
  for (const source of sources) saved.push(await backupFilesSource(run, source, parent, parentRoot));
  // Databases and other streamed sources: each driver writes a small tree of files.
  for (const source of streamed) saved.push(await backupStreamedSource(run, source));
  const rootTree = await saveTree(run.writer, { nodes: saved.map((s) => s.node).sort((a, b) => (a.name < b.name ? -1 : 1)) });
  await scan;
  throwIfAborted(options.signal);

  const records = saved.map((s) => s.record);
  const snapshot: Snapshot = {
    version: 1,
    time: started.toISOString(),
    host,
    username: currentUser(),
    stack,
    tags: [...new Set(options.tags ?? [])].sort(),
    program: PROGRAM,
    parent: parent?.id ?? null,
    tree: rootTree,
    sources: records,
    durationMs: now().getTime() - started.getTime(),
  };
  // Everything the manifest references is stored, indexed and out of any prune's reach first.
  const id = await run.writer.commit('snapshots', snapshot);
  return { id, snapshot, errorCount: records.reduce((n, r) => n + r.errors.length, 0) };
}

/** What one backup shares across its sources. */
interface BackupRun {
  repo: Repository;
  writer: BlobWriter;
  loader: TreeLoader;
  encoder: FileEncoder | null;
  options: BackupOptions;
  started: Date;
  progress: BackupProgress;
  report: () => void;
}

/** One source backed up: its folder in the snapshot's root tree, and its record in the manifest. */
interface SavedSource {
  node: TreeNode;
  record: SourceRecord;
}

/** A folder source: walked, with the parent snapshot's tree of the same source (same name and path) to compare with. */
async function backupFilesSource(run: BackupRun, source: FilesSource, parent: SnapshotRef | undefined, parentRoot: Tree | undefined): Promise<SavedSource> {
  const { options } = run;
  const exclusionClasses = source.exclusionClasses ?? resolveExclusionClasses();
  const walker = new SourceWalker(run.repo, run.writer, run.loader, source, exclusionClasses, run.progress, run.report, options.signal, run.encoder, options.prefetched?.stop());
  const parentNode = parentRoot?.nodes.find((n) => n.name === source.name && n.type === 'dir');
  const parentSource = parent?.snapshot.sources.find((s) => s.name === source.name && s.path === source.path);
  const rootStat = await lstat(source.path, { bigint: true });
  const { id: subtree } = await walker.saveDir(source.path, '', parentSource ? parentNode?.subtree : undefined, false, rootStat.dev);
  return { node: { ...nodeFromStat(source.name, 'dir', rootStat), subtree }, record: walker.record() };
}

/** A streamed source (a database): its driver writes a small tree of files into a sink. */
async function backupStreamedSource(run: BackupRun, source: SourceSpec): Promise<SavedSource> {
  const { progress, started } = run;
  const stats: SourceStats = { files: 0, dirs: 0, others: 0, bytes: 0, newFiles: 0, changedFiles: 0, unchangedFiles: 0, bytesRead: 0, bytesAdded: 0 };
  const sink = new DumpTreeWriter(run.repo, run.writer, stats, started, (n) => (progress.bytesAdded += n), run.options.signal, run.encoder);
  const before = { done: progress.bytesDone, total: progress.bytesTotal };
  const driver = driverOf(source.kind);
  if (!driver.backup) throw new UsageError(`source "${source.name}": sources of kind ${source.kind} cannot be backed up this way`);
  const recorded = await driver.backup(source, sink, {
    signal: run.options.signal,
    progress: (p) => {
      progress.currentPath = `/${source.name}/${p.current}`;
      progress.bytesDone = before.done + p.bytesDone;
      progress.bytesTotal = before.total + Math.max(p.bytesEstimate, p.bytesDone);
      run.report();
    },
  });
  const subtree = await sink.saveTree();
  const timeNs = (BigInt(started.getTime()) * 1_000_000n).toString();
  return {
    node: { name: source.name, type: 'dir', mode: 0o700, uid: process.getuid?.() ?? 0, gid: process.getgid?.() ?? 0, mtime: timeNs, ctime: timeNs, inode: '0', dev: '0', nlink: 1, subtree },
    record: { name: source.name, kind: driver.kind, ...recorded, include: [], exclude: [], exclusionClasses: {}, excluded: [], stats, errors: [] },
  };
}

function currentUser(): string {
  try {
    return userInfo().username;
  } catch {
    return 'unknown'; // no passwd entry
  }
}

export { isFilesSource };

async function validateSources(sources: FilesSource[], streamed: SourceSpec[]): Promise<void> {
  if (sources.length + streamed.length === 0) throw new UsageError('nothing to back up: give folders or configure sources in stackvault.yaml');
  const names = new Set<string>();
  for (const s of [...sources, ...streamed]) {
    if (!/^[A-Za-z0-9._-]+$/.test(s.name) || s.name === '.' || s.name === '..') {
      throw new UsageError(`source name "${s.name}" may only hold letters, digits, ".", "_" and "-"`);
    }
    if (names.has(s.name)) throw new UsageError(`two sources are named "${s.name}"`);
    names.add(s.name);
  }
  for (const s of sources) {
    let st;
    try {
      st = await lstat(s.path);
    } catch (err) {
      throw new UsageError(`source "${s.name}": cannot read ${s.path}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such folder' : errorMessage(err)}`);
    }
    if (!st.isDirectory()) throw new UsageError(`source "${s.name}": ${s.path} is not a folder`);
  }
}

function pickParent(
  refs: SnapshotRef[],
  wanted: string | null | undefined,
  host: string,
  stack: string | null,
  sources: FilesSource[],
): SnapshotRef | undefined {
  if (wanted === null) return undefined;
  if (wanted !== undefined) {
    const hit = refs.filter((r) => r.id.startsWith(wanted));
    if (hit.length !== 1) throw new UsageError(`parent snapshot ${wanted} ${hit.length ? 'is ambiguous' : 'does not exist'}`);
    return hit[0];
  }
  for (let i = refs.length - 1; i >= 0; i--) {
    const s = refs[i]!.snapshot;
    if (s.host === host && s.stack === stack && sources.some((src) => s.sources.some((p) => p.name === src.name && p.path === src.path))) {
      return refs[i];
    }
  }
  return undefined;
}

function throwIfAborted(signal?: AbortSignal): void {
  if (signal?.aborted) throw new InterruptedError('backup interrupted; nothing was committed');
}

/** Walks one files source, storing file content and one tree per folder. */
class SourceWalker {
  private readonly matcher: ExclusionMatcher;
  private readonly stats: SourceStats = { files: 0, dirs: 0, others: 0, bytes: 0, newFiles: 0, changedFiles: 0, unchangedFiles: 0, bytesRead: 0, bytesAdded: 0 };
  private readonly excluded = new Map<string, ExclusionRecord>();
  private readonly errors: Array<{ path: string; message: string }> = [];
  private readonly fileSlots = new Semaphore(FILE_CONCURRENCY);
  private readonly largeFileSlots = new Semaphore(QUEUED_LARGE_FILES);
  private lastYield = performance.now();
  private readonly reader = new AdaptiveReader();
  /** folders whose walk runs while the walk has gone on past them */
  private openDirs = 0;
  /** the first repository error (full, damaged, interrupted): it ends the whole walk, not just one folder */
  private fatal: unknown;

  constructor(
    private readonly repo: Repository,
    private readonly writer: BlobWriter,
    private readonly loader: TreeLoader,
    private readonly source: FilesSource,
    private readonly exclusionClasses: Record<string, readonly string[]>,
    private readonly progress: BackupProgress,
    private readonly report: () => void,
    private readonly signal?: AbortSignal,
    private readonly encoder: FileEncoder | null = null,
    private readonly prefetched?: ListingPrefetch,
  ) {
    this.matcher = new ExclusionMatcher({ include: source.include, exclude: source.exclude, classes: exclusionClasses });
  }

  record(): SourceRecord {
    return {
      name: this.source.name,
      kind: 'files',
      path: this.source.path,
      include: this.source.include ?? [],
      exclude: this.source.exclude ?? [],
      exclusionClasses: this.exclusionClasses,
      excluded: [...this.excluded.values()].sort((a, b) => a.class.localeCompare(b.class)),
      stats: this.stats,
      errors: this.errors.slice(0, MAX_RECORDED_ERRORS),
    };
  }

  private fail(relPath: string, err: unknown): void {
    this.progress.errors++;
    if (this.errors.length < MAX_RECORDED_ERRORS) this.errors.push({ path: `/${this.source.name}/${relPath}`, message: errorMessage(err) });
  }

  private async exclude(reason: string, full: string, st: BigIntStats): Promise<void> {
    const rec = this.excluded.get(reason) ?? { class: reason, count: 0, bytes: 0 };
    if (st.isDirectory()) {
      const m = await measureTree(full);
      rec.count += m.count;
      rec.bytes += m.bytes;
    } else {
      rec.count += 1;
      rec.bytes += Number(st.size);
    }
    this.excluded.set(reason, rec);
  }

  /**
   * Store the folder at `dir`: its tree id and how many entries it holds. `insideInclude`
   * means an include pattern matched an ancestor.
   */
  async saveDir(dir: string, relDir: string, parentTreeId: string | undefined, insideInclude: boolean, dev: bigint): Promise<{ id: string; entries: number }> {
    throwIfAborted(this.signal);
    const parent = await this.parentTree(parentTreeId);
    const { names, stats } = await this.listing(dir, relDir);
    // Slots keep the tree in name order while files finish in any order.
    const slots: Array<TreeNode | undefined> = new Array(names.length);
    const tasks: Array<Promise<void>> = [];
    for (let i = 0; i < names.length && this.fatal === undefined; i++) {
      const name = names[i]!;
      const full = entryPath(dir, name);
      const rel = relDir ? `${relDir}/${name}` : name;
      const st = stats[i]!;
      if (st instanceof Error) {
        if ((st as NodeJS.ErrnoException).code !== 'ENOENT') this.fail(rel, st);
        continue;
      }
      const type = entryType(st);
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
      const place = (n: TreeNode) => {
        slots[i] = n;
      };
      if (type === 'file') {
        if (!(await this.startFile(full, rel, st, node, parent.nodes.get(name), place, tasks))) break;
      } else if (isDir) {
        await this.startSubdir(full, rel, st, node, parent.nodes.get(name), included, dev, place, tasks);
      } else if (await this.readSpecial(full, rel, type, st, node)) {
        place(node);
      }
    }
    await Promise.all(tasks);
    if (this.fatal !== undefined) throw this.fatal;
    const nodes = slots.filter((n): n is TreeNode => n !== undefined);
    // An unchanged folder is the parent's tree: no serialising and hashing it again.
    if (parent.tree && sameNodes(nodes, parent.tree.nodes) && this.writer.has(parentTreeId!)) return { id: parentTreeId!, entries: nodes.length };
    return { id: await saveTree(this.writer, { nodes } satisfies Tree), entries: nodes.length };
  }

  /** The parent snapshot's tree of this folder, by name; a damaged one only costs re-reading files. */
  private async parentTree(parentTreeId: string | undefined): Promise<{ tree?: Tree; nodes: Map<string, TreeNode> }> {
    const nodes = new Map<string, TreeNode>();
    if (!parentTreeId) return { nodes };
    try {
      const tree = await this.loader.load(parentTreeId);
      for (const n of tree.nodes) nodes.set(n.name, n);
      return { tree, nodes };
    } catch {
      return { nodes };
    }
  }

  /** The folder's names in order and their lstat results (read ahead while the key was derived, where it was). */
  private async listing(dir: string, relDir: string): Promise<{ names: string[]; stats: Array<BigIntStats | Error> }> {
    const prefetched = this.prefetched?.take(dir);
    if (prefetched) return prefetched;
    let names: string[];
    try {
      names = await sortedNames(dir);
    } catch (err) {
      this.fail(relDir, err);
      names = [];
    }
    return { names, stats: await this.reader.lstatAll(dir, names, STAT_CONCURRENCY) };
  }

  /**
   * A file: unchanged since the parent snapshot, its node as it was; else read and stored
   * on the route its size picks, in the background. False when the backup must stop.
   */
  private async startFile(full: string, rel: string, st: BigIntStats, node: TreeNode, parentNode: TreeNode | undefined, place: (n: TreeNode) => void, tasks: Array<Promise<void>>): Promise<boolean> {
    if (this.reuseUnchanged(rel, st, node, parentNode)) {
      place(node);
      return true;
    }
    const size = Number(st.size);
    const { route, release } = this.dispatchNow(size) ?? (await this.dispatch(size));
    if (this.fatal !== undefined) {
      release();
      return false;
    }
    tasks.push(
      this.saveFile(full, rel, st, node, parentNode, route)
        .then(() => place(node))
        .catch((err: unknown) => this.failed(rel, err))
        .finally(release),
    );
    return true;
  }

  /** A subfolder (or a mount recorded as empty), walked on while this folder goes on where it may. */
  private async startSubdir(
    full: string,
    rel: string,
    st: BigIntStats,
    node: TreeNode,
    parentNode: TreeNode | undefined,
    included: boolean,
    dev: bigint,
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
    const sub = st.dev !== dev && (await this.excludeMount(full)) ? this.emptyDir() : this.saveDir(full, rel, parentNode?.subtree, included, st.dev);
    if (this.openDirs < MAX_OPEN_DIRS) {
      // The walk goes on to the next folder while this one's last files are still being
      // read: otherwise every folder would wait for its slowest file, idling the pipeline.
      this.openDirs++;
      tasks.push(sub.then(finish, failed).finally(() => this.openDirs--));
    } else {
      await sub.then(finish, failed);
    }
  }

  /** A symlink's target or a device's number; false (and recorded) when it cannot be read. */
  private async readSpecial(full: string, rel: string, type: TreeNode['type'], st: BigIntStats, node: TreeNode): Promise<boolean> {
    try {
      if (type === 'symlink') node.target = await readLinkTarget(full);
      if (type === 'chardev' || type === 'blockdev') node.rdev = Number(st.rdev);
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
    return { id: await saveTree(this.writer, { nodes: [] }), entries: 0 };
  }

  /**
   * Where a file is encoded, and the slot it holds meanwhile. With encoder threads (one
   * per core), every file goes to them: in batches, or streamed when too large for one.
   * This thread only waits for room: encoding files here too starved the threads, whose
   * replies then sat behind this thread's work (each thread idled a third of the backup).
   * Waiting also for the pack writer keeps memory bounded when the backend is slower than
   * the encoders. Without threads, or until they have started, files are done here.
   */
  private async dispatch(size: number): Promise<Ticket> {
    await this.writer.room();
    if (this.encoder?.warm()) {
      if (size <= BATCHED_FILE_BYTES) {
        await this.encoder.room();
        return BATCH_TICKET;
      }
      return { route: 'large', release: await this.largeFileSlots.acquire() };
    }
    return { route: 'here', release: await this.fileSlots.acquire() };
  }

  /**
   * dispatch() when nothing needs waiting for, as is the case for most files: without a
   * promise and an async frame per file (55 MiB of a 50,000-file backup's allocations).
   */
  private dispatchNow(size: number): Ticket | undefined {
    if (!this.writer.hasRoom()) return undefined;
    if (this.encoder?.warm()) {
      if (size <= BATCHED_FILE_BYTES) return this.encoder.hasRoom() ? BATCH_TICKET : undefined;
      const release = this.largeFileSlots.tryAcquire();
      return release && { route: 'large', release };
    }
    const release = this.fileSlots.tryAcquire();
    return release && { route: 'here', release };
  }

  /**
   * Small files done here are a chain of already-resolved promises, which can keep the
   * event loop from the encoder threads' replies for long: their files then wait for
   * acknowledgements and the threads idle. Every few milliseconds, let the replies in.
   */
  private async letRepliesIn(): Promise<void> {
    if (!this.encoder || performance.now() - this.lastYield < YIELD_EVERY_MS) return;
    await new Promise<void>((resolve) => setImmediate(resolve));
    this.lastYield = performance.now();
  }

  /** Our own errors (repository full or damaged, interrupted) end the backup; a source entry's error does not. */
  private failed(rel: string, err: unknown): void {
    if (err instanceof StackvaultError) this.fatal ??= err;
    else this.fail(rel, err);
  }

  /**
   * A file whose size, times and inode match the parent snapshot's keeps its content list
   * without being read. Decided here, synchronously: a no-change backup is 50,000 of these,
   * and a slot and a promise each were a tenth of its time.
   */
  private reuseUnchanged(rel: string, st: BigIntStats, node: TreeNode, previous: TreeNode | undefined): boolean {
    if (
      previous?.type !== 'file' ||
      previous.size !== Number(st.size) ||
      previous.mtime !== node.mtime ||
      previous.ctime !== node.ctime ||
      previous.inode !== node.inode ||
      !previous.content?.every((id) => this.writer.has(id))
    ) {
      return false;
    }
    this.progress.currentPath = `/${this.source.name}/${rel}`;
    this.stats.files++;
    node.size = previous.size;
    node.content = previous.content;
    this.stats.unchangedFiles++;
    this.stats.bytes += node.size;
    this.progress.filesDone++;
    this.progress.bytesDone += node.size;
    return true;
  }

  private async saveFile(full: string, rel: string, st: BigIntStats, node: TreeNode, previous: TreeNode | undefined, route: FileRoute): Promise<void> {
    this.progress.currentPath = `/${this.source.name}/${rel}`;
    this.stats.files++;
    const content: string[] = [];
    let size = 0;
    const stored = (saved: SaveResult, length: number) => {
      content.push(saved.id);
      size += length;
      this.stats.bytesAdded += saved.storedBytes;
      this.progress.bytesAdded += saved.storedBytes;
      this.progress.bytesDone += length;
      this.report();
    };
    if (route === 'large') {
      // A large file goes to a worker thread whole: read, chunk, hash, compress, encrypt.
      for await (const blob of this.encoder!.encode(full, Number(st.size))) {
        throwIfAborted(this.signal);
        stored(await this.writer.addEncoded('data', blob), blob.rawLength);
      }
    } else if (route === 'batch') {
      for (const blob of await this.encoder!.encodeBatched(full, Number(st.size))) {
        throwIfAborted(this.signal);
        stored(await this.writer.addEncoded('data', blob), blob.rawLength);
      }
    } else {
      await this.letRepliesIn();
      const fh = await this.reader.open(full, Number(st.size));
      try {
        for await (const chunk of this.repo.chunker.chunkFile(fh, Number(st.size))) {
          throwIfAborted(this.signal);
          stored(await this.writer.save('data', chunk), chunk.length);
        }
      } finally {
        await fh.close();
      }
    }
    node.size = size;
    node.content = content;
    this.stats.bytes += size;
    this.stats.bytesRead += size;
    if (previous) this.stats.changedFiles++;
    else this.stats.newFiles++;
    this.progress.filesDone++;
    this.report();
  }
}

/** Totals for progress and ETA: a stat-only walk that runs alongside the backup. */
async function scanTotals(sources: FilesSource[], progress: BackupProgress, signal?: AbortSignal): Promise<void> {
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
