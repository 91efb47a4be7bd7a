import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Repository } from '../../src/repo/repository.js';
import { forgetSnapshots, listSnapshots, type Snapshot } from '../../src/snapshot/snapshot.js';
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
