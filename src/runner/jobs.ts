import { backendExtra } from '../repo/backends/backend.js';
import { mkdir, mkdtemp, open, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { LoadedConfig } from '../config/load.js';
import { stackBackupInputs } from '../stack/stack.js';
import type { Repository } from '../repo/repository.js';
import { backup } from '../snapshot/backup.js';
import { check } from '../snapshot/check.js';
import { extendLocks } from '../snapshot/extend-locks.js';
import { executePrune, planPrune } from '../snapshot/prune.js';
import { openSourceReader } from '../snapshot/streamed-source.js';
import { restore } from '../snapshot/restore.js';
import { applyRetention, isEmptyPolicy, retentionPolicyOf } from '../snapshot/retention.js';
import { forgetSnapshots, listSnapshots, type SnapshotRef } from '../snapshot/snapshot.js';
import { TreeLoader } from '../snapshot/tree.js';
import { walkTree } from '../snapshot/walk.js';
import { ListingPrefetch } from '../sources/listing-prefetch.js';
import { isFilesSource } from '../sources/files-driver.js';
import type { ConnectOptions } from '../sources/mariadb/connection.js';
import { driverOf, type SourceSpec } from '../sources/registry.js';
import { StackvaultError, UsageError } from '../util/errors.js';

/** What a job reports when it is done; a thrown error is a failed job. */
export interface JobOutcome {
  snapshot?: string;
  bytesAdded?: number;
  /** set when the job ran but its result needs attention (a partial backup, damage found) */
  problem?: string;
  details?: Record<string, unknown>;
}

/** What jobs need from the daemon: the stack's configuration and its repository. */
export interface JobContext {
  loaded: LoadedConfig;
  sources: SourceSpec[];
  host: string;
  openRepository(): Promise<Repository>;
  /** the scratch database server of drills, when configured */
  drillDatabase?: ConnectOptions;
}

export async function backupJob(ctx: JobContext, signal: AbortSignal): Promise<JobOutcome> {
  const { config } = ctx.loaded;
  // Asked each night: the incarnation, the version and the database's address change with updates.
  const inputs = await stackBackupInputs(ctx.loaded);
  // The walk starts reading folders while the repository's key is derived, as in the CLI.
  const prefetched = ListingPrefetch.start(inputs.sources.flatMap((s) => (isFilesSource(s) ? [resolve(s.path)] : [])));
  const repo = await ctx.openRepository().finally(() => prefetched.stop());
  const result = await backup(repo, { sources: inputs.sources, host: ctx.host, stack: config.stack, tags: [...(config.tags ?? []), ...inputs.tags], signal, prefetched });
  const bytesAdded = result.snapshot.sources.reduce((n, s) => n + s.stats.bytesAdded, 0);
  return {
    snapshot: result.id,
    bytesAdded,
    problem: result.errorCount > 0 ? `snapshot ${result.id.slice(0, 8)} saved, but ${result.errorCount} entries could not be read` : undefined,
    details: { sources: result.snapshot.sources.map((s) => ({ name: s.name, ...s.stats, unreadable: s.errors.length })) },
  };
}

/** Forget by the retention rules, prune within the immutability rules, keep locks alive. */
export async function retentionJob(ctx: JobContext): Promise<JobOutcome> {
  const repo = await ctx.openRepository();
  const { config } = ctx.loaded;
  const policy = retentionPolicyOf(config.retention);
  let forgotten: string[] = [];
  if (!isEmptyPolicy(policy)) {
    const mine = (await listSnapshots(repo)).filter((s) => s.snapshot.stack === config.stack);
    forgotten = applyRetention(mine, policy).flatMap((d) => d.remove.map((x) => x.id));
    await forgetSnapshots(repo, forgotten);
  }
  const details: Record<string, unknown> = { forgotten: forgotten.length };
  if (config.schedule?.prune ?? true) {
    const plan = await planPrune(repo);
    const pruned = await executePrune(repo, plan);
    Object.assign(details, { deleted: pruned.deleted, bytesFreed: pruned.bytesFreed, packsRecordedForDeletion: plan.mark.length });
  }
  if (repo.config.immutabilityDays > 0 && (await backendExtra(repo.backend, 'extendRetention'))) {
    details.locksExtended = (await extendLocks(await ctx.openRepository())).extended;
  }
  return { details };
}

export async function checkJob(ctx: JobContext): Promise<JobOutcome> {
  const repo = await ctx.openRepository();
  const subset = ctx.loaded.config.schedule?.check_subset ?? '5%';
  const result = await check(repo, subset === false ? {} : { readDataSubset: subset });
  return {
    problem: result.errors.length > 0 ? `check found ${result.errors.length} problems: ${result.errors.slice(0, 3).join('; ')}` : undefined,
    details: { snapshots: result.snapshots, packs: result.packs, packsRead: result.packsRead, bytesRead: result.bytesRead, errors: result.errors.slice(0, 20) },
  };
}

const DRILL_MARKER = '.stackvault-drill';

/**
 * A restore drill: the newest snapshot of the stack goes into a scratch folder (and its
 * databases into a scratch server, under drill_ names), is verified against the snapshot
 * (every file re-hashed chunk by chunk; every table read back from the server and
 * compared byte for byte with the dump), and
 * the time it took is the stack's measured recovery time (RTO).
 */
export async function drillJob(ctx: JobContext, signal: AbortSignal): Promise<JobOutcome> {
  const repo = await ctx.openRepository();
  const { config } = ctx.loaded;
  const snapshots = (await listSnapshots(repo)).filter((s) => s.snapshot.stack === config.stack);
  const ref = snapshots[snapshots.length - 1];
  if (!ref) throw new StackvaultError(`no snapshot of stack "${config.stack}" to drill with`);
  const configured = config.drill?.target ? join(ctx.loaded.baseDir, config.drill.target) : undefined;
  const target = await scratchFolder(configured);
  const started = Date.now();
  try {
    const report: Record<string, unknown> = { snapshot: ref.id, snapshotTime: ref.snapshot.time, target };
    const fileSources = ref.snapshot.sources.filter(isFilesSource).map((s) => `/${s.name}`);
    let filesRestored = 0;
    if (fileSources.length > 0) {
      const restored = await restore(repo, ref, { target, include: fileSources, force: true, signal });
      if (restored.errors.length > 0) throw new StackvaultError(`the drill could not restore ${restored.errors.length} files: ${restored.errors[0]!.path}: ${restored.errors[0]!.message}`);
      filesRestored = restored.files;
    }
    const databases: Array<Record<string, unknown>> = [];
    for (const record of ref.snapshot.sources) {
      const drill = driverOf(record.kind).drill;
      if (!drill) continue;
      databases.push(await drill(await openSourceReader(repo, ref, record.name), record.name, record, { folder: target, database: ctx.drillDatabase }, signal));
    }
    const rtoMs = Date.now() - started;
    const verified = await verifyFiles(repo, ref, target, fileSources);
    Object.assign(report, { rtoMs, filesRestored, filesVerified: verified.files, bytesVerified: verified.bytes, databases });
    if (verified.mismatches.length > 0) {
      return { problem: `the drill restored ${verified.mismatches.length} files that differ from the snapshot: ${verified.mismatches.slice(0, 3).join(', ')}`, details: report };
    }
    return { snapshot: ref.id, details: report };
  } finally {
    // A configured folder is kept (empty, with its marker); a temporary one goes whole.
    if (configured) await emptyScratch(target);
    else await rm(target, { recursive: true, force: true });
  }
}

async function scratchFolder(configured: string | undefined): Promise<string> {
  if (!configured) return mkdtemp(join(tmpdir(), 'stackvault-drill-'));
  await mkdir(configured, { recursive: true });
  const entries = await readdir(configured);
  // Only a folder the drill made (or an empty one) is emptied: never someone's files.
  if (entries.length > 0 && !entries.includes(DRILL_MARKER)) {
    throw new UsageError(`drill.target ${configured} holds files that a drill did not put there; give an empty folder`);
  }
  await emptyScratch(configured);
  await writeFile(join(configured, DRILL_MARKER), 'restore drills of stackvault use this folder; it is emptied before and after each drill\n');
  return configured;
}

async function emptyScratch(folder: string): Promise<void> {
  for (const entry of await readdir(folder).catch(() => [] as string[])) {
    if (entry !== DRILL_MARKER) await rm(join(folder, entry), { recursive: true, force: true });
  }
}

/** Re-read every restored file and hash it chunk by chunk the way backup did: the bytes on disk must be the snapshot's. */
async function verifyFiles(repo: Repository, ref: SnapshotRef, target: string, roots: string[]): Promise<{ files: number; bytes: number; mismatches: string[] }> {
  const loader = new TreeLoader(repo);
  const out = { files: 0, bytes: 0, mismatches: [] as string[] };
  for await (const { path, node } of walkTree(loader, ref.snapshot.tree)) {
    if (node.type !== 'file' || !roots.some((r) => path.startsWith(`${r}/`))) continue;
    const ids: string[] = [];
    let size = 0;
    try {
      const fh = await open(join(target, path), 'r');
      try {
        for await (const chunk of repo.chunker.chunkFile(fh, node.size ?? 0)) {
          ids.push(repo.blobId(chunk));
          size += chunk.length;
        }
      } finally {
        await fh.close();
      }
    } catch {
      out.mismatches.push(path);
      continue;
    }
    out.files++;
    out.bytes += size;
    if (size !== (node.size ?? 0) || ids.join() !== (node.content ?? []).join()) out.mismatches.push(path);
  }
  return out;
}
