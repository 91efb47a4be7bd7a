import assert from 'node:assert/strict';
import { appendFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { LocalBackend } from '../../src/repo/backends/local.js';
import { Repository } from '../../src/repo/repository.js';
import { compareTrees } from '../../src/sources/files/compare.js';
import { backup } from '../../src/snapshot/backup/backup.js';
import { check } from '../../src/snapshot/maintenance/check.js';
import { executePrune, planPrune } from '../../src/snapshot/maintenance/prune.js';
import { restore } from '../../src/snapshot/restore/restore.js';
import { forgetSnapshots, listSnapshots } from '../../src/snapshot/snapshot.js';
import { makeRichTree, objectFingerprints, pseudoRandom, runCli, tempDir } from '../support/helpers.js';

const DAY = 86_400_000;

test('a second backup neither modifies nor deletes any existing object', async (t) => {
  const dir = await tempDir(t);
  const source = join(dir, 'source');
  const repoDir = join(dir, 'repo');
  await makeRichTree(source);
  const env = { STACKVAULT_PASSWORD: 'pw' };
  assert.equal((await runCli(['init', '--repo', repoDir], { env })).code, 0);
  assert.equal((await runCli(['backup', '--repo', repoDir, source], { env })).code, 0);
  const before = await objectFingerprints(repoDir);

  await appendFile(join(source, 'docs/small.txt'), 'changed');
  await writeFile(join(source, 'docs/new.bin'), pseudoRandom(5, 2_000_000));
  await rm(join(source, 'bin/tool.sh'));
  assert.equal((await runCli(['backup', '--repo', repoDir, source], { env })).code, 0);
  const after = await objectFingerprints(repoDir);

  for (const [key, print] of before) assert.equal(after.get(key), print, `object ${key} was modified or deleted`);
  assert.ok(after.size > before.size, 'the second backup added objects');
  for (const [key, print] of after) assert.match(print, /mode=444/, `${key} is not read-only`);
});

test('prune deletes nothing inside the immutability period, and afterwards only what no kept snapshot needs', async (t) => {
  const dir = await tempDir(t);
  const source = join(dir, 'source');
  const repoDir = join(dir, 'repo');
  await makeRichTree(source);
  const repo = await Repository.init(new LocalBackend(repoDir), { password: 'pw', immutabilityDays: 30, packSize: 1 << 20 });
  const spec = [{ name: 'data', path: source, exclusionClasses: {} }];
  const first = await backup(repo, { sources: spec });
  await writeFile(join(source, 'bin/large.bin'), pseudoRandom(77, 6_000_000));
  await backup(repo, { sources: spec });
  await forgetSnapshots(repo, [first.id]);
  const before = await objectFingerprints(repoDir);

  // Inside the period: the CLI with --yes deletes nothing.
  const pruned = await runCli(['prune', '--repo', repoDir, '--yes'], { env: { STACKVAULT_PASSWORD: 'pw' } });
  assert.equal(pruned.code, 0, pruned.stderr);
  assert.match(pruned.stdout, /not yet deletable/);
  assert.deepEqual(await objectFingerprints(repoDir), before);

  // 29 days later: still nothing.
  const fresh = () => Repository.open(new LocalBackend(repoDir), 'pw');
  const early = await planPrune(await fresh(), { now: new Date(Date.now() + 29 * DAY) });
  assert.equal(Object.values(early.delete).flat().length, 0);

  // 31 days later: the forgotten snapshot's own data is recorded for deletion, nothing deleted yet...
  const late = await planPrune(await fresh(), { now: new Date(Date.now() + 31 * DAY) });
  assert.ok(late.mark.length > 0, 'unused packs are recorded for deletion after the period');
  assert.equal(late.delete.packs.length, 0, 'no pack is deleted by the prune that records it');
  assert.equal(late.delete.snapshots.length, 1);
  await executePrune(await fresh(), late);
  // ...and a prune more than the safety margin later deletes it, and nothing a kept snapshot needs.
  const later = await planPrune(await fresh(), { now: new Date(Date.now() + 31 * DAY + 2 * 3_600_000) });
  assert.equal(later.delete.packs.length, late.mark.length, 'the recorded packs are deleted after the safety margin');
  assert.equal(later.mark.length, 0);
  await executePrune(await fresh(), later);

  const after = await fresh();
  const result = await check(after, { readData: true });
  assert.deepEqual(result.errors, []);
  const kept = await listSnapshots(after);
  assert.equal(kept.length, 1);
  const target = join(dir, 'target');
  const restored = await restore(after, kept[0]!, { target });
  assert.deepEqual(restored.errors, []);
  assert.deepEqual((await compareTrees(source, join(target, 'data'))).differences, []);
  // Dedup after prune must not point at deleted packs: back up the old content again and restore it.
  await writeFile(join(source, 'bin/large.bin'), pseudoRandom(1 + 2, 12_500_000));
  const again = await backup(after, { sources: spec });
  const target2 = join(dir, 'target2');
  assert.deepEqual((await restore(await fresh(), { id: again.id, snapshot: again.snapshot }, { target: target2 })).errors, []);
  assert.deepEqual((await compareTrees(source, join(target2, 'data'))).differences, []);
});
