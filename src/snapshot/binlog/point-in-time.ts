import type { Repository } from '../../repo/repository.js';
import { replayBinlog } from '../../sources/mariadb/binlog-replay.js';
import { selectEvents, type ReplayTarget, type SelectionResult } from '../../sources/mariadb/binlog-select.js';
import type { BinlogPoint } from '../../sources/mariadb/binlog-stream.js';
import type { ConnectOptions } from '../../sources/mariadb/connection.js';
import { StackvaultError } from '../../util/errors.js';
import { shortId, type SnapshotRef } from '../snapshot.js';
import { listSegments, segmentEvents, segmentsFrom, type SegmentRef } from '../binlog-segments.js';

export interface RollForwardPlan {
  from: BinlogPoint;
  segments: SegmentRef[];
}

/** The binary log position a snapshot's database source is consistent with. */
export function snapshotPosition(ref: SnapshotRef, source: string): BinlogPoint {
  const binlog = ref.snapshot.sources.find((s) => s.name === source)?.database?.binlog;
  if (!binlog?.file || binlog.position === undefined) {
    throw new StackvaultError(
      `snapshot ${shortId(ref.id)} recorded no binary log position for source ${source} (the server wrote no binary log, or the backup's user may not read it: grant BINLOG MONITOR): it cannot be rolled forward`,
    );
  }
  return { file: binlog.file, position: Number(binlog.position) };
}

/** Which archived segments bring the snapshot to the target; refused (changing nothing) when the archive does not reach it. */
export async function planRollForward(repo: Repository, ref: SnapshotRef, source: string, target: ReplayTarget): Promise<RollForwardPlan> {
  const from = snapshotPosition(ref, source);
  const segments = segmentsFrom(await listSegments(repo, ref.snapshot.stack, source), from, new Date(ref.snapshot.time), 'time' in target ? target.time : undefined);
  if ('gtid' in target) {
    const [domain, , seq] = target.gtid.split('-').map(Number) as [number, number, number];
    const reaches = segments.some((s) => {
      const last = s.segment.lastGtid?.split('-').map(Number);
      return last !== undefined && last[0] === domain && last[2]! >= seq;
    });
    if (!reaches) throw new StackvaultError(`GTID ${target.gtid} is not in the binary log archive after snapshot ${shortId(ref.id)}`);
  }
  return { from, segments };
}

/**
 * Replay the archived events from where the snapshot stands to the target, into a server
 * the snapshot was just restored into.
 */
export async function rollForward(
  repo: Repository,
  plan: RollForwardPlan,
  target: ReplayTarget,
  server: ConnectOptions,
  options: {
    /** the databases restored, by their names in the snapshot: events of others are left out */
    databases?: ReadonlySet<string>;
    /** restored under other names: snapshot name to name on the server */
    rename?: Readonly<Record<string, string>>;
    signal?: AbortSignal;
  } = {},
): Promise<SelectionResult> {
  await repo.loadIndex();
  const result: SelectionResult = { transactions: 0, events: 0, passedTarget: false, reachedGtid: false };
  const renamed = new Set(Object.entries(options.rename ?? {}).filter(([from, to]) => from !== to).map(([from]) => from));
  const events = selectEvents(segmentEvents(repo, plan.segments, plan.from), target, options.databases, result, renamed);
  await replayBinlog(events, Buffer.from(plan.segments[0]!.segment.format, 'base64'), server, { signal: options.signal, rename: options.rename });
  if ('gtid' in target && !result.reachedGtid) throw new StackvaultError(`the replay ended before GTID ${target.gtid}: it is not in the archive after the snapshot`);
  return result;
}
