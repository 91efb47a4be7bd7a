import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import type { Backend, ByteRange, ObjectInfo } from '../../src/repo/backends/backend.js';
import { LocalBackend } from '../../src/repo/backends/local.js';
import { openBackend, prestartBackend } from '../../src/repo/backends/open.js';
import { startReadsEarly } from '../../src/repo/early-reads.js';
import { Repository } from '../../src/repo/repository.js';
import { backup } from '../../src/snapshot/backup/backup.js';
import { restore } from '../../src/snapshot/restore/restore.js';
import { forgetSnapshots, listSnapshots } from '../../src/snapshot/snapshot.js';
import { compareTrees } from '../../src/sources/files/compare.js';
import { pseudoText, tempDir, waitFor } from '../support/helpers.js';

/** A folder repository (password "pw") and a source folder of `notes` small text files. */
async function repositoryAndSource(t: TestContext, notes: number): Promise<{ dir: string; source: string; local: LocalBackend }> {
  const dir = await tempDir(t);
  const source = join(dir, 'source');
  await mkdir(source);
  for (let i = 0; i < notes; i++) await writeFile(join(source, `note-${i}.txt`), pseudoText(i, 3000));
  const local = new LocalBackend(join(dir, 'repo'));
  await Repository.init(local, { password: 'pw', immutabilityDays: 0 });
  return { dir, source, local };
}

test('a repository opened while a backup commits lists its index after its snapshots: every listed snapshot restores', async (t) => {
  const { dir, source, local } = await repositoryAndSource(t, 20);
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
  const { dir, source, local } = await repositoryAndSource(t, 5);
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
  const { source, local } = await repositoryAndSource(t, 1);
  const writer = () => Repository.open(local, 'pw');
  const first = await backup(await writer(), { sources: [{ name: 'data', path: source, exclusionClasses: {} }] });
  const reader = await Repository.open(local, 'pw');
  // The reader's listings made at open are done; then a backup commits and retention forgets the first.
  await new Promise((r) => setTimeout(r, 200));
  await writeFile(join(source, 'note-0.txt'), pseudoText(2, 3000));
  const second = await backup(await writer(), { sources: [{ name: 'data', path: source, exclusionClasses: {} }] });
  await forgetSnapshots(await writer(), [first.id]);
  const seen = (await listSnapshots(reader)).map((r) => r.id);
  assert.ok(JSON.stringify(seen) === JSON.stringify([first.id]) || JSON.stringify(seen) === JSON.stringify([second.id]), `a view of one moment, not ${JSON.stringify(seen)}`);
});

test('reads started before the command loaded open the repository: its config, key files, snapshots, and index are not asked for again', async (t) => {
  const { source, local } = await repositoryAndSource(t, 1);
  const saved = await backup(await Repository.open(local, 'pw'), { sources: [{ name: 'data', path: source, exclusionClasses: {} }] });
  const asked: string[] = [];
  const counted: Backend = Object.create(local) as Backend;
  counted.list = (prefix: string) => (asked.push(`list ${prefix}`), local.list(prefix));
  counted.get = (key: string, range?: ByteRange) => (asked.push(`get ${key.split('/')[0]}`), local.get(key, range));
  startReadsEarly(counted);
  await waitFor('the early reads', async () => (asked.includes('get index') ? true : undefined));
  const early = asked.splice(0);
  assert.deepEqual([...new Set(early)].sort(), ['get config', 'get index', 'get snapshots', 'list forget/', 'list index/', 'list keys/', 'list snapshots/']);
  const repo = await Repository.open(counted, 'pw');
  const [ref] = await listSnapshots(repo);
  await repo.loadIndex();
  assert.equal(ref?.id, saved.id);
  // The key file is read at open (no key was derived early here), the deletions as ever;
  // what was read early is not read again.
  assert.deepEqual(asked.filter((a) => early.includes(a)), []);
  assert.ok(asked.includes('get keys'));
});

test('a backend made before the command loaded is the one its first opening of the same location gets, once', () => {
  const env = { RCLONE_CONFIG_X_TYPE: 'local' };
  const early = prestartBackend('rclone:x:repo', env);
  assert.notEqual(openBackend('rclone:x:repo', { env: { ...env } }), early, 'another environment: another backend');
  assert.notEqual(openBackend('rclone:x:other', { env }), early, 'another location: another backend');
  assert.equal(openBackend('rclone:x:repo', { env }), early);
  assert.notEqual(openBackend('rclone:x:repo', { env }), early, 'taken once');
});

test('a repository opened by a command that lists no snapshots (a binlog archive every few minutes) fetches its index ahead, not its snapshots', async (t) => {
  const { source, local } = await repositoryAndSource(t, 1);
  await backup(await Repository.open(local, 'pw'), { sources: [{ name: 'data', path: source, exclusionClasses: {} }] });
  const asked: string[] = [];
  const counted: Backend = Object.create(local) as Backend;
  counted.list = (prefix: string) => (asked.push(`list ${prefix}`), local.list(prefix));
  counted.get = (key: string, range?: ByteRange) => (asked.push(`get ${key.split('/')[0]}`), local.get(key, range));
  const repo = await Repository.open(counted, 'pw');
  await repo.loadIndex();
  await new Promise((r) => setTimeout(r, 100));
  assert.ok(asked.includes('get index'));
  assert.ok(!asked.includes('get snapshots'), `read ahead: ${asked.join(', ')}`);
});
