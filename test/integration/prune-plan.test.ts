import assert from 'node:assert/strict';
import { copyFile, mkdir, readdir, rm, utimes } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { LocalBackend } from '../../src/repo/backends/local.js';
import { objectKey } from '../../src/repo/format/layout.js';
import { encodeIndexFile } from '../../src/repo/master-index.js';
import { Repository } from '../../src/repo/repository.js';
import { backup } from '../../src/snapshot/backup/backup.js';
import { executePrune, planPrune } from '../../src/snapshot/maintenance/prune.js';
import { restore } from '../../src/snapshot/restore/restore.js';
import { listSnapshots } from '../../src/snapshot/snapshot.js';
import { compareTrees } from '../../src/sources/files/compare.js';
import { makeRichTree, tempDir } from '../support/helpers.js';

const DAY = 86_400_000;

/** Every object of a folder repository made to look two days old. */
async function backdate(dir: string): Promise<void> {
  const when = new Date(Date.now() - 2 * DAY);
  for (const entry of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (entry.isFile()) await utimes(join(entry.parentPath ?? entry.path, entry.name), when, when);
  }
}

async function setUp(t: Parameters<typeof tempDir>[0]) {
  const dir = await tempDir(t);
  const source = join(dir, 'source');
  const repoDir = join(dir, 'repo');
  await makeRichTree(source);
  const repo = await Repository.init(new LocalBackend(repoDir), { password: 'pw', immutabilityDays: 0, packSize: 1 << 20 });
  await backup(repo, { sources: [{ name: 'data', path: source, exclusionClasses: {} }] });
  const open = () => Repository.open(new LocalBackend(repoDir), 'pw');
  const restoresEqual = async (name: string) => {
    const repo = await open();
    const [ref] = await listSnapshots(repo);
    const target = join(dir, name);
    const result = await restore(repo, ref!, { target });
    assert.deepEqual(result.errors, []);
    assert.deepEqual((await compareTrees(source, join(target, 'data'))).differences, []);
  };
  return { dir, repoDir, open, restoresEqual };
}

test('prune judges packs no index lists by their headers: a kept snapshot\'s packs stay and are indexed again', async (t) => {
  const { repoDir, open, restoresEqual } = await setUp(t);
  // Every index file gone: every pack is one no index lists (as after a damaged index).
  await rm(join(repoDir, 'index'), { recursive: true });
  await mkdir(join(repoDir, 'index'));
  await backdate(repoDir);
  const packs = (await readdir(join(repoDir, 'data'), { recursive: true })).filter((p) => /[0-9a-f]{64}$/.test(p)).length;

  const repo = await open();
  const plan = await planPrune(repo);
  assert.equal(plan.unindexedPacks, packs);
  assert.equal(plan.packsUsed, packs);
  assert.deepEqual(plan.mark, []);
  assert.deepEqual(plan.delete.packs, []);
  // The same repository: the plan's packs read from their headers are in its index.
  const result = await executePrune(repo, plan);
  assert.ok(result.newIndex, 'the index is written again');
  assert.equal((await planPrune(await open())).unindexedPacks, 0);
  await restoresEqual('target');
});

test('two packs recorded for deletion that hold each other\'s only other copy: one goes, the other is reprieved', async (t) => {
  const { repoDir, open, restoresEqual } = await setUp(t);
  const repo = await open();
  await repo.loadIndex();
  // A second copy of every pack under another name, listed by an index file of its own:
  // every used blob is then in two packs.
  const copies: Array<[string, string]> = [];
  const listings = [];
  for (const [packId, blobs] of [...repo.index.eachPack()]) {
    const copy = packId.replace(/^./, (c) => (c === '0' ? '1' : '0'));
    await mkdir(join(repoDir, 'data', copy.slice(0, 2)), { recursive: true });
    await copyFile(join(repoDir, objectKey('data', packId)), join(repoDir, objectKey('data', copy)));
    listings.push([copy, blobs] as [string, typeof blobs]);
    copies.push([packId, copy]);
  }
  await repo.saveObject('index', encodeIndexFile(listings));
  // Both copies of each recorded for deletion long ago (as a prune whose backups went on would leave them).
  await repo.saveObject('deletions', { version: 1, time: new Date().toISOString(), packs: copies.flat().sort() });
  await backdate(repoDir);

  const plan = await planPrune(await open());
  assert.equal(plan.delete.packs.length, copies.length, 'one of each pair goes');
  assert.equal(plan.reprieved.length, copies.length, 'the other stays');
  for (const pair of copies) {
    const going = pair.filter((p) => plan.delete.packs.some((c) => c.key === objectKey('data', p)));
    assert.equal(going.length, 1, `exactly one of ${pair.join(', ')} goes`);
  }
  await executePrune(await open(), plan);
  await restoresEqual('target');
});
