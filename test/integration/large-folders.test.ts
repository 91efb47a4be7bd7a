import assert from 'node:assert/strict';
import { appendFile, mkdir, readFile, readdir, readlink, rename, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { LocalBackend } from '../../src/repo/backends/local.js';
import { Repository } from '../../src/repo/repository.js';
import { backup } from '../../src/snapshot/backup/backup.js';
import { copySnapshot } from '../../src/snapshot/copy.js';
import { diffSnapshots } from '../../src/snapshot/diff.js';
import { check } from '../../src/snapshot/maintenance/check.js';
import { executePrune, planPrune } from '../../src/snapshot/maintenance/prune.js';
import { restore } from '../../src/snapshot/restore/restore.js';
import { forgetSnapshots, listSnapshots, type SnapshotRef } from '../../src/snapshot/snapshot.js';
import { PART_MAX, SPLIT_ABOVE, TreeLoader } from '../../src/snapshot/tree.js';
import { findNode } from '../../src/snapshot/walk.js';
import { compareTrees } from '../../src/sources/files/compare.js';
import { STREAMED_ABOVE } from '../../src/sources/files/listing-compact.js';
import { IntegrityError } from '../../src/util/errors.js';
import { flipBlob, onSmallExt4, pseudoRandom, runCli, tempDir } from '../support/helpers.js';

const FILES = 9_000;

/** A folder of recordings-like files, more than one tree blob holds, beside an ordinary one. */
async function largeFolder(root: string, files = FILES): Promise<void> {
  await mkdir(join(root, 'calls/sub'), { recursive: true });
  await mkdir(join(root, 'etc'), { recursive: true });
  await writeFile(join(root, 'etc/app.ini'), 'a=1\n');
  await writeFile(join(root, 'calls/sub/inner.txt'), 'inside\n');
  for (let i = 0; i < files; i += 500) {
    await Promise.all(Array.from({ length: Math.min(500, files - i) }, (_, k) => writeFile(join(root, `calls/call-${String(i + k).padStart(6, '0')}.txt`), `call ${i + k}\n`)));
  }
}

async function bigFolderPieces(repo: Repository, ref: SnapshotRef): Promise<string[]> {
  const loader = new TreeLoader(repo);
  const node = await findNode(loader, ref.snapshot.tree, '/data/calls');
  assert.ok(node?.subtree);
  return loader.pieces(node.subtree);
}

test('a folder of more entries than one tree blob holds is stored in parts that back up, restore, change, prune, check and copy', async (t) => {
  const dir = await tempDir(t);
  const src = join(dir, 'src');
  await largeFolder(src);
  const repo = await Repository.init(new LocalBackend(join(dir, 'repo')), { password: null, immutabilityDays: 0 });
  const sources = [{ name: 'data', path: src }];

  const first = await backup(repo, { sources });
  const firstPieces = await bigFolderPieces(repo, first);
  assert.ok(FILES + 1 > SPLIT_ABOVE && firstPieces.length >= 2, `the folder is stored in parts (${firstPieces.length})`);
  const loader = new TreeLoader(repo);
  let listed = 0;
  for (const part of firstPieces) {
    const nodes = await loader.part(part, 'calls');
    assert.ok(nodes.length <= PART_MAX);
    listed += nodes.length;
  }
  assert.equal(listed, FILES + 1);
  // Prune counts every part as used: a repository of one snapshot holds nothing unused.
  const plan = await planPrune(repo);
  assert.equal(plan.unusedBytesInUsedPacks, 0);
  assert.deepEqual(plan.mark, []);
  await restore(repo, first, { target: join(dir, 'out1') });
  assert.deepEqual((await compareTrees(src, join(dir, 'out1/data'), { owners: false })).differences, []);

  // One file changed, one added: the other parts are the first snapshot's, and no unchanged file is read.
  await appendFile(join(src, 'calls/call-004321.txt'), 'more\n');
  await writeFile(join(src, 'calls/call-004321b.txt'), 'new\n');
  const second = await backup(repo, { sources });
  const secondPieces = await bigFolderPieces(repo, second);
  const fresh = secondPieces.filter((p) => !firstPieces.includes(p));
  assert.ok(fresh.length >= 1 && fresh.length <= 2, `parts written again: ${fresh.length} of ${secondPieces.length}`);
  const stats = second.snapshot.sources[0]!.stats;
  assert.equal(stats.unchangedFiles, FILES + 1);
  assert.equal(stats.newFiles + stats.changedFiles, 2);
  const changes = [];
  for await (const change of diffSnapshots(repo, first, second)) changes.push(`${change.kind} ${change.path}`);
  // The folder's own times changed with the file added.
  assert.deepEqual(changes.sort(), ['+ /data/calls/call-004321b.txt', 'M /data/calls/call-004321.txt', 'U /data/calls']);

  // A backup with nothing changed keeps the folder's tree as it was.
  const third = await backup(repo, { sources });
  assert.equal(third.snapshot.tree, second.snapshot.tree);

  // Prune after the first snapshot is forgotten keeps every part the others use.
  await forgetSnapshots(repo, [first.id]);
  await executePrune(repo, await planPrune(repo));
  const pruned = await Repository.open(new LocalBackend(join(dir, 'repo')), undefined);
  const checked = await check(pruned, { readData: true });
  assert.deepEqual(checked.errors, []);
  const [kept] = await listSnapshots(pruned);
  await restore(pruned, kept!, { target: join(dir, 'out2') });
  assert.deepEqual((await compareTrees(src, join(dir, 'out2/data'), { owners: false })).differences, []);

  // A copy to another repository stores the folder in parts too, and restores the same.
  const target = await Repository.init(new LocalBackend(join(dir, 'copy')), { password: null, immutabilityDays: 0 });
  const copied = await copySnapshot(pruned, target, kept!);
  const [copy] = await listSnapshots(target);
  assert.equal(copy!.id, copied.id);
  assert.ok((await bigFolderPieces(target, copy!)).length >= 2);
  await restore(target, copy!, { target: join(dir, 'out3') });
  assert.deepEqual((await compareTrees(src, join(dir, 'out3/data'), { owners: false })).differences, []);
});

test('a damaged part of a large folder is found by check and named by restore, and the rest still restores', async (t) => {
  const dir = await tempDir(t);
  const src = join(dir, 'src');
  await largeFolder(src);
  const repoDir = join(dir, 'repo');
  const repo = await Repository.init(new LocalBackend(repoDir), { password: null, immutabilityDays: 0 });
  const saved = await backup(repo, { sources: [{ name: 'data', path: src }] });
  const pieces = await bigFolderPieces(repo, saved);
  const damaged = repo.index.get(pieces[1]!)!;
  await flipBlob(repoDir, damaged);

  const reopened = await Repository.open(new LocalBackend(repoDir), undefined);
  const checked = await check(reopened, { readData: true });
  assert.ok(checked.errors.length > 0);
  assert.deepEqual(
    checked.affected.map((a) => [a.path, a.blob]),
    [['/data/calls', pieces[1]]],
  );

  const out = join(dir, 'out');
  const result = await restore(reopened, saved, { target: out });
  assert.deepEqual(
    result.errors.map((e) => e.path),
    ['/data/calls'],
  );
  assert.deepEqual((await compareTrees(join(src, 'etc'), join(out, 'data/etc'), { owners: false })).differences, []);
  // A path looked up through the damaged part is named as damage, not as a path the snapshot lacks.
  await assert.rejects(restore(reopened, saved, { target: join(dir, 'out-sub'), from: '/data/calls/sub' }), (err: unknown) => err instanceof IntegrityError);
});

test('a folder of more entries than the walk holds is walked a window at a time against its previous parts', async (t) => {
  const dir = await tempDir(t);
  const src = join(dir, 'src');
  const files = STREAMED_ABOVE + 4_000;
  await largeFolder(src, files);
  await symlink('sub/inner.txt', join(src, 'calls/link'));
  for (const n of [7, 30_007, 60_007]) await rename(join(src, `calls/call-${String(n).padStart(6, '0')}.txt`), join(src, `calls/call-${n}.tmp`));
  const repoDir = join(dir, 'repo');
  const repo = await Repository.init(new LocalBackend(repoDir), { password: null, immutabilityDays: 0 });
  const sources = [{ name: 'data', path: src, exclude: ['*.tmp'] }];
  const first = await backup(repo, { sources });
  assert.equal(first.snapshot.sources[0]!.stats.files, files - 3 + 2);
  await restore(repo, first, { target: join(dir, 'out1') });
  // Every name, and a sample of contents (compareTrees takes most of a minute on this many files).
  const restored = join(dir, 'out1/data/calls');
  assert.deepEqual(
    (await readdir(restored)).sort(),
    (await readdir(join(src, 'calls'))).filter((name) => !name.endsWith('.tmp')).sort(),
  );
  for (let i = 0; i < files; i += 997) {
    const name = `call-${String(i).padStart(6, '0')}.txt`;
    if (i % 30_000 !== 7) assert.equal(await readFile(join(restored, name), 'utf8'), `call ${i}\n`);
  }
  assert.equal(await readlink(join(restored, 'link')), 'sub/inner.txt');

  // One file changed, one added: no other file is read, and the other parts are the first snapshot's.
  await appendFile(join(src, 'calls/call-043210.txt'), 'more\n');
  await writeFile(join(src, 'calls/call-043210b.txt'), 'new\n');
  const second = await backup(repo, { sources });
  const stats = second.snapshot.sources[0]!.stats;
  assert.equal(stats.unchangedFiles, files - 3 + 2 - 1);
  assert.equal(stats.newFiles + stats.changedFiles, 2);
  const before = await bigFolderPieces(repo, first);
  const after = await bigFolderPieces(repo, second);
  assert.ok(after.filter((p) => !before.includes(p)).length <= 2);
  const third = await backup(repo, { sources });
  assert.equal(third.snapshot.tree, second.snapshot.tree);

  // A damaged previous part only makes its own files be read again.
  const lostEntries = (await new TreeLoader(repo).part(after[3]!, 'calls')).length;
  const damaged = repo.index.get(after[3]!)!;
  await flipBlob(repoDir, damaged);
  const next = await backup(await Repository.open(new LocalBackend(repoDir), undefined), { sources });
  const nextStats = next.snapshot.sources[0]!.stats;
  assert.equal(nextStats.unchangedFiles, nextStats.files - lostEntries);
});


test('a repository that fills up in the middle of a folder walked a window at a time ends the backup with a clear error and no snapshot', async (t) => {
  const dir = await tempDir(t);
  const src = join(dir, 'src');
  await mkdir(src);
  const files = STREAMED_ABOVE + 1_000;
  for (let i = 0; i < files; i += 500) {
    await Promise.all(Array.from({ length: Math.min(500, files - i) }, (_, k) => writeFile(join(src, `f${String(i + k).padStart(6, '0')}`), pseudoRandom(i + k + 1, 1_000))));
  }
  await onSmallExt4(t, '32M', async (mount) => {
    const repo = join(mount, 'repo');
    assert.equal((await runCli(['init', '--repo', repo, '--no-encryption'])).code, 0);
    const result = await runCli(['backup', '--repo', repo, src]);
    assert.equal(result.code, 1, result.stderr);
    assert.match(result.stderr, new RegExp(`cannot write .* to ${repo}: no space left on device`));
    assert.doesNotMatch(result.stderr, /Unhandled|at .*\.js:\d+/, 'a clear error, not a crash');
    assert.deepEqual(await readdir(join(repo, 'tmp')), []);
    assert.deepEqual(await readdir(join(repo, 'snapshots')).catch(() => []), []);
  });
});
