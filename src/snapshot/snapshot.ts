import { objectKey } from '../repo/format/layout.js';
import type { RecordStore } from '../repo/roles.js';
import type { DatabaseRecord } from '../sources/driver.js';
import { MAX_RECORDED_ERRORS, type ExclusionCount, type WalkStats } from '../sources/files/walker.js';
import { IntegrityError, UsageError } from '../util/errors.js';

export type { DatabaseRecord };

/** What one source's backup found and stored (files, folders, bytes read and added): the walk's counts. */
export type SourceStats = WalkStats;
/** Entries an exclusion class, the source's patterns ("exclude", "include") or a mount left out. */
export type ExclusionRecord = ExclusionCount;

export interface SourceRecord {
  name: string;
  /** the kind of source (files, mariadb): its driver in sources/registry.ts */
  kind: string;
  /** a folder, or for a database where it was read from (mariadb://user@host:port) */
  path: string;
  database?: DatabaseRecord;
  include: string[];
  exclude: string[];
  /** the exclusion classes in force, with their patterns */
  exclusionClasses: Record<string, readonly string[]>;
  excluded: ExclusionRecord[];
  stats: SourceStats;
  /** entries that could not be read; the snapshot is complete except for these */
  errors: Array<{ path: string; message: string }>;
  /**
   * Files that changed while they were read (absent when none did, and in snapshots made
   * before stackvault looked): saved as read, each may mix its old and new content. The
   * first 1,000 are named.
   */
  changedWhileRead?: string[];
}

/** The snapshot manifest: written last, it is the commit point of a backup. */
export interface Snapshot {
  version: 1;
  time: string;
  host: string;
  username: string;
  stack: string | null;
  tags: string[];
  program: string;
  parent: string | null;
  /** root tree: one folder per source, named after it */
  tree: string;
  sources: SourceRecord[];
  durationMs: number;
  /** set on a copy (stackvault copy, a release brought into a stack's repository): where it came from */
  copiedFrom?: { repository: string; snapshot: string };
}

export interface SnapshotRef {
  id: string;
  snapshot: Snapshot;
}

/**
 * Forget records mark snapshots as forgotten without touching the immutable snapshot
 * object; an undo record (`undo: true`, written by "forget --undo") keeps them again.
 * The newest record naming a snapshot decides.
 */
export interface ForgetRecord {
  version: 1;
  time: string;
  snapshots: string[];
  undo?: boolean;
}

/**
 * Snapshot id -> the forget record that forgets it (with its time). A damaged record is
 * reported and skipped (prune then lets nothing go: it may have been an undo).
 */
export async function forgottenIds(repo: RecordStore): Promise<Map<string, { record: string; time: string }>> {
  const records: Array<{ id: string; value: ForgetRecord }> = [];
  for (const { id, value } of await repo.loadIntact<ForgetRecord>('forget', await repo.listIds('forget'))) {
    if (!Array.isArray(value.snapshots) || typeof value.time !== 'string') {
      repo.reportDamage(objectKey('forget', id), new IntegrityError(`forget record ${id} has an unknown format`));
      continue;
    }
    records.push({ id, value });
  }
  records.sort((a, b) => a.value.time.localeCompare(b.value.time) || a.id.localeCompare(b.id));
  const forgotten = new Map<string, { record: string; time: string }>();
  for (const { id, value } of records) {
    for (const snapshot of value.snapshots) {
      if (value.undo) forgotten.delete(snapshot);
      else forgotten.set(snapshot, { record: id, time: value.time });
    }
  }
  return forgotten;
}

/**
 * Every snapshot not forgotten, oldest first. A damaged snapshot is reported (see
 * Repository.damage) and skipped: every other snapshot stays usable.
 */
export async function listSnapshots(
  repo: RecordStore,
  options: {
    includeForgotten?: boolean;
    onlyForgotten?: boolean;
    forgotten?: Map<string, unknown>;
    /** manifests read before, by id: a manifest never changes, so only new ones are read (a long-lived reader lists often) */
    known?: Map<string, Snapshot>;
  } = {},
): Promise<SnapshotRef[]> {
  const forgotten = options.includeForgotten ? new Map() : (options.forgotten ?? (await forgottenIds(repo)));
  const ids = (await repo.listIds('snapshots')).filter((id) => forgotten.has(id) === Boolean(options.onlyForgotten));
  const known = options.known;
  const refs: SnapshotRef[] = known ? ids.filter((id) => known.has(id)).map((id) => ({ id, snapshot: known.get(id)! })) : [];
  for (const { id, value } of await repo.loadIntact<Snapshot>('snapshots', known ? ids.filter((id) => !known.has(id)) : ids)) {
    if (typeof value.tree !== 'string' || typeof value.time !== 'string' || !Array.isArray(value.sources)) {
      repo.reportDamage(objectKey('snapshots', id), new IntegrityError(`snapshot ${id} has an unknown format`));
      continue;
    }
    known?.set(id, value);
    refs.push({ id, snapshot: value });
  }
  return refs.sort((a, b) => a.snapshot.time.localeCompare(b.snapshot.time) || a.id.localeCompare(b.id));
}

export async function forgetSnapshots(repo: RecordStore, ids: string[], now = new Date(), options: { undo?: boolean } = {}): Promise<string | null> {
  if (ids.length === 0) return null;
  const record: ForgetRecord = { version: 1, time: now.toISOString(), snapshots: [...ids].sort(), ...(options.undo ? { undo: true } : {}) };
  return repo.saveObject('forget', record);
}

export interface SnapshotFilter {
  host?: string;
  stack?: string;
  tags?: string[];
  /** only snapshots taken at or before this moment (the base of a point-in-time recovery) */
  before?: Date;
}

export function matchesFilter(s: Snapshot, filter: SnapshotFilter): boolean {
  if (filter.before && Date.parse(s.time) > filter.before.getTime()) return false;
  if (filter.host && s.host !== filter.host) return false;
  if (filter.stack && s.stack !== filter.stack) return false;
  if (filter.tags && filter.tags.length > 0 && !filter.tags.every((t) => s.tags.includes(t))) return false;
  return true;
}

/**
 * Resolve "latest" or an id prefix (at least 4 hex digits) to one snapshot. `damaged`
 * ids (whose manifest cannot be read) match an id prefix too, with a placeholder manifest.
 */
export function findSnapshot(refs: SnapshotRef[], ref: string, filter: SnapshotFilter = {}, damaged: readonly string[] = []): SnapshotRef {
  const candidates = refs.filter((r) => matchesFilter(r.snapshot, filter));
  if (ref === 'latest') {
    const latest = candidates[candidates.length - 1];
    if (!latest) throw new UsageError('no snapshot matches (the repository has no snapshots, or none with that host/stack/tag)');
    return latest;
  }
  if (!/^[0-9a-f]{4,64}$/.test(ref)) throw new UsageError(`"${ref}" is not a snapshot id (give "latest" or at least 4 hex digits)`);
  const hits = refs.filter((r) => r.id.startsWith(ref));
  for (const id of damaged) if (id.startsWith(ref)) hits.push({ id, snapshot: DAMAGED_SNAPSHOT });
  if (hits.length === 0) throw new UsageError(`no snapshot with id ${ref}`);
  if (hits.length > 1) throw new UsageError(`snapshot id ${ref} is ambiguous: ${hits.map((h) => h.id.slice(0, 12)).join(', ')}`);
  return hits[0]!;
}

/** Stands for a snapshot whose manifest is damaged: it can be named (to forget it), not used. */
const DAMAGED_SNAPSHOT: Snapshot = Object.freeze({
  version: 1,
  time: '',
  host: '',
  username: '',
  stack: null,
  tags: [],
  program: '',
  parent: null,
  tree: '',
  sources: [],
  durationMs: 0,
});

export function shortId(id: string): string {
  return id.slice(0, 8);
}

/** What a snapshot's sources could not save whole: entries not read, files saved while they changed. */
export interface SnapshotProblems {
  unreadable: number;
  changedWhileRead: number;
  /** a source record names at most MAX_RECORDED_ERRORS of each: there may be more than counted */
  unreadableAtLeast: boolean;
  changedAtLeast: boolean;
}

/** The problems a snapshot's source records name. */
export function snapshotProblems(snapshot: Snapshot): SnapshotProblems {
  const problems = { unreadable: 0, changedWhileRead: 0, unreadableAtLeast: false, changedAtLeast: false };
  for (const source of snapshot.sources) {
    // Records written before a field existed lack it.
    const unreadable = source.errors?.length ?? 0;
    const changed = source.changedWhileRead?.length ?? 0;
    problems.unreadable += unreadable;
    problems.changedWhileRead += changed;
    problems.unreadableAtLeast ||= unreadable >= MAX_RECORDED_ERRORS;
    problems.changedAtLeast ||= changed >= MAX_RECORDED_ERRORS;
  }
  return problems;
}

/** A snapshot's problems in a few words for a list ("2 unreadable, 1 changed while read"); empty when it has none. */
export function describeProblems(problems: SnapshotProblems): string {
  return [
    ...(problems.unreadable > 0 ? [`${problems.unreadable}${problems.unreadableAtLeast ? '+' : ''} unreadable`] : []),
    ...(problems.changedWhileRead > 0 ? [`${problems.changedWhileRead}${problems.changedAtLeast ? '+' : ''} changed while read`] : []),
  ].join(', ');
}
