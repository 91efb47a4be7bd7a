import assert from 'node:assert/strict';
import { test } from 'node:test';
import { applyRetention } from '../../src/snapshot/maintenance/retention.js';
import type { Snapshot, SnapshotRef } from '../../src/snapshot/snapshot.js';

function snap(id: string, time: string, tags: string[] = []): SnapshotRef {
  const snapshot = { version: 1, time: new Date(time).toISOString(), host: 'h', username: 'u', stack: 's', tags, program: 't', parent: null, tree: 'x', sources: [], durationMs: 0 } as Snapshot;
  return { id, snapshot };
}

// Local-time timestamps: restic's buckets use the local calendar.
const series = [
  snap('a', '2026-01-01T10:00:00'),
  snap('b', '2026-01-01T22:00:00'),
  snap('c', '2026-01-02T10:00:00'),
  snap('d', '2026-01-09T10:00:00'),
  snap('e', '2026-02-01T10:00:00'),
  snap('f', '2026-02-01T11:00:00', ['keep']),
  snap('g', '2026-03-15T10:00:00'),
];

const kept = (policy: Parameters<typeof applyRetention>[1]) =>
  applyRetention(series, policy)[0]!.keep.map((k) => k.ref.id).sort().join('');

test('keep-last keeps the newest n', () => assert.equal(kept({ last: 2 }), 'fg'));
test('keep-daily keeps the newest of each day', () => assert.equal(kept({ daily: 3 }), 'dfg'));
test('keep-daily counts days that have snapshots, not calendar days', () => assert.equal(kept({ daily: 10 }), 'bcdfg'));
test('keep-monthly keeps the newest of each month', () => assert.equal(kept({ monthly: 2 }), 'fg'));
test('keep-yearly keeps the newest of the year', () => assert.equal(kept({ yearly: 5 }), 'g'));
test('keep-weekly uses ISO weeks', () => assert.equal(kept({ weekly: 3 }), 'dfg'));
test('rules combine as a union', () => assert.equal(kept({ last: 1, monthly: 3 }), 'dfg'));
test('keep-within is relative to the newest snapshot', () => assert.equal(kept({ within: '50d' }), 'efg'));
test('keep-tag keeps tagged snapshots', () => assert.equal(kept({ last: 1, tags: ['keep'] }), 'fg'));
test('-1 means unlimited', () => assert.equal(kept({ monthly: -1 }), 'dfg'));
test('groups are separate', () => {
  const other = snap('z', '2025-01-01T10:00:00');
  other.snapshot.host = 'other';
  const decisions = applyRetention([...series, other], { last: 1 });
  assert.equal(decisions.length, 2);
  assert.deepEqual(decisions.map((d) => d.keep.map((k) => k.ref.id)).sort(), [['g'], ['z']]);
});
