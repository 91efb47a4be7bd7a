import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
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

/** Waits for what the spool does after a copy (a size check, the hash of the copy) however long a busy machine takes. */
async function until(condition: () => boolean, what: string): Promise<void> {
  for (const started = Date.now(); !condition(); await settle()) if (Date.now() - started > 10_000) assert.fail(`${what}: not within 10 s`);
}

/**
 * Packs as files of a folder standing for a network repository, each copy held until the
 * test lets it go. A pack is named by the SHA-256 of its bytes, as in a repository (the
 * spool checks every copy against its name); the tests call them by labels (id()).
 */
async function fakeStorage(dir: string, labels: string[], size: number) {
  const source = join(dir, 'storage');
  await mkdir(source);
  const ids = new Map<string, string>();
  const labelOf = new Map<string, string>();
  for (const [i, label] of labels.entries()) {
    const bytes = Buffer.alloc(size, i + 1);
    const id = createHash('sha256').update(bytes).digest('hex');
    ids.set(label, id);
    labelOf.set(id, label);
    await writeFile(join(source, label), bytes);
  }
  const id = (label: string) => ids.get(label)!;
  const copies: string[] = [];
  const held = new Map<string, Array<() => void>>();
  const failing = new Set<string>();
  const damaging = new Set<string>();
  /** copies whose first half is written at once, as a network brings a pack over in order */
  const halfFirst = new Set<string>();
  /** copies that end 100 ms after their bytes are there, as on a machine busy with other work */
  const slow = new Set<string>();
  const download = async (pack: string, file: string) => {
    const label = labelOf.get(pack)!;
    copies.push(label);
    if (halfFirst.has(label)) await writeFile(file, (await readFile(join(source, label))).subarray(0, size / 2));
    await new Promise<void>((resolve) => held.set(label, [...(held.get(label) ?? []), resolve]));
    if (failing.has(label)) {
      await writeFile(file, 'half a pack');
      throw new Error('the copy failed');
    }
    await copyFile(join(source, label), file);
    // Damaged on its way, and nothing said so: one byte of the copy is wrong.
    if (damaging.has(label)) await writeFile(file, Buffer.alloc(1, 0xff), { flag: 'r+' });
    if (slow.has(label)) await new Promise((resolve) => setTimeout(resolve, 100));
  };
  const letGo = async (label: string) => {
    for (const resolve of held.get(label) ?? []) resolve();
    held.delete(label);
    await settle();
  };
  /** The labels of the packs in the spool's folder under `parent`. */
  const spooledLabels = async (parent: string) => (await spooled(parent)).map((pack) => labelOf.get(pack)!).sort();
  return { download, copies, letGo, failing, damaging, halfFirst, slow, id, spooledLabels };
}

test('the pack spool brings over in the plan order, within its budget, what the restore needs most of, and deletes each pack after its last read', async (t) => {
  const dir = await tempDir(t);
  const size = 1000;
  const storage = await fakeStorage(dir, ['a', 'b', 'c', 'd', 'few'], size);
  const { id } = storage;
  const spoolParent = join(dir, 'tmp');
  await mkdir(spoolParent);
  const spool = (await PackSpool.create(() => size, storage.download, { parent: spoolParent, maxBytes: 2.5 * size }))!;
  assert.ok(spool);
  // The restore's first walk says what it will read; a pack comes over once it needs a quarter.
  spool.willRead(id('a'), size / 8);
  await settle();
  assert.deepEqual(storage.copies, []);
  spool.willRead(id('a'), size / 8);
  await settle();
  assert.deepEqual(storage.copies, ['a']);
  for (const pack of ['b', 'c', 'd']) {
    spool.willRead(id(pack), size / 2);
    spool.willRead(id(pack), size / 2);
  }
  // A tenth of this pack is needed: it is read in ranges, not brought over.
  spool.willRead(id('few'), size / 10);
  spool.planned();
  await settle();
  // Two packs fit the budget: the third waits.
  assert.deepEqual(storage.copies, ['a', 'b']);
  assert.equal(spool.take(id('few')), undefined);

  const a = spool.take(id('a'));
  assert.ok(a instanceof Promise, 'a pack still on its way comes as a promise');
  await storage.letGo('a');
  const fileA = (await a)!;
  assert.deepEqual(await readFile(fileA), Buffer.alloc(size, 1));
  assert.equal(spool.take(id('a')), fileA, 'a pack that is there comes at once');
  spool.release(id('a'));
  assert.deepEqual(storage.copies, ['a', 'b'], 'a pack with reads left stays');
  spool.release(id('a'));
  await settle();
  assert.ok(!(await storage.spooledLabels(spoolParent)).includes('a'), 'the last read deletes it');
  assert.deepEqual(storage.copies, ['a', 'b', 'c'], 'and makes room for the next');

  // b is read once of twice, then sits idle; the prefetch does not push it out for d, but
  // d asked for by the restore does (b comes over again when it is read again). Its copy
  // ends late, as under CI's load, where a fixed wait once saw it still on its way.
  storage.slow.add('b');
  await storage.letGo('b');
  await until(() => spool.settled(id('b')), 'the copy of b');
  storage.slow.delete('b');
  const fileB = spool.take(id('b')) as string;
  assert.equal(typeof fileB, 'string');
  spool.release(id('b'));
  await storage.letGo('c');
  assert.deepEqual(storage.copies, ['a', 'b', 'c']);
  storage.failing.add('d');
  const d = spool.take(id('d'));
  await settle();
  assert.deepEqual(storage.copies, ['a', 'b', 'c', 'd']);
  await storage.letGo('d');
  assert.equal(await d, undefined, 'a failed copy is read through the repository');
  assert.deepEqual(await storage.spooledLabels(spoolParent), ['c'], 'nothing is left of the failed copy, and idle b made room');
  const again = spool.take(id('b'));
  assert.ok(again instanceof Promise);
  await settle();
  await storage.letGo('b');
  assert.deepEqual(await readFile((await again)!), Buffer.alloc(size, 2));
  assert.deepEqual(storage.copies, ['a', 'b', 'c', 'd', 'b']);

  await spool.close();
  assert.deepEqual(await readdir(spoolParent), [], 'close removes the spool');
});

test('a take that reads no further than part of a pack gets its file once that part is there, before the copy is whole; such a read is not final until the pack has settled', async (t) => {
  const dir = await tempDir(t);
  const size = 1000;
  const storage = await fakeStorage(dir, ['a', 'b'], size);
  const { id } = storage;
  const spool = (await PackSpool.create(() => size, storage.download, { parent: dir }))!;
  storage.halfFirst.add('a');
  storage.halfFirst.add('b');
  storage.damaging.add('b');
  // Two reads of a, one of b.
  spool.willRead(id('a'), size / 2);
  spool.willRead(id('a'), size / 2);
  spool.willRead(id('b'), size);
  spool.planned();
  await settle();
  assert.deepEqual(storage.copies, ['a', 'b']);

  // The first half is there: a take of it comes (at once, or within the spool's next looks).
  const firstHalf = await spool.take(id('a'), size / 2);
  assert.ok(typeof firstHalf === 'string');
  assert.deepEqual((await readFile(firstHalf)).subarray(0, size / 2), Buffer.alloc(size / 2, 1));
  assert.equal(spool.settled(id('a')), false, 'read from a copy still under way');
  // What did not verify from it is taken again, the first take still held: once the copy is
  // whole, the same file, not counted as one more of the planned reads.
  const retaken = spool.takeSettled(id('a'));
  // The second half is not there yet: its take waits for it.
  let secondTaken = false;
  const second = Promise.resolve(spool.take(id('a'), size)).then((file) => ((secondTaken = true), file));
  await settle();
  assert.equal(secondTaken, false);
  await storage.letGo('a');
  assert.equal(await second, firstHalf);
  assert.equal(await retaken, firstHalf);
  assert.equal(spool.settled(id('a')), true);
  spool.release(id('a'));
  spool.release(id('a'));
  await settle();
  assert.ok((await storage.spooledLabels(dir)).includes('a'), 'a pack stays until its last planned read is released');
  spool.release(id('a'));
  await settle();
  assert.ok(!(await storage.spooledLabels(dir)).includes('a'), 'and goes then');

  // A copy damaged on its way: read early, then taken again once the copy is found damaged,
  // it comes through the repository (undefined).
  const early = await spool.take(id('b'), size / 4);
  assert.ok(typeof early === 'string');
  const again = spool.takeSettled(id('b'));
  await storage.letGo('b');
  assert.equal(await again, undefined);
  assert.equal(spool.settled(id('b')), true);
  spool.release(id('b'));
  await spool.close();
});

test('beside a first walk still going, a take waits for its word on a pack, and no pack goes before the walk has counted all its reads', async (t) => {
  const dir = await tempDir(t);
  const size = 1000;
  const storage = await fakeStorage(dir, ['late', 'never', 'early'], size);
  const { id } = storage;
  const spool = (await PackSpool.create(() => size, storage.download, { parent: dir }))!;
  spool.willRead(id('late'), size / 10);
  const late = spool.take(id('late'));
  assert.ok(late instanceof Promise, 'not yet decided: the walk may find more of it needed');
  spool.willRead(id('late'), size / 5);
  await settle();
  assert.deepEqual(storage.copies, ['late'], 'a quarter now needed: it comes over');
  await storage.letGo('late');
  assert.equal(typeof (await late), 'string');

  spool.willRead(id('never'), size / 10);
  const never = spool.take(id('never'));
  spool.willRead(id('early'), size);
  await settle();
  // Its copy ends late, as under CI's load, where a fixed wait once saw it still on its way.
  storage.slow.add('early');
  await storage.letGo('early');
  await until(() => spool.settled(id('early')), 'the copy of early');
  const early = spool.take(id('early')) as string;
  assert.equal(typeof early, 'string', 'a pack that is there comes at once');
  spool.release(id('early'));
  await settle();
  assert.deepEqual(await readFile(early), Buffer.alloc(size, 3), 'read as often as counted so far, but the walk may count more');
  spool.planned();
  assert.equal(await never, undefined, 'the walk ended without needing much of it: read in ranges');
  await settle();
  await assert.rejects(readFile(early), { code: 'ENOENT' }, 'once the walk is done, a pack read as often as it found goes');
  spool.release(id('late'));
  await spool.close();
});

test('told that the restore reads from every pack, the spool brings all over at once and keeps each until it closes, however often it is read; not where they would not fit', async (t) => {
  const dir = await tempDir(t);
  const size = 1000;
  const storage = await fakeStorage(dir, ['a', 'b', 'c'], size);
  const { id } = storage;
  const spoolParent = join(dir, 'tmp');
  await mkdir(spoolParent);
  const tooSmall = (await PackSpool.create(() => size, storage.download, { parent: spoolParent, maxBytes: 2.5 * size }))!;
  assert.equal(tooSmall.willReadAll(['a', 'b', 'c'].map((label) => ({ pack: id(label), storedBytes: size }))), false);
  await settle();
  assert.deepEqual(storage.copies, [], 'three packs do not fit: nothing is brought over, the walk plans');
  await tooSmall.close();

  const spool = (await PackSpool.create(() => size, storage.download, { parent: spoolParent, maxBytes: 2.5 * size }))!;
  assert.equal(spool.willReadAll(['a', 'b'].map((label) => ({ pack: id(label), storedBytes: size / 10 }))), true);
  spool.planned();
  await settle();
  assert.deepEqual(storage.copies, ['a', 'b'], 'at once, before any take, however little of each is counted');
  await storage.letGo('a');
  await storage.letGo('b');
  for (let i = 0; i < 5; i++) {
    for (const label of ['a', 'b']) {
      assert.equal(typeof (await spool.take(id(label))), 'string');
      spool.release(id(label));
    }
  }
  await settle();
  assert.deepEqual(storage.copies, ['a', 'b'], 'never deleted and brought over again for being read more often than counted');
  assert.deepEqual(await storage.spooledLabels(spoolParent), ['a', 'b']);
  assert.equal(spool.take(id('c')), undefined, 'a pack not named is read in ranges');
  await spool.close();
  assert.deepEqual(await readdir(spoolParent), [], 'close removes them');
});

test('told how far the walk has come, the spool judges a pack by what the whole walk will likely need of it, from a tenth of the walk on', async (t) => {
  const dir = await tempDir(t);
  const size = 1000;
  const storage = await fakeStorage(dir, ['dense', 'sparse', 'tiny'], size);
  const { id } = storage;
  const spool = (await PackSpool.create(() => size, storage.download, { parent: dir }))!;
  // A fifth of the walk done, a tenth of the pack needed: a half at the walk's end.
  spool.willRead(id('dense'), size / 10, 0.2);
  // A fifth done, 4% needed: a fifth at the end, less than a quarter.
  spool.willRead(id('sparse'), size / 25, 0.2);
  // 1% done, 2% needed: judged as if a tenth were done (a fifth at the end), not as if all of it were needed.
  spool.willRead(id('tiny'), size / 50, 0.01);
  await settle();
  assert.deepEqual(storage.copies, ['dense'], 'only the pack most of which the restore will need comes over now');
  // The walk's end (or no word on how far it is): the quarter rule as before.
  spool.willRead(id('sparse'), size / 4);
  await settle();
  assert.deepEqual(storage.copies, ['dense', 'sparse']);
  spool.planned();
  await storage.letGo('dense');
  await storage.letGo('sparse');
  await spool.close();
});

test('each copy is checked with the hash function the spool was given (a restore has its writer threads hash)', async (t) => {
  const dir = await tempDir(t);
  const size = 1000;
  const storage = await fakeStorage(dir, ['first', 'second'], size);
  const { id } = storage;
  const hashed: string[] = [];
  const hashFile = async (file: string) => {
    hashed.push(file);
    // Says every copy is damaged: the spool must not use any.
    return 'f'.repeat(64);
  };
  const spool = (await PackSpool.create(() => size, storage.download, { parent: dir, hashFile }))!;
  spool.willRead(id('first'), size);
  spool.willRead(id('second'), size);
  spool.planned();
  const first = spool.take(id('first'));
  const second = spool.take(id('second'));
  await storage.letGo('first');
  await storage.letGo('second');
  assert.equal(await first, undefined);
  assert.equal(await second, undefined);
  assert.equal(hashed.length, 2);
  await spool.close();
});

test('a copy whose bytes do not match its pack\'s name is not used: its blobs are read in ranges, and it is deleted', async (t) => {
  const dir = await tempDir(t);
  const size = 1000;
  const storage = await fakeStorage(dir, ['whole', 'damaged'], size);
  const { id } = storage;
  const spoolParent = join(dir, 'tmp');
  await mkdir(spoolParent);
  const spool = (await PackSpool.create(() => size, storage.download, { parent: spoolParent }))!;
  storage.damaging.add('damaged');
  spool.willRead(id('whole'), size);
  spool.willRead(id('damaged'), size);
  spool.planned();
  const whole = spool.take(id('whole'));
  const damaged = spool.take(id('damaged'));
  await storage.letGo('whole');
  await storage.letGo('damaged');
  assert.deepEqual(await readFile((await whole)!), Buffer.alloc(size, 1));
  assert.equal(await damaged, undefined, 'read through the repository, whose reads are checked blob by blob');
  assert.deepEqual(await storage.spooledLabels(spoolParent), ['whole'], 'nothing is left of the damaged copy');
  spool.release(id('whole'));
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
