import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { LocalBackend } from '../../src/repo/backends/local.js';
import { Repository } from '../../src/repo/repository.js';
import { compareTrees } from '../../src/sources/files/compare.js';
import { backup } from '../../src/snapshot/backup/backup.js';
import { restore } from '../../src/snapshot/restore/restore.js';
import { makeRichTree, tempDir } from '../support/helpers.js';

for (const encrypted of [true, false]) {
  test(`round trip is byte-equal with metadata (${encrypted ? 'encrypted' : 'unencrypted'})`, async (t) => {
    const dir = await tempDir(t);
    const source = join(dir, 'source');
    await makeRichTree(source);
    const repo = await Repository.init(new LocalBackend(join(dir, 'repo')), { password: encrypted ? 'pw' : null, immutabilityDays: 0 });
    const saved = await backup(repo, { sources: [{ name: 'data', path: source, exclusionClasses: {} }] });
    assert.equal(saved.errorCount, 0);

    const reopened = await Repository.open(new LocalBackend(join(dir, 'repo')), encrypted ? 'pw' : undefined);
    const target = join(dir, 'target');
    const result = await restore(reopened, { id: saved.id, snapshot: saved.snapshot }, { target });
    assert.deepEqual(result.errors, []);
    const cmp = await compareTrees(source, join(target, 'data'), { owners: process.getuid?.() === 0 });
    assert.deepEqual(cmp.differences, []);
    assert.ok(cmp.files >= 10, `compared ${cmp.files} files`);
    assert.ok(cmp.bytes > 15_000_000);
  });
}

test('a tree whose entry names leave their folder ("../..", "a/b") restores nothing there and says which entries are damaged', async (t) => {
  const { access, mkdir, writeFile, readFile } = await import('node:fs/promises');
  const { saveTree, TreeLoader } = await import('../../src/snapshot/tree.js');
  const dir = await tempDir(t);
  const source = join(dir, 'source');
  await mkdir(source);
  await writeFile(join(source, 'a.txt'), 'forged');
  await writeFile(join(source, 'b.txt'), 'kept');
  // Unencrypted: whoever can write to the storage can write trees.
  const repo = await Repository.init(new LocalBackend(join(dir, 'repo')), { password: null, immutabilityDays: 0 });
  const saved = await backup(repo, { sources: [{ name: 'data', path: source, exclusionClasses: {} }] });
  const loader = new TreeLoader(repo);
  const root = await loader.load(saved.snapshot.tree);
  const data = await loader.load(root.nodes[0]!.subtree!);
  const a = data.nodes.find((n) => n.name === 'a.txt')!;
  const forged = [...['../../escaped.txt', 'sub/inner.txt', '..', '.', ''].map((name) => ({ ...a, name })), data.nodes.find((n) => n.name === 'b.txt')!];
  const writer = repo.newBlobWriter();
  const sub = await saveTree(writer, { nodes: forged });
  const tree = await saveTree(writer, { nodes: [{ ...root.nodes[0]!, subtree: sub }] });
  await writer.flush();

  const target = join(dir, 'target');
  const result = await restore(repo, { id: saved.id, snapshot: { ...saved.snapshot, tree } }, { target });
  await assert.rejects(access(join(dir, 'escaped.txt')), 'nothing is written outside the target');
  await assert.rejects(access(join(target, 'data', 'sub')), 'nor below the folder under another name');
  assert.equal(await readFile(join(target, 'data', 'b.txt'), 'utf8'), 'kept');
  assert.deepEqual(
    result.errors.map((e) => e.path),
    ['/data/../../escaped.txt', '/data/sub/inner.txt', '/data/..', '/data/.', '/data/'],
  );
  assert.ok(result.errors.every((e) => /is damaged: .* is not a name a folder can hold/.test(e.message)), result.errors.map((e) => e.message).join('\n'));
});

test('hard links in folders restored side by side come back as links', async (t) => {
  const { link, mkdir, stat, writeFile } = await import('node:fs/promises');
  const dir = await tempDir(t);
  const source = join(dir, 'source');
  // Each folder's files are restored while the other folders' are: a link group spans them.
  for (const name of ['a', 'b', 'c']) await mkdir(join(source, name), { recursive: true });
  await writeFile(join(source, 'a', 'first'), 'shared content');
  await link(join(source, 'a', 'first'), join(source, 'b', 'second'));
  await link(join(source, 'a', 'first'), join(source, 'c', 'third'));
  const repo = await Repository.init(new LocalBackend(join(dir, 'repo')), { password: null, immutabilityDays: 0 });
  const saved = await backup(repo, { sources: [{ name: 'data', path: source, exclusionClasses: {} }] });
  const target = join(dir, 'target');
  const result = await restore(repo, { id: saved.id, snapshot: saved.snapshot }, { target });
  assert.deepEqual(result.errors, []);
  const inodes = await Promise.all(['a/first', 'b/second', 'c/third'].map(async (p) => (await stat(join(target, 'data', p))).ino));
  assert.equal(new Set(inodes).size, 1, `one inode for the three names, not ${inodes.join(', ')}`);
});

test('a restore of a whole snapshot plans every pack from the index where the repository holds no more data than the snapshot, and walks to plan where it holds more', async (t) => {
  const { mkdir, writeFile } = await import('node:fs/promises');
  const { pseudoRandom } = await import('../support/helpers.js');
  const dir = await tempDir(t);
  const first = join(dir, 'first');
  const second = join(dir, 'second');
  await mkdir(first);
  await mkdir(second);
  for (let i = 0; i < 40; i++) await writeFile(join(first, `note-${i}.txt`), pseudoRandom(i, 100_000));
  for (let i = 0; i < 40; i++) await writeFile(join(second, `other-${i}.txt`), pseudoRandom(1000 + i, 30_000));
  const repo = await Repository.init(new LocalBackend(join(dir, 'repo')), { password: 'pw', immutabilityDays: 0, packSize: 1 << 20 });
  const saved = await backup(repo, { sources: [{ name: 'data', path: first, exclusionClasses: {} }] });
  // What a network repository's spool is told, over the folder repository's own files.
  const restoreAndSpy = async (label: string) => {
    const opened = await Repository.open(new LocalBackend(join(dir, 'repo')), 'pw');
    const plan = { all: [] as string[], read: 0 };
    const own = opened.packFiles.bind(opened);
    opened.packFiles = async (...args) => ({
      ...(await own(...args))!,
      willRead: () => void plan.read++,
      willReadAll: (packs) => (plan.all.push(...packs.map((p) => p.pack)), true),
    });
    const result = await restore(opened, { id: saved.id, snapshot: saved.snapshot }, { target: join(dir, label) });
    assert.deepEqual(result.errors, []);
    assert.deepEqual((await compareTrees(first, join(dir, label, 'data'))).differences, []);
    return { plan, opened };
  };
  const alone = await restoreAndSpy('alone');
  await alone.opened.loadIndex();
  const dataPacks = [...alone.opened.index.eachPack()].filter(([, blobs]) => blobs.some((b) => b.type === 'data')).map(([pack]) => pack);
  assert.ok(dataPacks.length > 1, `${dataPacks.length} packs of data`);
  assert.deepEqual(alone.plan.all.sort(), dataPacks.sort(), 'every pack of data, from the index');
  assert.equal(alone.plan.read, 0, 'no walk to plan');

  await backup(await Repository.open(new LocalBackend(join(dir, 'repo')), 'pw'), { sources: [{ name: 'data', path: second, exclusionClasses: {} }] });
  const beside = await restoreAndSpy('beside');
  assert.deepEqual(beside.plan.all, [], 'the repository holds more than the snapshot: its walk plans');
  assert.equal(beside.plan.read, 40, 'one read per file');
});

test('a restore interrupted while its subfolders are still being written rejects once, with no rejection left unhandled, and leaves its writers closed', async (t) => {
  // Ctrl-C 0.9 s into a restore through rclone crashed stackvault with a stack trace: a
  // folder's loop stopped at the signal without waiting for its subfolders' walks, whose
  // own InterruptedError then had no handler.
  const { mkdir, writeFile } = await import('node:fs/promises');
  const { pseudoText } = await import('../support/helpers.js');
  const { InterruptedError } = await import('../../src/util/errors.js');
  const dir = await tempDir(t);
  const source = join(dir, 'source');
  // More folders than a restore keeps open at once (64): the loop goes on while some are written.
  // More files than are handed to the writers at once (4,352): folders' loops wait for room.
  for (let d = 0; d < 100; d++) {
    await mkdir(join(source, `folder-${d}`), { recursive: true });
    for (let f = 0; f < 100; f++) await writeFile(join(source, `folder-${d}`, `note-${f}.txt`), pseudoText(d * 100 + f, 500));
  }
  const repo = await Repository.init(new LocalBackend(join(dir, 'repo')), { password: 'pw', immutabilityDays: 0 });
  const saved = await backup(repo, { sources: [{ name: 'data', path: source, exclusionClasses: {} }] });
  const unhandled: unknown[] = [];
  const onUnhandled = (reason: unknown) => unhandled.push(reason);
  process.on('unhandledRejection', onUnhandled);
  t.after(() => process.off('unhandledRejection', onUnhandled));
  for (const stopAt of [1, 100, 1000, 3000]) {
    const controller = new AbortController();
    const restoring = restore(await Repository.open(new LocalBackend(join(dir, 'repo')), 'pw'), { id: saved.id, snapshot: saved.snapshot }, {
      target: join(dir, `target-${stopAt}`),
      signal: controller.signal,
      progress: (p) => p.filesDone >= stopAt && controller.abort(),
    });
    await assert.rejects(restoring, InterruptedError);
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.deepEqual(unhandled.map(String), []);
});

test("a restore of many files lets V8 optimize at its own pace; a small one keeps a command's quick start", async (t) => {
  const { interruptBudget, quickStartPace, MANY_FILES } = await import('../../src/util/v8-tiering.js');
  const { writeFile, mkdir } = await import('node:fs/promises');
  const dir = await tempDir(t);
  const source = join(dir, 'source');
  await mkdir(source);
  await writeFile(join(source, 'a.txt'), 'a');
  const repo = await Repository.init(new LocalBackend(join(dir, 'repo')), { password: null, immutabilityDays: 0 });
  const saved = await backup(repo, { sources: [{ name: 'data', path: source, exclusionClasses: {} }] });
  quickStartPace();
  const quickStart = interruptBudget();
  await restore(repo, { id: saved.id, snapshot: saved.snapshot }, { target: join(dir, 'small') });
  assert.equal(interruptBudget(), quickStart, 'a restore of one file keeps the quick start');
  // The decision follows what the snapshot's backup counted, so a claimed count stands in for 20,000 files.
  const claimed = { ...saved.snapshot, sources: saved.snapshot.sources.map((s) => ({ ...s, stats: { ...s.stats, files: MANY_FILES } })) };
  await restore(repo, { id: saved.id, snapshot: claimed }, { target: join(dir, 'many') });
  assert.ok(interruptBudget() < quickStart, `a restore of ${MANY_FILES} files optimizes sooner (budget ${interruptBudget()})`);
});
