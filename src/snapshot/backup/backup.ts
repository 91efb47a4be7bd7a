import { lstat } from 'node:fs/promises';
import { hostname, userInfo } from 'node:os';
import { resolve } from 'node:path';
import type { BlobWriter } from '../../repo/encode/blob-writer.js';
import { FileEncoder } from '../../repo/encode/file-encoder.js';
import type { Repository } from '../../repo/repository.js';
import { resolveExclusionClasses } from '../../sources/files/exclusion-classes.js';
import { isFilesSource, type FilesSource } from '../../sources/files/driver.js';
import type { ListingPrefetch } from '../../sources/files/listing-prefetch.js';
import type { ListingThread } from '../../sources/files/listing-thread.js';
import { FilesWalker, scanTotals } from '../../sources/files/walker.js';
import { driverOf, type SourceSpec } from '../../sources/registry.js';
import { AdaptiveReader } from '../../util/adaptive-io.js';
import { UsageError, errorMessage } from '../../util/errors.js';
import { plural } from '../../util/format.js';
import { PROGRAM } from '../../util/version.js';
import { listSnapshots, type Snapshot, type SnapshotRef, type SourceRecord, type SourceStats } from '../snapshot.js';
import { DumpTreeWriter } from '../dump-tree.js';
import { TreeLoader, nodeFromStat, saveTree, type Tree, type TreeNode } from '../tree.js';
import { INCREMENTAL_THREADS_AFTER_BYTES, RepositoryFilesSink, throwIfAborted } from './file-store.js';

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
  /** a thread listing the sources' folders (started with the command); the backup closes it */
  listingThread?: ListingThread;
}

export interface BackupResult {
  id: string;
  snapshot: Snapshot;
  errorCount: number;
  /** files that changed while they were read: saved as read (see SourceRecord.changedWhileRead) */
  changedCount: number;
}

/**
 * What a backup says of files that changed while they were read, and what to do about
 * them; with `snapshot`, naming the first few (where the summary's lines do not).
 */
export function changedWhileReadWarning(count: number, snapshot?: Snapshot): string {
  const one = count === 1;
  const named = snapshot?.sources.flatMap((s) => s.changedWhileRead ?? []) ?? [];
  const names = named.length > 0 ? `: ${named.slice(0, NAMED_CHANGED_FILES).join(', ')}${count > NAMED_CHANGED_FILES ? ', ...' : ''}` : '';
  return `${plural(count, 'file')} changed while ${one ? 'it was' : 'they were'} read${names}; saved as read, ${one ? 'it' : 'each'} may mix old and new content (exclude ${one ? 'it' : 'them'}, or back up what writes ${one ? 'it' : 'them'} through a source that takes a consistent copy, such as a database source)`;
}

/** Files a one-line warning names at most. */
const NAMED_CHANGED_FILES = 5;

export async function backup(repo: Repository, options: BackupOptions): Promise<BackupResult> {
  // The encoder threads live as long as this backup.
  const encoder = FileEncoder.create(repo.master, repo.chunker.params);
  try {
    return await backupWith(repo, options, encoder);
  } finally {
    await Promise.all([encoder?.close(), options.listingThread?.close()]);
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

  // The listing thread begins as soon as the parent is known, while this thread still loads
  // the index: begun after it, the walk waited for its first folders (see docs/performance.md).
  const choosing = listSnapshots(repo).then((refs) => {
    const chosen = pickParent(refs, options.parent, host, stack, sources);
    if (chosen) options.listingThread?.begin();
    return chosen;
  });
  const [, parent] = await Promise.all([repo.loadIndex(), choosing]);
  // Without a previous snapshot every file is read: the walk's own listing keeps pace with
  // the encoders, and the thread's memory would only add to the backup's.
  if (!parent) await options.listingThread?.close();
  // The walk reads each of the previous snapshot's folders once: nothing is worth keeping.
  const loader = new TreeLoader(repo, 1);
  // A parent whose tree cannot be read (damaged, or its index file is) only costs reading every file.
  const parentRoot = parent ? await loader.load(parent.snapshot.tree).catch(() => undefined) : undefined;

  const progress: BackupProgress = { filesDone: 0, bytesDone: 0, filesTotal: 0, bytesTotal: 0, scanDone: false, bytesAdded: 0, errors: 0, currentPath: '' };
  const run: BackupRun = { repo, writer: repo.newBlobWriter(), loader, encoder, options, started, progress, report: () => options.progress?.(progress) };
  try {
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
    return { id, snapshot, errorCount: records.reduce((n, r) => n + r.errors.length, 0), changedCount: saved.reduce((n, s) => n + (s.changedCount ?? 0), 0) };
  } catch (err) {
    // A pack begun in a temporary file is not left there for prune to find a day later.
    await run.writer.discard();
    throw err;
  }
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
  /** files that changed while they were read, all of them (the record names the first 1,000) */
  changedCount?: number;
}

/** A folder source: walked, with the parent snapshot's tree of the same source (same name and path) to compare with. */
async function backupFilesSource(run: BackupRun, source: FilesSource, parent: SnapshotRef | undefined, parentRoot: Tree | undefined): Promise<SavedSource> {
  const { options } = run;
  const exclusionClasses = source.exclusionClasses ?? resolveExclusionClasses();
  // One reader for the walk's stats and the sink's opens: once the storage turns out slow, both go asynchronous.
  const reader = new AdaptiveReader();
  const parentNode = parentRoot?.nodes.find((n) => n.name === source.name && n.type === 'dir');
  const parentSource = parent?.snapshot.sources.find((s) => s.name === source.name && s.path === source.path);
  const previousTree = parentSource ? parentNode?.subtree : undefined;
  const sink = new RepositoryFilesSink(run.writer, run.loader, run.repo.chunker, run.encoder, reader, options.signal, previousTree ? INCREMENTAL_THREADS_AFTER_BYTES : 0);
  // With a previous tree to compare with, the walk is mostly stats: they go to a thread of their own.
  const rootStat = await lstat(source.path, { bigint: true });
  const listingThread = previousTree && options.listingThread?.covers(source.path) ? options.listingThread : undefined;
  const prefetched = options.prefetched?.stop();
  if (listingThread) prefetched?.forget(source.path);
  const walker = new FilesWalker(source, exclusionClasses, sink, run.progress, run.report, () => throwIfAborted(options.signal), reader, prefetched, listingThread);
  const { id: subtree } = await walker.saveDir(source.path, '', previousTree, false, rootStat.dev.toString());
  const record: SourceRecord = {
    name: source.name,
    kind: 'files',
    path: source.path,
    include: source.include ?? [],
    exclude: source.exclude ?? [],
    exclusionClasses,
    excluded: walker.exclusions(),
    stats: walker.stats,
    errors: walker.errors,
    ...(walker.changedCount > 0 && { changedWhileRead: walker.changedWhileRead }),
  };
  return { node: { ...nodeFromStat(source.name, 'dir', rootStat), subtree }, record, changedCount: walker.changedCount };
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

