import assert from 'node:assert/strict';
import { mkdir, open, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { LocalBackend } from '../../src/repo/backends/local.js';
import { Repository } from '../../src/repo/repository.js';
import { backup } from '../../src/snapshot/backup/backup.js';
import { CONTENT_SPLIT_ABOVE, contentIds, isSplitContent, loadContentPart } from '../../src/snapshot/content-list.js';
import { copySnapshot } from '../../src/snapshot/copy.js';
import { diffSnapshots } from '../../src/snapshot/diff.js';
import { DumpTreeWriter, openDumpReader } from '../../src/snapshot/dump-tree.js';
import { check } from '../../src/snapshot/maintenance/check.js';
import { executePrune, planPrune } from '../../src/snapshot/maintenance/prune.js';
import { restore } from '../../src/snapshot/restore/restore.js';
import { forgetSnapshots, listSnapshots, type SnapshotRef } from '../../src/snapshot/snapshot.js';
import { PART_MAX, TreeLoader } from '../../src/snapshot/tree.js';
import { findNode } from '../../src/snapshot/walk.js';
import { flipBlob, pseudoRandom, runCli, tempDir } from '../support/helpers.js';

/**
 * Chunks of about 300 bytes: a file of a few MiB then has more blobs than one content list
 * holds, as a file of several GiB has at the default sizes.
 */
const SMALL_CHUNKS = { min: 64, avg: 256, max: 1024 };
const BIG_BYTES = 4 * 1024 * 1024;

/** Text (so that `dump` can be compared as a string) that does not repeat: every chunk a new blob. */
const bigText = (seed: number) => pseudoRandom(seed, BIG_BYTES / 2).toString('hex');

async function bigFileParts(repo: Repository, ref: SnapshotRef): Promise<string[]> {
  const node = await findNode(new TreeLoader(repo), ref.snapshot.tree, '/data/big.txt');
  assert.ok(node?.type === 'file' && isSplitContent(node.content), 'the big file lists its content in parts');
  // Stored for versions before content parts, which walk a list by its length (docs/format.md).
  assert.equal(node.content.length, node.content.parts.length);
  return node.content.parts;
}

async function init(path: string): Promise<Repository> {
  return Repository.init(new LocalBackend(path), { password: null, immutabilityDays: 0, chunker: SMALL_CHUNKS });
}

/** A source folder of a big file (`seed` its text) and a small one, and a repository of small chunks for it. */
async function bigFileSource(dir: string, seed: number): Promise<{ src: string; repoDir: string; repo: Repository }> {
  const src = join(dir, 'src');
  await mkdir(src);
  await writeFile(join(src, 'big.txt'), bigText(seed));
  await writeFile(join(src, 'small.txt'), 'small\n');
  const repoDir = join(dir, 'repo');
  return { src, repoDir, repo: await init(repoDir) };
}

test('a file of more blobs than one list holds lists them in content parts that back up, restore, change, prune, check, copy and dump', async (t) => {
  const dir = await tempDir(t);
  const { src, repoDir, repo } = await bigFileSource(dir, 1);
  const sources = [{ name: 'data', path: src }];

  const first = await backup(repo, { sources });
  const firstParts = await bigFileParts(repo, first);
  let listed = 0;
  for (const part of firstParts) {
    const ids = await loadContentPart(repo, part);
    assert.ok(ids.length <= PART_MAX);
    listed += ids.length;
  }
  assert.ok(listed > CONTENT_SPLIT_ABOVE && firstParts.length >= 2, `${listed} blobs in ${firstParts.length} parts`);
  // Prune counts every part, and every blob they list, as used.
  const plan = await planPrune(repo);
  assert.equal(plan.unusedBytesInUsedPacks, 0);
  assert.deepEqual(plan.mark, []);
  await restore(repo, first, { target: join(dir, 'out1') });
  assert.equal(await readFile(join(dir, 'out1/data/big.txt'), 'utf8'), await readFile(join(src, 'big.txt'), 'utf8'));

  // A few bytes changed in the middle: the parts around them are new, the others the first snapshot's.
  const fh = await open(join(src, 'big.txt'), 'r+');
  await fh.write('changed in the middle', BIG_BYTES / 2);
  await fh.close();
  const second = await backup(repo, { sources });
  const secondParts = await bigFileParts(repo, second);
  const fresh = secondParts.filter((p) => !firstParts.includes(p));
  assert.ok(fresh.length >= 1 && fresh.length <= 2, `parts written again: ${fresh.length} of ${secondParts.length}`);
  const changes = [];
  for await (const change of diffSnapshots(repo, first, second)) changes.push(`${change.kind} ${change.path}`);
  assert.deepEqual(changes, ['M /data/big.txt']);
  // Unchanged, the file keeps its parts without being read.
  const third = await backup(repo, { sources });
  assert.equal(third.snapshot.tree, second.snapshot.tree);
  assert.equal(third.snapshot.sources[0]!.stats.bytesRead, 0);

  // Prune after the first snapshot is forgotten keeps every part and blob the others use.
  await forgetSnapshots(repo, [first.id]);
  await executePrune(repo, await planPrune(repo));
  const pruned = await Repository.open(new LocalBackend(repoDir), undefined);
  assert.deepEqual((await check(pruned, { readData: true })).errors, []);
  const kept = (await listSnapshots(pruned)).find((s) => s.id === second.id)!;
  await restore(pruned, kept, { target: join(dir, 'out2') });
  const expected = await readFile(join(src, 'big.txt'), 'utf8');
  assert.equal(await readFile(join(dir, 'out2/data/big.txt'), 'utf8'), expected);

  // The command's restore writes it through its writer threads, a part at a time.
  const restored = await runCli(['restore', '--repo', repoDir, second.id.slice(0, 8), '--target', join(dir, 'out-cli')], { env: { STACKVAULT_PASSWORD: '' } });
  assert.equal(restored.code, 0, restored.stderr);
  assert.equal(await readFile(join(dir, 'out-cli/data/big.txt'), 'utf8'), expected);

  // dump streams it part by part.
  const dumped = await runCli(['dump', '--repo', repoDir, second.id.slice(0, 8), '/data/big.txt'], { env: { STACKVAULT_PASSWORD: '' } });
  assert.equal(dumped.code, 0, dumped.stderr);
  assert.equal(dumped.stdout, expected);

  // A copy lists the file in parts of its own, and restores the same.
  const target = await init(join(dir, 'copy'));
  const copied = await copySnapshot(pruned, target, kept);
  const copy = (await listSnapshots(target)).find((s) => s.id === copied.id)!;
  assert.ok((await bigFileParts(target, copy)).length >= 2);
  await restore(target, copy, { target: join(dir, 'out3') });
  assert.equal(await readFile(join(dir, 'out3/data/big.txt'), 'utf8'), expected);
});

test('a damaged content part is found by check and named by restore, and the rest still restores', async (t) => {
  const dir = await tempDir(t);
  const { src, repoDir, repo } = await bigFileSource(dir, 2);
  const saved = await backup(repo, { sources: [{ name: 'data', path: src }] });
  const parts = await bigFileParts(repo, saved);
  const damaged = repo.index.get(parts[1]!)!;
  await flipBlob(repoDir, damaged);

  const reopened = await Repository.open(new LocalBackend(repoDir), undefined);
  const checked = await check(reopened, { readData: true });
  assert.deepEqual(
    checked.affected.map((a) => [a.path, a.blob]),
    [['/data/big.txt', parts[1]]],
  );
  // Without reading the data, check still reads the parts.
  const quick = await check(await Repository.open(new LocalBackend(repoDir), undefined), {});
  assert.deepEqual(
    quick.affected.map((a) => a.path),
    ['/data/big.txt'],
  );

  const out = join(dir, 'out');
  const result = await restore(reopened, saved, { target: out });
  assert.deepEqual(
    result.errors.map((e) => e.path),
    ['/data/big.txt'],
  );
  assert.match(result.errors[0]!.message, /content part .* is damaged|damaged/);
  assert.equal(await readFile(join(out, 'data/small.txt'), 'utf8'), 'small\n');
});

test('a database dump of more blobs than one list holds is stored in content parts and read back whole', async (t) => {
  const dir = await tempDir(t);
  const repo = await init(join(dir, 'repo'));
  const writer = repo.newBlobWriter();
  const stats = { files: 0, dirs: 0, newFiles: 0, changedFiles: 0, unchangedFiles: 0, bytes: 0, bytesRead: 0, bytesAdded: 0, others: 0 };
  const dumps = new DumpTreeWriter(repo, writer, stats as never, new Date(), () => undefined);
  const text = bigText(3);
  await dumps.writeFile('db/big_table.sql', (async function* () {
    for (let at = 0; at < text.length; at += 65_536) yield Buffer.from(text.slice(at, at + 65_536));
  })());
  const tree = await dumps.saveTree();
  await writer.flush();
  const node = await findNode(new TreeLoader(repo), tree, '/db/big_table.sql');
  assert.ok(node && isSplitContent(node.content));
  const ids: string[] = [];
  for await (const id of contentIds(repo, node.content)) ids.push(id);
  assert.ok(ids.length > CONTENT_SPLIT_ABOVE);
  const reader = await openDumpReader(repo, tree, 'db');
  const read: Buffer[] = [];
  for await (const block of reader.read('db/big_table.sql')) read.push(block);
  assert.equal(Buffer.concat(read).toString(), text);
});
