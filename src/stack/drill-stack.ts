import { mkdir, mkdtemp, open, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { LoadedConfig } from '../config/load.js';
import type { Repository } from '../repo/repository.js';
import { restore } from '../snapshot/restore/restore.js';
import { listSnapshots, type SnapshotRef } from '../snapshot/snapshot.js';
import { openSourceReader } from '../snapshot/restore/streamed-source.js';
import { contentIds } from '../snapshot/content-list.js';
import { TreeLoader } from '../snapshot/tree.js';
import { walkTree } from '../snapshot/walk.js';
import { isFilesSource } from '../sources/files/driver.js';
import { resolveConnection } from '../sources/mariadb/connect-options.js';
import type { ConnectOptions } from '../sources/mariadb/connection.js';
import { driverOf } from '../sources/registry.js';
import { drillRollForward } from './drill-point-in-time.js';
import { StackvaultError, UsageError } from '../util/errors.js';

/** The scratch server drills restore database sources into (drill.database of stackvault.yaml), if configured. */
export function drillDatabaseOf(loaded: LoadedConfig): ConnectOptions | undefined {
  const server = loaded.config.drill?.database;
  return server ? resolveConnection(loaded.baseDir, server, `${loaded.file}: drill.database`) : undefined;
}

export interface DrillOptions {
  /** the scratch database server (drill.database), resolved */
  database?: ConnectOptions;
  signal?: AbortSignal;
}

/** A drill's report; `problem` is set when the restored data differs from the snapshot. */
export interface DrillOutcome {
  snapshot?: string;
  problem?: string;
  details: Record<string, unknown>;
}

const DRILL_MARKER = '.stackvault-drill';

/**
 * A restore drill: the newest snapshot of the stack goes into a scratch folder (and its
 * databases into a scratch server, under drill_ names), is verified against the snapshot
 * (every file re-hashed chunk by chunk; every table read back from the server and
 * compared byte for byte with the dump), and
 * the time it took is the stack's measured recovery time (RTO).
 */
export async function drillStack(loaded: LoadedConfig, repo: Repository, options: DrillOptions = {}): Promise<DrillOutcome> {
  const { signal } = options;
  const { config } = loaded;
  const snapshots = (await listSnapshots(repo)).filter((s) => s.snapshot.stack === config.stack);
  const ref = snapshots[snapshots.length - 1];
  if (!ref) throw new StackvaultError(`no snapshot of stack "${config.stack}" to drill with`);
  const configured = config.drill?.target ? join(loaded.baseDir, config.drill.target) : undefined;
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
      databases.push(await drill(await openSourceReader(repo, ref, record.name), record.name, record, { folder: target, database: options.database }, signal));
    }
    const rtoMs = Date.now() - started;
    const verified = await verifyFiles(repo, ref, target, fileSources);
    Object.assign(report, { rtoMs, filesRestored, filesVerified: verified.files, bytesVerified: verified.bytes, databases });
    const pointInTime = await drillPointsInTime(repo, snapshots, options.database, signal);
    if (pointInTime.length > 0) report.pointInTime = pointInTime;
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

/**
 * For each database source whose binary log is archived: the snapshot before the newest,
 * rolled forward to the newest (drill-point-in-time.ts).
 */
async function drillPointsInTime(repo: Repository, snapshots: SnapshotRef[], scratch: ConnectOptions | undefined, signal?: AbortSignal): Promise<Array<Record<string, unknown>>> {
  const goal = snapshots[snapshots.length - 1]!;
  const out: Array<Record<string, unknown>> = [];
  // Nothing archived at all: no point-in-time part (asked once, not per source).
  if ((await repo.listIds('binlog')).length === 0) return out;
  for (const record of goal.snapshot.sources) {
    if (!record.database?.binlog?.file) continue;
    const base = [...snapshots.slice(0, -1)].reverse().find((s) => s.snapshot.sources.some((r) => r.name === record.name && r.database?.binlog?.file));
    if (!scratch) out.push({ source: record.name, skipped: 'no drill.database server configured' });
    else if (!base) out.push({ source: record.name, skipped: 'one snapshot only: nothing to roll forward from' });
    else out.push(await drillRollForward(repo, base, goal, record.name, scratch, signal));
  }
  return out;
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
    let size = 0;
    let same = true;
    try {
      // The snapshot's ids one at a time beside the file's: a large file's list is never held whole.
      const expected = contentIds(repo, node.content);
      const fh = await open(join(target, path), 'r');
      try {
        for await (const chunk of repo.chunker.chunkFile(fh, node.size ?? 0)) {
          const id = await expected.next();
          if (id.done || id.value !== repo.blobId(chunk)) same = false;
          size += chunk.length;
        }
        if (!(await expected.next()).done) same = false;
      } finally {
        await fh.close();
        await expected.return(undefined);
      }
    } catch {
      out.mismatches.push(path);
      continue;
    }
    out.files++;
    out.bytes += size;
    if (size !== (node.size ?? 0) || !same) out.mismatches.push(path);
  }
  return out;
}
