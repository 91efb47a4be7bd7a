import assert from 'node:assert/strict';
import { test } from 'node:test';
import { chainsOf, segmentsFrom, type BinlogSegment, type SegmentRef } from '../../src/snapshot/binlog-segments.js';

/** A segment record as the archiver writes it, from `start` to `end` of one log, committed at `at`. */
function segment(id: string, prev: string | null, chain: string, start: [string, number], end: [string, number], at: string): SegmentRef {
  const value: BinlogSegment = {
    version: 1,
    stack: 'acme',
    source: 'db',
    host: 'h',
    chain,
    prev,
    serverId: 1,
    start: { file: start[0], position: start[1] },
    end: { file: end[0], position: end[1] },
    fileCreated: 0,
    format: '',
    firstTime: null,
    lastTime: null,
    lastGtid: null,
    coveredUntil: at,
    events: 1,
    bytes: 1,
    content: [],
  };
  return { id, segment: value };
}

const a1 = segment('a1', null, 'A', ['binlog.000001', 4], ['binlog.000001', 1000], '2026-12-04T10:00:00Z');
const a2 = segment('a2', 'a1', 'A', ['binlog.000001', 1000], ['binlog.000002', 500], '2026-12-04T10:01:00Z');
const a3 = segment('a3', 'a2', 'A', ['binlog.000002', 500], ['binlog.000002', 900], '2026-12-04T10:02:00Z');

test('a chain is followed from its first segment to its tip, and the segments from the snapshot on are the ones replayed', () => {
  assert.deepEqual(chainsOf([a3, a1, a2]).map((c) => c.map((s) => s.id)), [['a1', 'a2', 'a3']]);
  const needed = segmentsFrom([a1, a2, a3], { file: 'binlog.000001', position: 1500 }, new Date('2026-12-04T10:00:30Z'), new Date('2026-12-04T10:01:30Z'));
  assert.deepEqual(needed.map((s) => s.id), ['a2', 'a3']);
  // A snapshot exactly at a segment's end starts in it (its events are all skipped) and goes on.
  assert.deepEqual(segmentsFrom([a1, a2, a3], { file: 'binlog.000001', position: 1000 }, new Date('2026-12-04T10:00:00Z'), undefined).map((s) => s.id), ['a1', 'a2', 'a3']);
});

test('a moment past the archive, or a segment missing from the middle, is refused with what is missing', () => {
  assert.throws(
    () => segmentsFrom([a1, a2, a3], { file: 'binlog.000001', position: 1500 }, new Date('2026-12-04T10:00:30Z'), new Date('2026-12-04T10:05:00Z')),
    /archive reaches only to 2026-12-04T10:02:00.000Z, not to 2026-12-04T10:05:00.000Z/,
  );
  // a2 is gone: the stretch before it ends at a1, the one after starts after a missing segment.
  assert.deepEqual(chainsOf([a1, a3]).map((c) => c.map((s) => s.id)), [['a1'], ['a3']]);
  assert.throws(() => segmentsFrom([a1, a3], { file: 'binlog.000001', position: 500 }, new Date('2026-12-04T09:59:30Z'), new Date('2026-12-04T10:01:30Z')), /gap: a segment after binlog\.000001:1000 .* is missing/);
  // Before the gap still works.
  assert.deepEqual(segmentsFrom([a1, a3], { file: 'binlog.000001', position: 500 }, new Date('2026-12-04T09:59:30Z'), new Date('2026-12-04T09:59:50Z')).map((s) => s.id), ['a1']);
  assert.throws(() => segmentsFrom([], { file: 'binlog.000001', position: 500 }, new Date(), undefined), /nothing is archived/);
});

test('a rebuilt server counts its files from 1 again: the snapshot is rolled forward on the chain that archived when it was taken', () => {
  const b1 = segment('b1', null, 'B', ['binlog.000001', 4], ['binlog.000001', 2000], '2026-12-05T10:00:00Z');
  const needed = segmentsFrom([a1, a2, a3, b1], { file: 'binlog.000001', position: 800 }, new Date('2026-12-05T09:59:00Z'), undefined);
  assert.deepEqual(needed.map((s) => s.id), ['b1']);
  const older = segmentsFrom([a1, a2, a3, b1], { file: 'binlog.000001', position: 800 }, new Date('2026-12-04T09:59:00Z'), new Date('2026-12-04T10:01:00Z'));
  assert.deepEqual(older.map((s) => s.id), ['a1', 'a2', 'a3']);
});

test('two archivers that continued one segment: the one that reaches further is followed', () => {
  const fork = segment('a3b', 'a2', 'A', ['binlog.000002', 500], ['binlog.000002', 1200], '2026-12-04T10:03:00Z');
  assert.deepEqual(chainsOf([a1, a2, a3, fork]).map((c) => c.map((s) => s.id)), [['a1', 'a2', 'a3b']]);
});
