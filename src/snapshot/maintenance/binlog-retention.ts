import type { BlobMarks } from '../../repo/blob-marks.js';
import { idFromKey } from '../../repo/format/layout.js';
import { candidate, planClock, type PrunePlan } from '../../repo/maintenance/prune-packs.js';
import type { Repository } from '../../repo/repository.js';
import type { BinlogSegment } from '../binlog-segments.js';
import type { SnapshotRef } from '../snapshot.js';

const DAY_MS = 86_400_000;
/** Clocks of the archiver and of the backup may differ a little: a segment goes only this long after the base snapshot. */
const CLOCK_MARGIN_MS = 60 * 60_000;

/**
 * Which binary log segments prune may delete, and the blobs the others use. A database is
 * rolled forward from a kept snapshot, so the archive is kept from the snapshot each
 * recovery window needs: with `pitrDays`, the newest kept snapshot taken before the
 * window began (any moment of the last pitrDays days can be reached); without, the oldest
 * kept snapshot (as pgBackRest keeps WAL for every retained backup). Segments of a stack
 * and source no kept snapshot names are all kept: prune cannot tell what they are for.
 */
export async function judgeBinlogSegments(repo: Repository, plan: PrunePlan, kept: readonly SnapshotRef[], pitrDays: number | undefined, used: BlobMarks): Promise<void> {
  const infos = new Map((await repo.listObjects('binlog')).map((i) => [idFromKey(i.key), i]));
  const segments = await repo.loadIntact<BinlogSegment>('binlog', [...infos.keys()]);
  const damaged = [...repo.damage.keys()].filter((key) => key.startsWith('binlog/'));
  if (damaged.length > 0) {
    // A damaged segment record hides which packs hold its events.
    plan.markingHeldBack ??= `damaged binary log segments (${damaged.map((k) => idFromKey(k).slice(0, 8)).join(', ')}) may need any unused pack: prune lets nothing go until they are deleted or read again`;
  }
  const { immutableMs, past } = planClock(repo, plan);
  const now = Date.parse(plan.now);
  for (const { id, value } of segments) {
    const base = baseSnapshotTime(kept, value, pitrDays === undefined ? undefined : now - pitrDays * DAY_MS);
    const unneeded = base !== undefined && Date.parse(value.coveredUntil) < base - CLOCK_MARGIN_MS;
    const info = infos.get(id)!;
    if (unneeded && past(info, immutableMs)) {
      plan.delete.binlogSegments.push(candidate(info, immutableMs));
      continue;
    }
    if (unneeded) plan.keepForNow.binlogSegments.push(candidate(info, immutableMs));
    for (const blob of value.content) used.mark(blob);
  }
}

/** The time of the snapshot the archive must reach back to, for one segment's stack and source; undefined keeps it. */
function baseSnapshotTime(kept: readonly SnapshotRef[], segment: BinlogSegment, windowStart: number | undefined): number | undefined {
  const times = kept
    .filter((r) => r.snapshot.stack === segment.stack && r.snapshot.sources.some((s) => s.name === segment.source && s.database?.binlog?.file))
    .map((r) => Date.parse(r.snapshot.time))
    .sort((a, b) => a - b);
  if (times.length === 0) return undefined;
  if (windowStart === undefined) return times[0];
  const before = times.filter((t) => t <= windowStart);
  return before.length > 0 ? before[before.length - 1] : times[0];
}
