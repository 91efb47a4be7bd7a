import assert from 'node:assert/strict';
import { copyFile, mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { PackSpool } from '../../src/repo/decode/pack-spool.js';
import { processLives } from '../../src/util/process-alive.js';
import { tempDir } from '../support/helpers.js';

/** The packs in the spool's folder under `parent` (each copy's file is named pack.N). */
async function spooled(parent: string): Promise<string[]> {
  const [folder] = await readdir(parent);
  return (await readdir(join(parent, folder!))).map((name) => name.split('.')[0]!).sort();
}

/** Time for the spool's file system calls (its folder, a copy, a size check) to finish. */
const settle = () => new Promise((resolve) => setTimeout(resolve, 20));

/** Packs as files of a folder standing for a network repository, each copy held until the test lets it go. */
async function fakeStorage(dir: string, packs: string[], size: number) {
  const source = join(dir, 'storage');
  await mkdir(source);
  for (const [i, pack] of packs.entries()) await writeFile(join(source, pack), Buffer.alloc(size, i + 1));
  const copies: string[] = [];
  const held = new Map<string, Array<() => void>>();
  const failing = new Set<string>();
  const download = async (pack: string, file: string) => {
    copies.push(pack);
    await new Promise<void>((resolve) => held.set(pack, [...(held.get(pack) ?? []), resolve]));
    if (failing.has(pack)) {
      await writeFile(file, 'half a pack');
      throw new Error('the copy failed');
    }
    await copyFile(join(source, pack), file);
  };
  const letGo = async (pack: string) => {
    for (const resolve of held.get(pack) ?? []) resolve();
    held.delete(pack);
    await settle();
  };
  return { download, copies, letGo, failing };
}

test('the pack spool brings over in the plan order, within its budget, what the restore needs most of, and deletes each pack after its last read', async (t) => {
  const dir = await tempDir(t);
  const size = 1000;
  const storage = await fakeStorage(dir, ['a', 'b', 'c', 'd', 'few'], size);
  const spoolParent = join(dir, 'tmp');
  await mkdir(spoolParent);
  const spool = (await PackSpool.create(() => size, storage.download, { parent: spoolParent, maxBytes: 2.5 * size }))!;
  assert.ok(spool);
  // The restore's first walk says what it will read; a pack comes over once it needs a quarter.
  spool.willRead('a', size / 8);
  await settle();
  assert.deepEqual(storage.copies, []);
  spool.willRead('a', size / 8);
  await settle();
  assert.deepEqual(storage.copies, ['a']);
  for (const pack of ['b', 'c', 'd']) {
    spool.willRead(pack, size / 2);
    spool.willRead(pack, size / 2);
  }
  // A tenth of this pack is needed: it is read in ranges, not brought over.
  spool.willRead('few', size / 10);
  spool.planned();
  await settle();
  // Two packs fit the budget: the third waits.
  assert.deepEqual(storage.copies, ['a', 'b']);
  assert.equal(spool.take('few'), undefined);

  const a = spool.take('a');
  assert.ok(a instanceof Promise, 'a pack still on its way comes as a promise');
  await storage.letGo('a');
  const fileA = (await a)!;
  assert.deepEqual(await readFile(fileA), Buffer.alloc(size, 1));
  assert.equal(spool.take('a'), fileA, 'a pack that is there comes at once');
  spool.release('a');
  assert.deepEqual(storage.copies, ['a', 'b'], 'a pack with reads left stays');
  spool.release('a');
  await settle();
  assert.ok(!(await spooled(spoolParent)).includes('a'), 'the last read deletes it');
  assert.deepEqual(storage.copies, ['a', 'b', 'c'], 'and makes room for the next');

  // b is read once of twice, then sits idle; the prefetch does not push it out for d, but
  // d asked for by the restore does (b comes over again when it is read again).
  await storage.letGo('b');
  const fileB = spool.take('b') as string;
  assert.equal(typeof fileB, 'string');
  spool.release('b');
  await storage.letGo('c');
  assert.deepEqual(storage.copies, ['a', 'b', 'c']);
  storage.failing.add('d');
  const d = spool.take('d');
  await settle();
  assert.deepEqual(storage.copies, ['a', 'b', 'c', 'd']);
  await storage.letGo('d');
  assert.equal(await d, undefined, 'a failed copy is read through the repository');
  assert.deepEqual(await spooled(spoolParent), ['c'], 'nothing is left of the failed copy, and idle b made room');
  const again = spool.take('b');
  assert.ok(again instanceof Promise);
  await settle();
  await storage.letGo('b');
  assert.deepEqual(await readFile((await again)!), Buffer.alloc(size, 2));
  assert.deepEqual(storage.copies, ['a', 'b', 'c', 'd', 'b']);

  await spool.close();
  assert.deepEqual(await readdir(spoolParent), [], 'close removes the spool');
});

test('beside a first walk still going, a take waits for its word on a pack, and no pack goes before the walk has counted all its reads', async (t) => {
  const dir = await tempDir(t);
  const size = 1000;
  const storage = await fakeStorage(dir, ['late', 'never', 'early'], size);
  const spool = (await PackSpool.create(() => size, storage.download, { parent: dir }))!;
  spool.willRead('late', size / 10);
  const late = spool.take('late');
  assert.ok(late instanceof Promise, 'not yet decided: the walk may find more of it needed');
  spool.willRead('late', size / 5);
  await settle();
  assert.deepEqual(storage.copies, ['late'], 'a quarter now needed: it comes over');
  await storage.letGo('late');
  assert.equal(typeof (await late), 'string');

  spool.willRead('never', size / 10);
  const never = spool.take('never');
  spool.willRead('early', size);
  await settle();
  await storage.letGo('early');
  const early = spool.take('early') as string;
  spool.release('early');
  await settle();
  assert.deepEqual(await readFile(early), Buffer.alloc(size, 3), 'read as often as counted so far, but the walk may count more');
  spool.planned();
  assert.equal(await never, undefined, 'the walk ended without needing much of it: read in ranges');
  await settle();
  await assert.rejects(readFile(early), { code: 'ENOENT' }, 'once the walk is done, a pack read as often as it found goes');
  spool.release('late');
  await spool.close();
});

test('no spool where its folder cannot be used, and no folder made while nothing is brought over', async (t) => {
  const dir = await tempDir(t);
  const refuse = async () => assert.fail('nothing is copied');
  assert.equal(await PackSpool.create(() => 1000, refuse, { parent: join(dir, 'missing') }), undefined);
  const spool = (await PackSpool.create(() => 1000, refuse, { parent: dir, maxBytes: 1500 }))!;
  spool.willRead('few', 100);
  spool.willRead('large', 1000);
  spool.planned();
  assert.equal(spool.take('few'), undefined);
  assert.equal(spool.take('large'), undefined, 'two of this pack would not fit the budget');
  await spool.close();
  assert.deepEqual(await readdir(dir), []);
});

test('a spool left by a killed restore is removed by the next one; one whose process lives is left', async (t) => {
  const dir = await tempDir(t);
  // The id of no process (a unit test starts none to have one end).
  let gone = 3_000_000;
  while (processLives(gone)) gone++;
  await mkdir(join(dir, `stackvault-restore-${gone}-Ab12Cd`));
  await writeFile(join(dir, `stackvault-restore-${gone}-Ab12Cd`, 'a-pack.1'), 'x');
  await mkdir(join(dir, `stackvault-restore-${process.pid}-Ef34Gh`));
  await mkdir(join(dir, 'someone-else'));
  const spool = await PackSpool.create(() => 1000, async () => undefined, { parent: dir });
  assert.ok(spool);
  assert.deepEqual((await readdir(dir)).sort(), ['someone-else', `stackvault-restore-${process.pid}-Ef34Gh`]);
  await spool.close();
});
