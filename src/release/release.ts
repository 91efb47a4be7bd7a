import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { MariadbSource } from '../sources/mariadb/dump.js';
import type { Repository } from '../repo/repository.js';
import { backup } from '../snapshot/backup/backup.js';
import type { SourceSpec } from '../sources/registry.js';
import { copySnapshot, type CopyResult } from '../snapshot/copy.js';
import { listSnapshots, type SnapshotRef } from '../snapshot/snapshot.js';
import { TreeLoader } from '../snapshot/tree.js';
import { findNode } from '../snapshot/walk.js';
import { UsageError } from '../util/errors.js';
import { contentIds } from '../snapshot/content-list.js';

/**
 * A release is a snapshot in a vendor's release repository: the "vanilla" state of one
 * version of an application (its files, its database) and the migrations that bring the
 * data of the version before up to it. It is tagged "release" and "version=X", and, like
 * everything in a repository, never changes once written.
 *
 * A release folder holds what goes in:
 *   files/        the vanilla data folders, as a new stack starts with them
 *   migrations/   ordered steps from the previous version: NNN-name.sql (database) or NNN-name.sh (files)
 */
export const RELEASE_TAG = 'release';
export const versionTag = (version: string) => `version=${version}`;

export interface ReleaseInfo {
  version: string;
  snapshot: string;
  time: string;
  migrations: number;
}

/** The application version a snapshot holds data of (its version= tag), release or not. */
export function snapshotVersion(ref: SnapshotRef): string | undefined {
  return ref.snapshot.tags.find((t) => t.startsWith('version='))?.slice('version='.length);
}

export function releaseVersion(ref: SnapshotRef): string | undefined {
  return ref.snapshot.tags.includes(RELEASE_TAG) ? snapshotVersion(ref) : undefined;
}

export async function listReleases(repo: Repository, application?: string): Promise<ReleaseInfo[]> {
  const out: ReleaseInfo[] = [];
  for (const ref of await listSnapshots(repo)) {
    const version = releaseVersion(ref);
    if (version === undefined || (application && ref.snapshot.stack !== application)) continue;
    const migrations = ref.snapshot.sources.find((s) => s.name === 'migrations')?.stats.files ?? 0;
    out.push({ version, snapshot: ref.id, time: ref.snapshot.time, migrations });
  }
  return out;
}

export async function findRelease(repo: Repository, application: string, version: string): Promise<SnapshotRef> {
  const found = (await listSnapshots(repo)).filter((r) => r.snapshot.stack === application && releaseVersion(r) === version);
  if (found.length === 0) {
    const known = (await listReleases(repo, application)).map((r) => r.version);
    throw new UsageError(`no release ${version} of ${application} in ${repo.backend.location} (it has ${known.length ? known.join(', ') : 'none'})`);
  }
  return found[found.length - 1]!;
}

/** Check a release folder: files/ must exist; migrations/ holds only NNN-name.sql or NNN-name.sh. */
async function releaseSources(folder: string): Promise<SourceSpec[]> {
  const isDir = (p: string) => stat(p).then((s) => s.isDirectory(), () => false);
  if (!(await isDir(join(folder, 'files')))) throw new UsageError(`release folder ${folder} has no files/ folder (the vanilla data of the version)`);
  const sources: SourceSpec[] = [{ name: 'files', path: join(folder, 'files'), exclusionClasses: {} }];
  if (await isDir(join(folder, 'migrations'))) {
    for (const name of await readdir(join(folder, 'migrations'))) {
      if (!/^\d+-[A-Za-z0-9._-]+\.(sql|sh)$/.test(name)) {
        throw new UsageError(`release migration ${name}: expected NNN-name.sql (database) or NNN-name.sh (files), applied in the order of NNN`);
      }
    }
    sources.push({ name: 'migrations', path: join(folder, 'migrations'), exclusionClasses: {} });
  }
  return sources;
}

/** Write a release snapshot; a version is published once. */
export async function publishRelease(
  repo: Repository,
  options: { application: string; version: string; folder: string; database?: Omit<MariadbSource, 'name'>; signal?: AbortSignal },
): Promise<{ id: string }> {
  if (!/^[A-Za-z0-9._+-]+$/.test(options.version)) throw new UsageError(`version "${options.version}": letters, digits, ".", "_", "+" and "-" only`);
  const existing = (await listSnapshots(repo)).find((r) => r.snapshot.stack === options.application && releaseVersion(r) === options.version);
  if (existing) throw new UsageError(`release ${options.version} of ${options.application} is published already (snapshot ${existing.id.slice(0, 8)}); releases never change: publish a new version`);
  const sources = await releaseSources(options.folder);
  if (options.database) sources.push({ ...options.database, name: 'database' });
  const saved = await backup(repo, { sources, stack: options.application, tags: [RELEASE_TAG, versionTag(options.version)], host: 'release', parent: null, signal: options.signal });
  return { id: saved.id };
}

/** Bring a release into a stack's own repository, so that repository alone can rebuild the stack. */
export async function pullRelease(releases: Repository, target: Repository, application: string, version: string, signal?: AbortSignal): Promise<CopyResult> {
  return copySnapshot(releases, target, await findRelease(releases, application, version), { signal });
}

/** One step of a release's migrations, read from the release snapshot. */
export interface Migration {
  /** "version/NNN-name.ext": what the migration history records, once */
  id: string;
  version: string;
  name: string;
  kind: 'sql' | 'sh';
  text: string;
}

/** The migrations a release brings, in the order of their numbers. */
export async function releaseMigrations(repo: Repository, ref: SnapshotRef): Promise<Migration[]> {
  const version = releaseVersion(ref);
  if (version === undefined) throw new UsageError(`snapshot ${ref.id.slice(0, 8)} is not a release`);
  await repo.loadIndex();
  const loader = new TreeLoader(repo);
  const folder = await findNode(loader, ref.snapshot.tree, '/migrations');
  if (!folder?.subtree) return [];
  const migrations: Migration[] = [];
  for (const node of (await loader.load(folder.subtree)).nodes) {
    const kind = /^\d+-.*\.(sql|sh)$/.exec(node.name)?.[1] as 'sql' | 'sh' | undefined;
    if (node.type !== 'file' || !kind) continue;
    // Migrations are small scripts: whole in memory is fine.
    const parts: Buffer[] = [];
    for await (const id of contentIds(repo, node.content)) parts.push(await repo.loadBlob(id, 'data'));
    migrations.push({ id: `${version}/${node.name}`, version, name: node.name, kind, text: Buffer.concat(parts).toString('utf8') });
  }
  const number = (m: Migration) => Number(/^\d+/.exec(m.name)![0]);
  return migrations.sort((a, b) => number(a) - number(b) || a.name.localeCompare(b.name));
}

/** Order versions as people write them: numeric parts by number ("1.10" after "1.9"), the rest by text. */
export function compareVersions(a: string, b: string): number {
  const pa = a.split(/[.+-]/);
  const pb = b.split(/[.+-]/);
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const x = pa[i];
    const y = pb[i];
    if (x === undefined) return -1;
    if (y === undefined) return 1;
    const nx = /^\d+$/.test(x) ? Number(x) : NaN;
    const ny = /^\d+$/.test(y) ? Number(y) : NaN;
    const diff = !Number.isNaN(nx) && !Number.isNaN(ny) ? nx - ny : x.localeCompare(y);
    if (diff !== 0) return Math.sign(diff);
  }
  return 0;
}
