import type { Repository } from '../repo/repository.js';
import { comparePositions } from '../sources/mariadb/binlog-events.js';
import { Connection, type ConnectOptions } from '../sources/mariadb/connection.js';
import { restoreMariadb } from '../sources/mariadb/restore.js';
import { ident } from '../sources/mariadb/sql.js';
import { verifyMariadb } from '../sources/mariadb/verify.js';
import { StackvaultError } from '../util/errors.js';
import { chainsOf, coveredUntil, listSegments } from '../snapshot/binlog-segments.js';
import { openSourceReader } from '../snapshot/restore/streamed-source.js';
import { shortId, type SnapshotRef } from '../snapshot/snapshot.js';
import { planRollForward, rollForward, snapshotPosition } from '../snapshot/binlog/point-in-time.js';

/**
 * The point-in-time part of a restore drill: the snapshot before the newest one is
 * restored into the scratch server and rolled forward through the archived binary log to
 * the exact moment of the newest snapshot, whose dump is then the proof: every table must
 * read back as that snapshot holds it. So the archive is shown to replay, event for event,
 * between two snapshots. Also measured: how long it took (the recovery time of a
 * point-in-time restore of this much log) and how much a failure now would lose (RPO).
 */
export async function drillRollForward(repo: Repository, base: SnapshotRef, goal: SnapshotRef, source: string, scratch: ConnectOptions, signal?: AbortSignal): Promise<Record<string, unknown>> {
  const chains = chainsOf(await listSegments(repo, goal.snapshot.stack, source));
  if (chains.length === 0) return { source, skipped: 'nothing of its binary log is archived (binlog: true, and the runner running)' };
  const newest = chains[chains.length - 1]!;
  const rpoSeconds = Math.max(0, (Date.now() - coveredUntil(newest)) / 1000);
  const goalState = goal.snapshot.sources.find((s) => s.name === source)?.database?.binlog?.gtid;
  if (!goalState) return { source, skipped: `snapshot ${shortId(goal.id)} recorded no GTID position`, rpoSeconds };
  const plan = await planRollForward(repo, base, source, { gtidState: goalState });
  const reached = plan.segments[plan.segments.length - 1]!.segment.end;
  if (comparePositions(reached, snapshotPosition(goal, source)) < 0) {
    throw new StackvaultError(`the binary log archive of ${source} ends at ${reached.file}:${reached.position}, before snapshot ${shortId(goal.id)}: it cannot be rolled forward to it`);
  }
  const record = base.snapshot.sources.find((s) => s.name === source)!;
  const rename = Object.fromEntries((record.database?.databases ?? []).map((d) => [d, `drill_pitr_${d}`]));
  const started = Date.now();
  const restored = await restoreMariadb(await openSourceReader(repo, base, source), { name: source, connection: scratch, rename, force: true, signal });
  try {
    const replayed = await rollForward(repo, plan, { gtidState: goalState }, scratch, { databases: new Set(restored.databases.map((d) => d.from)), rename, signal });
    const rtoMs = Date.now() - started;
    const verdicts = await verifyMariadb(await openSourceReader(repo, goal, source), { name: source, connection: scratch, rename });
    const differing = verdicts.filter((v) => !v.equal).map((v) => `${v.database}.${v.table}`);
    if (differing.length > 0) {
      throw new StackvaultError(
        `the point-in-time drill of source "${source}": snapshot ${shortId(base.id)} rolled forward to snapshot ${shortId(goal.id)} has tables that differ from it: ${differing.join(', ')}`,
      );
    }
    return {
      source,
      from: base.id,
      to: goal.id,
      transactions: replayed.transactions,
      events: replayed.events,
      tables: verdicts.length,
      verified: verdicts.length,
      rtoMs,
      rpoSeconds,
    };
  } finally {
    const conn = await Connection.connect(scratch);
    try {
      for (const { to } of restored.databases) await conn.execute(`DROP DATABASE IF EXISTS ${ident(to)}`);
    } finally {
      await conn.close();
    }
  }
}
