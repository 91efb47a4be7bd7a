import type { LoadedConfig } from '../config/load.js';
import type { Repository } from '../repo/repository.js';
import { backup, type BackupProgress, type BackupResult } from '../snapshot/backup/backup.js';
import { isFilesSource } from '../sources/files/driver.js';
import { STACK_REPOSITORY_SOURCE, isCommittedRepository } from '../sources/git/driver.js';
import type { ListingPrefetch } from '../sources/files/listing-prefetch.js';
import type { ListingThread } from '../sources/files/listing-thread.js';
import { startReadingFolders } from '../sources/files/read-ahead.js';
import type { SourceSpec } from '../sources/registry.js';
import type { Compose } from './compose.js';
import { stackHost } from './context.js';
import { readHostState } from './host-state.js';
import { incarnationTags } from './incarnations.js';
import { reachStackSources } from './stack-sources.js';

export interface BackupStackOptions {
  /** the stack's repository, or how to open it: folders are listed while its key is derived */
  repository: Repository | (() => Promise<Repository>);
  /** the engine the stack runs on, when the caller has it (its databases are reached through it) */
  compose?: Compose;
  /** the version and incarnation the data is at; the host's state file says when omitted */
  at?: { version: string; incarnation: string };
  /** tags beside the stack's own, its version and its incarnation */
  tags?: string[];
  /** the host name recorded instead of the stack's (see stackHost) */
  host?: string;
  /** the stack name recorded instead of stackvault.yaml's */
  stack?: string;
  oneFileSystem?: boolean;
  /** a snapshot id to compare against; undefined picks the latest matching one; null reads every file */
  parent?: string | null;
  signal?: AbortSignal;
  progress?: (p: BackupProgress) => void;
}

/**
 * Back up a stack: every source of its stackvault.yaml (databases reached inside the
 * stack's network), tagged with the version and incarnation the data is at. The CLI, the
 * task runner and the lifecycle's snapshot before each step all back up through here.
 */
export async function backupStack(loaded: LoadedConfig, options: BackupStackOptions): Promise<BackupResult & { repo: Repository }> {
  const { config } = loaded;
  const reached: SourceSpec[] = await reachStackSources(loaded, options.compose);
  // The stack repository goes into every snapshot: a snapshot alone brings back configuration and data.
  if (!reached.some((s) => s.name === STACK_REPOSITORY_SOURCE) && (await isCommittedRepository(loaded.baseDir))) {
    reached.push({ kind: 'git', name: STACK_REPOSITORY_SOURCE, path: loaded.baseDir });
  }
  const sources = options.oneFileSystem ? reached.map((s) => (isFilesSource(s) ? { ...s, oneFileSystem: true } : s)) : reached;
  const tags = [...(config.tags ?? []), ...(await incarnationTags(loaded, options.at ?? (await readHostState(loaded.baseDir)))), ...(options.tags ?? [])];
  let repo: Repository;
  let prefetched: ListingPrefetch | undefined;
  let listingThread: ListingThread | undefined;
  try {
    if (typeof options.repository === 'function') {
      // The walk starts reading folders while the repository's key is derived.
      ({ prefetched, listingThread } = startReadingFolders(sources.filter(isFilesSource)));
      repo = await options.repository().finally(() => prefetched?.stop());
    } else repo = options.repository;
    const result = await backup(repo, {
      sources,
      stack: options.stack ?? config.stack,
      host: options.host ?? stackHost(config),
      tags,
      parent: options.parent,
      prefetched,
      listingThread,
      signal: options.signal,
      progress: options.progress,
    });
    return { ...result, repo };
  } finally {
    await listingThread?.close();
  }
}
