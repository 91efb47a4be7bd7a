import type { LoadedConfig } from '../config/load.js';
import { RELEASE_TAG, versionTag } from '../release/release.js';
import { listSnapshots, type SnapshotRef } from '../snapshot/snapshot.js';
import type { StackContext } from './context.js';
import { headCommit } from './stack-repository.js';

const INCARNATION_TAG = 'incarnation=';

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
