import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { resolve } from 'node:path';
import type { LoadedConfig } from '../config/load.js';
import { resolveSources } from '../config/sources.js';
import { RELEASE_TAG, versionTag } from '../release/release.js';
import type { Repository } from '../repo/repository.js';
import { backup, type BackupResult } from '../snapshot/backup.js';
import { openSourceReader } from '../snapshot/streamed-source.js';
import { restore } from '../snapshot/restore.js';
import { listSnapshots, type SnapshotRef } from '../snapshot/snapshot.js';
import { TreeLoader } from '../snapshot/tree.js';
import { findNode } from '../snapshot/walk.js';
import { clearSourceContents } from '../sources/files-clear.js';
import { isFilesSource, type FilesSource } from '../sources/files-driver.js';
import { driverOf, type SourceSpec } from '../sources/registry.js';
import { StackvaultError, UsageError, errorMessage } from '../util/errors.js';
import { linearBackoff, retry } from '../util/retry.js';
import { Compose, type ComposeProject } from './compose.js';
import { readHostState } from './host-state.js';
import { headCommit } from './stack-repository.js';

const INCARNATION_TAG = 'incarnation=';

/** A stack as its stackvault.yaml describes it: its containers, its data, its repository. */
export interface StackContext {
  /** stackvault.yaml as it is now; `reload` reads it again after the stack repository changed */
  loaded: LoadedConfig;
  reload(): LoadedConfig;
  repo: Repository;
  compose: Compose;
  /** the vendor's release store, opened when a release is not in the stack's repository yet */
  openReleaseStore?: () => Promise<Repository>;
  log(message: string): void;
  signal?: AbortSignal;
}

export function stackDir(ctx: StackContext): string {
  return ctx.loaded.baseDir;
}

/** The application version stackvault.yaml asks for. */
export function wantedVersion(loaded: LoadedConfig): string {
  const version = loaded.config.application?.version;
  if (version === undefined) throw new UsageError(`${loaded.file}: application.version is missing: which version of the application does this stack run?`);
  return version;
}

export function applicationName(loaded: LoadedConfig): string {
  return loaded.config.application?.name ?? loaded.config.stack;
}

/** The compose project of the stack, with the image variables of a version when one is given. */
export function composeProject(loaded: LoadedConfig, version?: string): ComposeProject {
  const compose = loaded.config.compose;
  const images = loaded.config.application?.images;
  if (version !== undefined && images && !images[version]) {
    throw new UsageError(`${loaded.file}: application.images has no entry for version ${version} (it has ${Object.keys(images).join(', ')}): add the images that version runs`);
  }
  return {
    name: compose?.project ?? loaded.config.stack.replace(/[^a-z0-9_-]/g, '-'),
    files: (compose?.files ?? ['docker-compose.yml']).map((f) => resolve(loaded.baseDir, f)),
    directory: loaded.baseDir,
    env: (version !== undefined ? images?.[version] : undefined) ?? {},
  };
}

export const healthTimeoutMs = (loaded: LoadedConfig) => (loaded.config.compose?.health_timeout ?? 300) * 1000;

/** The compose services the stack's sources run as (its databases). */
export function sourceServices(sources: SourceSpec[]): string[] {
  return sources.flatMap((s) => driverOf(s.kind).services?.(s) ?? []);
}

/**
 * Sources ready to connect: a database that runs as a compose service is reached at its
 * container's address in the stack's network, so its port need not be published.
 */
export async function reachDatabases(sources: SourceSpec[], compose: Compose, project: ComposeProject): Promise<SourceSpec[]> {
  return atServiceAddresses(sources, (service) => compose.serviceAddress(project, service));
}

/** Sources that run as compose services, each at the address `address` gives its service. */
function atServiceAddresses(sources: SourceSpec[], address: (service: string) => Promise<string>): Promise<SourceSpec[]> {
  return Promise.all(
    sources.map(async (s) => {
      const driver = driverOf(s.kind);
      const [service] = driver.services?.(s) ?? [];
      return service && driver.atServiceAddress ? driver.atServiceAddress(s, await address(service)) : s;
    }),
  );
}

/** The tags that tie a snapshot to what produced it: the data's version and the incarnation. */
export async function incarnationTags(loaded: LoadedConfig, at?: { version: string; incarnation: string }): Promise<string[]> {
  const version = at?.version ?? loaded.config.application?.version;
  const incarnation = at?.incarnation ?? (await headCommit(loaded.baseDir).catch(() => undefined));
  return [...(version !== undefined ? [versionTag(version)] : []), ...(incarnation ? [INCARNATION_TAG + incarnation] : [])];
}

/** The commit of the stack repository a snapshot was taken under. */
export const snapshotIncarnation = (ref: SnapshotRef) => ref.snapshot.tags.find((t) => t.startsWith(INCARNATION_TAG))?.slice(INCARNATION_TAG.length);

/** The stack's own snapshots (not releases), oldest first. */
export async function stackSnapshots(ctx: StackContext): Promise<SnapshotRef[]> {
  const refs = (await listSnapshots(ctx.repo)).filter((r) => r.snapshot.stack === ctx.loaded.config.stack && !r.snapshot.tags.includes(RELEASE_TAG));
  return refs.sort((a, b) => a.snapshot.time.localeCompare(b.snapshot.time));
}

/** Back up the running stack: every source, its databases reached inside the stack's network. */
export async function snapshotStack(ctx: StackContext, at: { version: string; incarnation: string }, extraTags: string[]): Promise<BackupResult> {
  const sources = await reachDatabases(resolveSources(ctx.loaded), ctx.compose, composeProject(ctx.loaded, at.version));
  const tags = [...(ctx.loaded.config.tags ?? []), ...(await incarnationTags(ctx.loaded, at)), ...extraTags];
  const saved = await backup(ctx.repo, { sources, stack: ctx.loaded.config.stack, host: stackHost(ctx.loaded.config), tags, signal: ctx.signal });
  if (saved.errorCount > 0) throw new StackvaultError(`the snapshot before this step could not read ${saved.errorCount} entries; nothing was changed`);
  return saved;
}

/** The sources of stackvault.yaml ready to connect: databases that run as compose services reached inside the stack's network. */
export async function reachStackSources(loaded: LoadedConfig, compose?: Compose): Promise<SourceSpec[]> {
  const sources = resolveSources(loaded);
  if (sourceServices(sources).length === 0) return sources;
  // The task runner's container is on the stack's network, with no engine to ask: there a
  // service is reached by its name, so one stackvault.yaml serves the host and the runner.
  if (!compose && insideContainer() && !process.env.DOCKER_HOST) return atServiceAddresses(sources, async (service) => service);
  // Only the containers' addresses are needed: no image variables.
  return reachDatabases(sources, compose ?? (await Compose.detect()), composeProject(loaded));
}

/** Podman and Docker mark their containers with these files. */
function insideContainer(): boolean {
  return existsSync('/run/.containerenv') || existsSync('/.dockerenv');
}

/**
 * The host name a stack's snapshots carry: host in stackvault.yaml, else the stack's name.
 * The machine's name would change with every runner container (its id) and every move to
 * a new host, and retention, which groups by host, would never see one lineage.
 */
export function stackHost(config: LoadedConfig['config']): string {
  return config.host ?? config.stack;
}

/** What a backup of the stack takes, and the tags that tie it to the version and incarnation this host runs. */
export async function stackBackupInputs(loaded: LoadedConfig, compose?: Compose): Promise<{ sources: SourceSpec[]; tags: string[] }> {
  return { sources: await reachStackSources(loaded, compose), tags: await incarnationTags(loaded, await readHostState(loaded.baseDir)) };
}

const filesRules = (s: FilesSource) => ({ include: s.include, exclude: s.exclude, classes: s.exclusionClasses });

/** How many files the stack's files sources hold that a backup would take (what a restore would replace). */
export async function dataOnHost(loaded: LoadedConfig): Promise<Array<{ source: string; path: string; files: number }>> {
  const found = [];
  for (const s of resolveSources(loaded)) {
    if (!isFilesSource(s)) continue;
    const { removed } = await clearSourceContents(s.path, filesRules(s), { dryRun: true });
    if (removed > 0) found.push({ source: s.name, path: s.path, files: removed });
  }
  return found;
}

/** Clear what backups hold from every files source (what the rules leave out stays). */
export async function clearStackData(loaded: LoadedConfig): Promise<void> {
  for (const s of resolveSources(loaded)) if (isFilesSource(s)) await clearSourceContents(s.path, filesRules(s));
}

/**
 * Put a snapshot's data (or a release's vanilla data) in place: the stack goes down, each
 * files source is cleared of what backups hold (what they leave out, like recordings,
 * stays) and restored, and each database is started on its own and restored into.
 */
export async function restoreStackData(ctx: StackContext, ref: SnapshotRef, kind: 'snapshot' | 'release', version: string): Promise<void> {
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
  }
}

async function releaseHasFolder(ctx: StackContext, ref: SnapshotRef, path: string): Promise<boolean> {
  await ctx.repo.loadIndex();
  return (await findNode(new TreeLoader(ctx.repo), ref.snapshot.tree, path))?.type === 'dir';
}

/** A database whose health check just passed may still refuse its first connections for a moment. */
function withRetriesWhileStarting<T>(work: () => Promise<T>): Promise<T> {
  return retry(work, { attempts: 10, retryable: (err) => /ECONNREFUSED|cannot connect|Can't connect/i.test(errorMessage(err)), delayMs: linearBackoff(500) });
}
