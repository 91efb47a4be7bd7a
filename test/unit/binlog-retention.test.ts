import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { BlobMarks } from '../../src/repo/blob-marks.js';
import { emptyPlan } from '../../src/repo/maintenance/prune-packs.js';
import { Repository } from '../../src/repo/repository.js';
import type { BinlogSegment } from '../../src/snapshot/binlog-segments.js';
import { judgeBinlogSegments } from '../../src/snapshot/maintenance/binlog-retention.js';
import type { SnapshotRef } from '../../src/snapshot/snapshot.js';
import { MemoryBackend } from '../support/memory-backend.js';

const DAY = 86_400_000;
const now = new Date('2026-12-20T12:00:00Z');
const daysAgo = (d: number) => new Date(now.getTime() - d * DAY).toISOString();

function snapshotAt(time: string): SnapshotRef {
  return {
    id: time,
    snapshot: {
      version: 1,
      time,
      host: 'h',
      username: 'u',
      stack: 'acme',
      tags: [],
      program: 'test',
      parent: null,
      tree: 't',
      durationMs: 1,
      sources: [{ name: 'db', kind: 'mariadb', path: '', database: { binlog: { file: 'binlog.000001', position: '4' } } } as never],
    },
  } as SnapshotRef;
}

function segmentUntil(covered: string, blob: string): BinlogSegment {
  return {
    version: 1, stack: 'acme', source: 'db', host: 'h', chain: 'c', prev: null, serverId: 1,
    start: { file: 'binlog.000001', position: 4 }, end: { file: 'binlog.000001', position: 5 }, fileCreated: 0, format: '',
    firstTime: null, lastTime: null, lastGtid: null, coveredUntil: covered, events: 1, bytes: 1, content: [blob],
  };
}

/** Segments committed on days 20 to 1 before `now`, with snapshots on days 14, 7 and 1. */
async function judge(pitrDays: number | undefined): Promise<{ deleted: number; kept: BlobMarks }> {
  const repo = await Repository.init(new MemoryBackend(), { password: 'pw', immutabilityDays: 0 });
  for (let d = 20; d >= 1; d--) await repo.saveObject('binlog', segmentUntil(daysAgo(d), `blob-${d}`));
  const kept = [snapshotAt(daysAgo(14)), snapshotAt(daysAgo(7)), snapshotAt(daysAgo(1))];
  const plan = emptyPlan(repo, now, kept.length, undefined);
  const used = repo.index.marks();
  await judgeBinlogSegments(repo, plan, kept, pitrDays, used);
  return { deleted: plan.delete.binlogSegments.length, kept: used };
}

test('prune keeps the binary log from the oldest kept snapshot on, or, with pitr_days, from the newest snapshot before the window', async () => {
  // Without pitr_days: every kept snapshot can be rolled forward, so from day 14 on (an hour's clock margin).
  const all = await judge(undefined);
  assert.equal(all.deleted, 6, 'days 20 to 15 go');
  assert.ok(all.kept.has('blob-14') && all.kept.has('blob-1') && !all.kept.has('blob-15'));
  // pitr_days: 5 reaches back to day 5, which needs the snapshot of day 7 and the log after it.
  const five = await judge(5);
  assert.equal(five.deleted, 13, 'days 20 to 8 go');
  assert.ok(five.kept.has('blob-7') && !five.kept.has('blob-8'));
  // A window longer than the snapshots: the oldest kept snapshot is the base again.
  assert.equal((await judge(30)).deleted, 6);
});
