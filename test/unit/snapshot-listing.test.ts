import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Repository } from '../../src/repo/repository.js';
import { describeProblems, forgetSnapshots, listSnapshots, snapshotProblems, type Snapshot, type SourceRecord } from '../../src/snapshot/snapshot.js';
import { MemoryBackend } from '../support/memory-backend.js';

/** Counts the manifests read. */
class CountingBackend extends MemoryBackend {
  manifestReads = 0;
  override async get(key: string, range?: Parameters<MemoryBackend['get']>[1]): Promise<Buffer> {
    if (key.startsWith('snapshots/')) this.manifestReads++;
    return super.get(key, range);
  }
}

function manifest(hour: number): Snapshot {
  return { version: 1, time: new Date(Date.UTC(2026, 11, 1, hour)).toISOString(), host: 'h', username: 'u', stack: 'acme', tags: [], program: 't', parent: null, tree: 't', sources: [], durationMs: 1 };
}

test('a listing that knows manifests read before reads only new ones, and still leaves out the forgotten', async () => {
  const backend = new CountingBackend();
  const repo = await Repository.init(backend, { password: 'pw', immutabilityDays: 0 });
  const ids = [];
  for (let h = 0; h < 5; h++) ids.push(await repo.saveObject('snapshots', manifest(h)));
  const known = new Map<string, Snapshot>();
  assert.equal((await listSnapshots(repo, { known })).length, 5);
  assert.equal(backend.manifestReads, 5);
  ids.push(await repo.saveObject('snapshots', manifest(9)));
  await forgetSnapshots(repo, [ids[0]!]);
  const again = await listSnapshots(repo, { known });
  assert.equal(backend.manifestReads, 6, 'only the new manifest was read');
  assert.deepEqual(again.map((r) => r.id), ids.slice(1), 'oldest first, the forgotten one left out');
});

test("a snapshot's problems are counted over its sources, and a count at the records' bound reads as at least", () => {
  const source = (errors: number, changed: number | undefined): SourceRecord => ({
    name: 'data',
    kind: 'files',
    path: '/data',
    include: [],
    exclude: [],
    exclusionClasses: {},
    excluded: [],
    stats: { files: 0, dirs: 0, others: 0, bytes: 0, newFiles: 0, changedFiles: 0, unchangedFiles: 0, bytesRead: 0, bytesAdded: 0 },
    errors: Array.from({ length: errors }, (_, i) => ({ path: `/data/${i}`, message: 'EACCES' })),
    ...(changed !== undefined && { changedWhileRead: Array.from({ length: changed }, (_, i) => `/data/c${i}`) }),
  });
  const clean = { ...manifest(1), sources: [source(0, undefined)] };
  assert.equal(describeProblems(snapshotProblems(clean)), '');
  assert.equal(describeProblems(snapshotProblems({ ...manifest(1), sources: [source(2, undefined), source(0, 1)] })), '2 unreadable, 1 changed while read');
  // Two sources of 600 are 1,200 exactly; one at the bound of 1,000 names may hold more.
  assert.equal(describeProblems(snapshotProblems({ ...manifest(1), sources: [source(600, 0), source(600, 0)] })), '1200 unreadable');
  assert.equal(describeProblems(snapshotProblems({ ...manifest(1), sources: [source(1000, 1000)] })), '1000+ unreadable, 1000+ changed while read');
});
