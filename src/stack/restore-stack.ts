import { mkdir } from 'node:fs/promises';
import { resolveSources } from '../config/sources.js';
import { restore } from '../snapshot/restore/restore.js';
import type { SnapshotRef } from '../snapshot/snapshot.js';
import { openSourceReader } from '../snapshot/restore/streamed-source.js';
import { TreeLoader } from '../snapshot/tree.js';
import { findNode } from '../snapshot/walk.js';
import { clearSourceContents } from '../sources/files/clear.js';
import { isFilesSource } from '../sources/files/driver.js';
import { driverOf } from '../sources/registry.js';
import type { MariadbSource } from '../sources/mariadb/dump.js';
import { planRollForward, rollForward, type RollForwardPlan } from '../snapshot/binlog/point-in-time.js';
import { StackvaultError, errorMessage } from '../util/errors.js';
import { linearBackoff, retry } from '../util/retry.js';
import { composeProject, healthTimeoutMs, type StackContext } from './context.js';
import { filesRules, reachDatabases, sourceServices } from './stack-sources.js';

/**
 * Put a snapshot's data (or a release's vanilla data) in place: the stack goes down, each
 * files source is cleared of what backups hold (what they leave out, like recordings,
 * stays) and restored, and each database is started on its own and restored into.
 */
export async function restoreStack(ctx: StackContext, ref: SnapshotRef, kind: 'snapshot' | 'release', version: string, rollForwardTo?: StackRollForward): Promise<void> {
  const project = composeProject(ctx.loaded, version);
  const sources = resolveSources(ctx.loaded);
  const stored = new Set(ref.snapshot.sources.map((s) => s.name));
  await ctx.compose.down(project);
  for (const s of sources) {
    if (!isFilesSource(s)) continue;
    const from = kind === 'release' ? `/files/${s.name}` : `/${s.name}`;
    await mkdir(s.path, { recursive: true });
    await clearSourceContents(s.path, filesRules(s));
    if (kind === 'snapshot' && !stored.has(s.name)) throw new StackvaultError(`snapshot ${ref.id.slice(0, 8)} has no source "${s.name}"`);
    if (kind === 'release' && !(await releaseHasFolder(ctx, ref, from))) continue;
    ctx.log(`restoring ${s.name} into ${s.path}`);
    const result = await restore(ctx.repo, ref, { target: s.path, from, force: true, signal: ctx.signal });
    if (result.errors.length > 0) throw new StackvaultError(`restoring ${s.name} failed for ${result.errors.length} files, first ${result.errors[0]!.path}: ${result.errors[0]!.message}`);
  }
  const streamed = sources.filter((s) => !isFilesSource(s));
  if (streamed.length === 0) return;
  const services = sourceServices(streamed);
  if (services.length > 0) {
    await ctx.compose.up(project, services);
    await ctx.compose.waitHealthy(project, { services, timeoutMs: healthTimeoutMs(ctx.loaded) });
  }
  const reached = await reachDatabases(streamed, ctx.compose, project);
  for (const [i, s] of reached.entries()) {
    // A release holds one vanilla database, "database", for the stack's (first) database source.
    const name = kind === 'release' ? (i === 0 && stored.has('database') ? 'database' : undefined) : s.name;
    if (name === undefined) continue;
    if (!stored.has(name)) throw new StackvaultError(`snapshot ${ref.id.slice(0, 8)} has no database source "${name}"`);
    ctx.log(`restoring ${s.kind} source ${s.name}`);
    const reader = await openSourceReader(ctx.repo, ref, name);
    await withRetriesWhileStarting(() => driverOf(s.kind).restore!(reader, s, { force: true, signal: ctx.signal }));
    const plan = rollForwardTo?.plans.get(name);
    if (plan && s.kind === 'mariadb') {
      const databases = ref.snapshot.sources.find((r) => r.name === name)?.database?.databases;
      const replayed = await rollForward(ctx.repo, plan, { time: rollForwardTo!.time }, (s as MariadbSource).connection, { databases: databases ? new Set(databases) : undefined, signal: ctx.signal });
      ctx.log(`rolled ${name} forward ${replayed.transactions} transactions through the binary log archive` + (replayed.lastTimestamp ? `, to ${new Date(replayed.lastTimestamp * 1000).toISOString()}` : ''));
    }
  }
}

/** The databases of a snapshot and how each is brought to a later moment. */
export interface StackRollForward {
  time: Date;
  plans: Map<string, RollForwardPlan>;
}

/**
 * Plan bringing every database source of a snapshot to `time`: refused, before anything
 * changes, when a database's archive does not reach it (a database left at the snapshot
 * beside files of another moment is no recovery to that moment).
 */
export async function planStackRollForward(ctx: StackContext, ref: SnapshotRef, time: Date): Promise<StackRollForward> {
  const plans = new Map<string, RollForwardPlan>();
  for (const record of ref.snapshot.sources) {
    if (record.kind !== 'mariadb') continue;
    plans.set(record.name, await planRollForward(ctx.repo, ref, record.name, { time }));
  }
  if (plans.size === 0) throw new StackvaultError(`snapshot ${ref.id.slice(0, 8)} has no database source to bring to ${time.toISOString()}`);
  return { time, plans };
}

async function releaseHasFolder(ctx: StackContext, ref: SnapshotRef, path: string): Promise<boolean> {
  await ctx.repo.loadIndex();
  return (await findNode(new TreeLoader(ctx.repo), ref.snapshot.tree, path))?.type === 'dir';
}

/** A database whose health check just passed may still refuse its first connections for a moment. */
function withRetriesWhileStarting<T>(work: () => Promise<T>): Promise<T> {
  return retry(work, { attempts: 10, retryable: (err) => /ECONNREFUSED|cannot connect|Can't connect/i.test(errorMessage(err)), delayMs: linearBackoff(500) });
}
