import assert from 'node:assert/strict';
import { mkdir, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { LocalBackend } from '../../src/repo/backends/local.js';
import { Repository } from '../../src/repo/repository.js';
import { backup } from '../../src/snapshot/backup/backup.js';
import { ListingPrefetch } from '../../src/sources/files/listing-prefetch.js';
import { startReadingFolders } from '../../src/sources/files/read-ahead.js';
import { makeRichTree, tempDir } from '../support/helpers.js';

test('a listing prefetch reads folders in name order, each taken once, and a backup using it stores the same tree', async (t) => {
  const dir = await tempDir(t);
  const src = join(dir, 'tree');
  await makeRichTree(src);
  await mkdir(join(src, 'b/z'), { recursive: true });
  await writeFile(join(src, 'b/z/f'), 'x');
  await symlink('nowhere', join(src, 'b/broken'));

  // Read to the end, whatever the load: a machine busy with other tests made calls slow
  // enough (over 1 ms each) for the prefetch to stop before b/z, or 50 ms too short to reach it.
  const prefetch = ListingPrefetch.start([src], { slowCallMs: Number.POSITIVE_INFINITY });
  await prefetch.finished();
  prefetch.stop();
  const root = prefetch.take(src);
  assert.ok(root, 'the root was listed');
  assert.deepEqual(root.names, [...root.names].sort());
  assert.equal(root.names.length, root.stats.length);
  assert.ok(prefetch.take(join(src, 'b/z'))?.names.includes('f'));
  assert.equal(prefetch.take(src), undefined, 'a listing is taken once');
  assert.equal(ListingPrefetch.start([join(dir, 'missing')]).stop().take(join(dir, 'missing')), undefined);

  const repo = await Repository.init(new LocalBackend(join(dir, 'repo')), { password: 'pw', immutabilityDays: 0 });
  const spec = [{ name: 'data', path: src, exclusionClasses: {} }];
  const plain = await backup(repo, { sources: spec, parent: null });
  const prefetched = ListingPrefetch.start([src]);
  await new Promise((resolve) => setTimeout(resolve, 50));
  const withPrefetch = await backup(repo, { sources: spec, parent: null, prefetched });
  assert.equal(withPrefetch.snapshot.tree, plain.snapshot.tree);
});

test('a listing prefetch leaves a folder larger than it may hold to the walk, and stops there', async (t) => {
  const dir = await tempDir(t);
  const src = join(dir, 'tree');
  await mkdir(join(src, 'a-large'), { recursive: true });
  await mkdir(join(src, 'b-after'), { recursive: true });
  for (let i = 0; i < 150; i++) await writeFile(join(src, 'a-large', `f${i}`), '');
  const prefetch = ListingPrefetch.start([src], { slowCallMs: Number.POSITIVE_INFINITY, maxEntries: 100 });
  await prefetch.finished();
  assert.equal(prefetch.take(src)?.names.length, 2);
  assert.equal(prefetch.take(join(src, 'a-large')), undefined);
  assert.equal(prefetch.take(join(src, 'b-after')), undefined);
});

test('a backup command reads ahead on its own thread only the sources the listing thread does not list', async (t) => {
  const dir = await tempDir(t);
  const listed = join(dir, 'listed');
  const included = join(dir, 'included');
  await makeRichTree(listed);
  await makeRichTree(included);
  const { prefetched, listingThread } = startReadingFolders([
    { name: 'listed', kind: 'files', path: listed },
    { name: 'included', kind: 'files', path: included, include: ['docs'] },
  ]);
  assert.ok(listingThread);
  t.after(() => listingThread.close());
  assert.ok(listingThread.covers(listed));
  assert.equal(listingThread.covers(included), false, 'a source with include patterns is not listed ahead by the thread');
  await prefetched.finished();
  assert.equal(prefetched.take(listed), undefined, 'the thread lists it: not read here too');
  assert.ok(prefetched.take(included), 'the other source is read ahead here');
});
