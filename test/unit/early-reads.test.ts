import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import type { Backend, ObjectInfo } from '../../src/repo/backends/backend.js';
import { LocalBackend } from '../../src/repo/backends/local.js';
import { Repository } from '../../src/repo/repository.js';
import { backup } from '../../src/snapshot/backup/backup.js';
import { restore } from '../../src/snapshot/restore/restore.js';
import { forgetSnapshots, listSnapshots } from '../../src/snapshot/snapshot.js';
import { compareTrees } from '../../src/sources/files/compare.js';
import { pseudoText, tempDir } from '../support/helpers.js';

test('a repository opened while a backup commits lists its index after its snapshots: every listed snapshot restores', async (t) => {
  const dir = await tempDir(t);
  const source = join(dir, 'source');
  await mkdir(source);
  for (let i = 0; i < 20; i++) await writeFile(join(source, `note-${i}.txt`), pseudoText(i, 3000));
  const local = new LocalBackend(join(dir, 'repo'));
  await Repository.init(local, { password: 'pw', immutabilityDays: 0 });
  // The reader's listing of snapshots is held until a backup has committed meanwhile.
  let release!: () => void;
  const held = new Promise<void>((resolve) => (release = resolve));
  const reader: Backend = Object.create(local) as Backend;
  reader.list = (prefix: string): AsyncIterable<ObjectInfo> => ({
    async *[Symbol.asyncIterator]() {
      if (prefix === 'snapshots/') await held;
      yield* local.list(prefix);
    },
  });
  const opening = Repository.open(reader, 'pw');
  await new Promise((r) => setTimeout(r, 200));
  const saved = await backup(await Repository.open(local, 'pw'), { sources: [{ name: 'data', path: source, exclusionClasses: {} }] });
  release();
  const repo = await opening;
  const [ref] = await listSnapshots(repo);
  assert.equal(ref?.id, saved.id);
  await repo.loadIndex();
  const result = await restore(repo, ref!, { target: join(dir, 'target') });
  assert.deepEqual(result.errors, []);
  assert.deepEqual((await compareTrees(source, join(dir, 'target', 'data'))).differences, []);
});

test('snapshots listed again after the index files were listed at open: the index is listed again too, so every snapshot listed loads', async (t) => {
  // The runner's retention job listed snapshots (the listing made at open), forgot some,
  // then prune listed them afresh while loading the index from the listing made at open:
  // a backup that committed in between had a snapshot but no index, and prune failed on it.
  const dir = await tempDir(t);
  const source = join(dir, 'source');
  await mkdir(source);
  for (let i = 0; i < 5; i++) await writeFile(join(source, `note-${i}.txt`), pseudoText(i, 3000));
  const local = new LocalBackend(join(dir, 'repo'));
  await Repository.init(local, { password: 'pw', immutabilityDays: 0 });
  const repo = await Repository.open(local, 'pw');
  assert.deepEqual(await listSnapshots(repo), []);
  // Give the listing of index files made at open time to finish before the backup commits.
  await new Promise((r) => setTimeout(r, 100));
  const saved = await backup(await Repository.open(local, 'pw'), { sources: [{ name: 'data', path: source, exclusionClasses: {} }] });
  const [ref] = await listSnapshots(repo);
  assert.equal(ref?.id, saved.id);
  await repo.loadIndex();
  const result = await restore(repo, ref!, { target: join(dir, 'target') });
  assert.deepEqual(result.errors, []);
});

test('a snapshot listing never shows a forget without the backup before it: forget records are listed before the snapshots, at open too', async (t) => {
  // The runner's container test listed one snapshot where two existed at every moment: the
  // host's CLI listed snapshots at open (before the runner's next backup committed), then
  // forget records afresh (after the runner's retention forgot the backup before it).
  const dir = await tempDir(t);
  const source = join(dir, 'source');
  await mkdir(source);
  await writeFile(join(source, 'note.txt'), pseudoText(1, 3000));
  const local = new LocalBackend(join(dir, 'repo'));
  await Repository.init(local, { password: 'pw', immutabilityDays: 0 });
  const writer = () => Repository.open(local, 'pw');
  const first = await backup(await writer(), { sources: [{ name: 'data', path: source, exclusionClasses: {} }] });
  const reader = await Repository.open(local, 'pw');
  // The reader's listings made at open are done; then a backup commits and retention forgets the first.
  await new Promise((r) => setTimeout(r, 200));
  await writeFile(join(source, 'note.txt'), pseudoText(2, 3000));
  const second = await backup(await writer(), { sources: [{ name: 'data', path: source, exclusionClasses: {} }] });
  await forgetSnapshots(await writer(), [first.id]);
  const seen = (await listSnapshots(reader)).map((r) => r.id);
  assert.ok(JSON.stringify(seen) === JSON.stringify([first.id]) || JSON.stringify(seen) === JSON.stringify([second.id]), `a view of one moment, not ${JSON.stringify(seen)}`);
});
