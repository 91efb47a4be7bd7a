import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { LocalBackend } from '../../src/repo/backends/local.js';
import { Repository } from '../../src/repo/repository.js';
import { backup } from '../../src/snapshot/backup/backup.js';
import { check } from '../../src/snapshot/maintenance/check.js';
import { copySnapshot } from '../../src/snapshot/copy.js';
import { restore } from '../../src/snapshot/restore/restore.js';
import { listSnapshots } from '../../src/snapshot/snapshot.js';
import { compareTrees } from '../../src/sources/files/compare.js';
import { makeRichTree, pseudoRandom, runCli, tempDir } from '../support/helpers.js';

test('a copied snapshot restores byte-equal from the other repository and deduplicates with its later backups', async (t) => {
  const dir = await tempDir(t);
  const source = join(dir, 'source');
  await makeRichTree(source, 4);
  const sources = [{ name: 'data', path: source, exclusionClasses: {} }];
  const from = await Repository.init(new LocalBackend(join(dir, 'vendor')), { password: 'vendor secret', immutabilityDays: 0 });
  const original = await backup(from, { sources, stack: 'acme', tags: ['release'] });
  const to = await Repository.init(new LocalBackend(join(dir, 'customer')), { password: 'customer secret', immutabilityDays: 0 });

  const copied = await copySnapshot(from, to, { id: original.id, snapshot: original.snapshot });
  assert.equal(copied.existing, false);
  assert.ok(copied.files >= 10);
  const [ref] = await listSnapshots(to);
  assert.equal(ref!.id, copied.id);
  assert.deepEqual(ref!.snapshot.copiedFrom, { repository: from.config.id, snapshot: original.id });
  assert.deepEqual(ref!.snapshot.tags, ['release']);
  assert.deepEqual((await check(to, { readData: true })).errors, []);
  await restore(to, ref!, { target: join(dir, 'restored') });
  assert.deepEqual((await compareTrees(source, join(dir, 'restored', 'data'), { owners: process.getuid?.() === 0 })).differences, []);

  const again = await copySnapshot(from, to, { id: original.id, snapshot: original.snapshot });
  assert.deepEqual(again, { id: copied.id, existing: true, files: 0, bytes: 0, bytesAdded: 0, reused: 0 });

  // The target chunked the copy itself, so its own backup of the same data adds only its trees.
  const own = await backup(to, { sources, stack: 'acme', parent: null });
  assert.ok(own.snapshot.sources[0]!.stats.bytesAdded < 20_000, `added ${own.snapshot.sources[0]!.stats.bytesAdded} bytes`);
});

test('stackvault copy on the command line, with the other repository\'s own password', async (t) => {
  const dir = await tempDir(t);
  await writeFile(join(dir, 'file.txt'), 'copied across');
  const env = { STACKVAULT_PASSWORD: 'target pw', STACKVAULT_FROM_PASSWORD: 'source pw' };
  assert.equal((await runCli(['init', '--repo', join(dir, 'a')], { env: { STACKVAULT_PASSWORD: 'source pw' } })).code, 0);
  assert.equal((await runCli(['backup', '--repo', join(dir, 'a'), dir], { env: { STACKVAULT_PASSWORD: 'source pw' } })).code, 0);
  assert.equal((await runCli(['init', '--repo', join(dir, 'b')], { env })).code, 0);
  const copied = await runCli(['copy', '--repo', join(dir, 'b'), '--from-repo', join(dir, 'a'), 'latest'], { env });
  assert.equal(copied.code, 0, copied.stderr);
  assert.match(copied.stdout, /copied as [0-9a-f]{8}: \d+ files/);
  const twice = await runCli(['copy', '--repo', join(dir, 'b'), '--from-repo', join(dir, 'a')], { env });
  assert.match(twice.stdout, /is here already as/);
  const wrong = await runCli(['copy', '--repo', join(dir, 'b'), '--from-repo', join(dir, 'a')], { env: { ...env, STACKVAULT_FROM_PASSWORD: 'nope' } });
  assert.equal(wrong.code, 12);
  const dumped = await runCli(['dump', '--repo', join(dir, 'b'), 'latest', `/${dir.split('/').pop()}/file.txt`], { env });
  assert.equal(dumped.stdout, 'copied across');
});

test('copying a later snapshot reads only what changed since an earlier copy; an unchanged one reads no data', async (t) => {
  const dir = await tempDir(t);
  const source = join(dir, 'source');
  await makeRichTree(source);
  for (let i = 0; i < 8; i++) await writeFile(join(source, `clip-${i}.bin`), pseudoRandom(i + 1, 400_000));
  const fromBackend = new LocalBackend(join(dir, 'from'));
  await Repository.init(fromBackend, { password: 'a', immutabilityDays: 0 });
  const toBackend = new LocalBackend(join(dir, 'to'));
  await Repository.init(toBackend, { password: 'b', immutabilityDays: 0 });
  const spec = { sources: [{ name: 'data', path: source, exclusionClasses: {} }] };
  // Counts what a copy reads of the source's packs (the backend itself, no stand-in).
  let dataBytesRead = 0;
  const counting = Object.create(fromBackend) as LocalBackend;
  counting.get = async (key, range) => {
    const bytes = await fromBackend.get(key, range);
    if (key.startsWith('data/')) dataBytesRead += bytes.length;
    return bytes;
  };
  const copyLatest = async () => {
    const from = await Repository.open(counting, 'a');
    const [latest] = (await listSnapshots(from)).slice(-1);
    dataBytesRead = 0;
    return { copied: await copySnapshot(from, await Repository.open(toBackend, 'b'), latest!), read: dataBytesRead };
  };

  await backup(await Repository.open(fromBackend, 'a'), spec);
  const first = await copyLatest();
  assert.ok(first.read > 3_000_000, `the first copy read ${first.read} bytes`);

  await writeFile(join(source, 'clip-3.bin'), pseudoRandom(99, 400_000));
  await backup(await Repository.open(fromBackend, 'a'), spec);
  const second = await copyLatest();
  assert.ok(second.read < 600_000, `a copy after one 400 kB file changed read ${second.read} bytes`);
  assert.ok(second.copied.reused > 0);

  await backup(await Repository.open(fromBackend, 'a'), spec);
  const third = await copyLatest();
  assert.equal(third.read, 0, 'an unchanged snapshot is copied from trees alone');

  const to = await Repository.open(toBackend, 'b');
  assert.deepEqual((await check(to, { readData: true })).errors, []);
  const target = join(dir, 'restored');
  const copiedRef = (await listSnapshots(to)).find((r) => r.id === third.copied.id)!;
  assert.deepEqual((await restore(to, copiedRef, { target })).errors, []);
  assert.deepEqual((await compareTrees(source, join(target, 'data'))).differences, []);
});
