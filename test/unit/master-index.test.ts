import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { test } from 'node:test';
import type { PackedBlob } from '../../src/repo/format/pack.js';
import { MAX_BLOBS_PER_INDEX_FILE, MasterIndex, encodeIndexFile, encodeIndexFiles } from '../../src/repo/master-index.js';
import { IntegrityError } from '../../src/util/errors.js';

const blobIdOf = (n: number) => createHash('sha256').update(`blob ${n}`).digest('hex');
const packIdOf = (n: number) => createHash('sha256').update(`pack ${n}`).digest('hex');

function pack(first: number, count: number, type: 'data' | 'tree' = 'data'): PackedBlob[] {
  return Array.from({ length: count }, (_, i) => ({ id: blobIdOf(first + i), type, offset: i * 100, length: 100, rawLength: 150 + i, compressed: i % 2 === 0 }));
}

for (const [where, spillAbove, sortAtOnce] of [
  ['rows in memory', undefined, undefined],
  ['rows in a file past 1,000 blobs', 1000, undefined],
  // As ten million blobs are sorted: in buckets by their first 16 bits.
  ['sorted in buckets', undefined, 1000],
] as const) {
  test(`the compact index finds every blob among 300,000, added in bulk and pack by pack between lookups, as a Map would (${where})`, () => {
    const index = new MasterIndex({ spillAbove, sortAtOnce });
    const reference = new Map<string, { pack: string; offset: number; rawLength: number; compressed: boolean }>();
    let next = 0;
    // In bulk, as an opening repository adds its index files: sorted at the first lookup.
    for (let p = 0; p < 2000; p++) {
      const blobs = pack(next, 100);
      next += 100;
      index.addPack(packIdOf(p), blobs, `file-${p % 7}`);
      for (const b of blobs) reference.set(b.id, { pack: packIdOf(p), offset: b.offset, rawLength: b.rawLength, compressed: b.compressed });
    }
    // Then as a backup adds its packs, looking up between them: a Map first, sorted in past 65,536.
    for (let p = 2000; p < 3000; p++) {
      const blobs = pack(next, 100, p % 3 === 0 ? 'tree' : 'data');
      next += 100;
      index.addPack(packIdOf(p), blobs);
      for (const b of blobs) reference.set(b.id, { pack: packIdOf(p), offset: b.offset, rawLength: b.rawLength, compressed: b.compressed });
      const probe = blobIdOf((p * 7919) % next);
      assert.equal(index.get(probe)?.pack, reference.get(probe)!.pack);
    }
    assert.equal(index.blobCount, 300_000);
    for (const [id, want] of reference) {
      const got = index.get(id);
      assert.ok(got, `blob ${id} not found`);
      assert.deepEqual({ pack: got.pack, offset: got.offset, rawLength: got.rawLength, compressed: got.compressed }, want);
      assert.equal(got.id, id);
    }
    for (let n = next; n < next + 1000; n++) assert.equal(index.get(blobIdOf(n)), undefined);
    assert.equal(index.get('not an id'), undefined);
    assert.equal(index.get(blobIdOf(5).toUpperCase().replace(/./, 'g')), undefined);
    assert.deepEqual(index.packBlobs(packIdOf(2002)), pack(200_200, 100));
    assert.deepEqual(index.packBlobs(packIdOf(2001)), pack(200_100, 100, 'tree'));
    // Each pack's rows in one read, also those that straddle the file and the rows not yet written to it.
    const packs = [...index.eachPack()];
    assert.equal(packs.length, 3000);
    for (const [p, [packId, blobs]] of packs.entries()) {
      assert.equal(packId, packIdOf(p));
      assert.deepEqual(blobs, pack(p * 100, 100, p >= 2000 && p % 3 === 0 ? 'tree' : 'data'));
    }
    assert.equal(index.rowsIn, spillAbove ? 'file' : 'memory');
  });
}

test('blob marks: an id marks each entry holding it, ids not in the index are kept apart, and an entry added later cannot read as unmarked', () => {
  const index = new MasterIndex({ spillAbove: 50 });
  index.addPack(packIdOf(1), pack(0, 40));
  // Blobs 30-39 stored a second time, in another pack.
  index.addPack(packIdOf(2), pack(30, 40));
  const marks = index.marks();
  assert.equal(marks.mark(blobIdOf(35)), true);
  assert.equal(marks.mark(blobIdOf(35)), false);
  const [one, two] = [index.packRange(packIdOf(1))!, index.packRange(packIdOf(2))!];
  assert.equal(marks.isMarked(one.first + 35), true);
  assert.equal(marks.isMarked(two.first + 5), true);
  assert.equal(marks.countIn(one.first, one.count), 1);
  assert.equal(marks.countIn(two.first, two.count), 1);
  assert.deepEqual(index.otherCopies(one.first + 35), [packIdOf(2)]);
  assert.deepEqual(index.otherCopies(one.first + 1), []);
  for (let b = 0; b < 70; b += 3) marks.mark(blobIdOf(b));
  assert.equal(marks.countIn(one.first, one.count), 15);
  assert.equal(marks.isMarked(one.first + 4), false);
  // Not in the index: remembered by id.
  assert.equal(marks.mark(blobIdOf(1000)), true);
  assert.equal(marks.mark(blobIdOf(1000)), false);
  index.addPack(packIdOf(3), pack(1000, 5));
  assert.throws(() => marks.mark(blobIdOf(1001)), /added after the blob marks were made/);
  assert.throws(() => marks.isMarked(index.packRange(packIdOf(3))!.first), /added after the blob marks were made/);
  assert.equal(index.marks().countIn(index.packRange(packIdOf(3))!.first, 5), 0);
});

test('ids that share their first 16 bytes are told apart by the rest, in memory and in the file', () => {
  for (const spillAbove of [undefined, 10]) {
    const index = new MasterIndex({ spillAbove });
    const prefix = blobIdOf(1).slice(0, 32);
    const ids = Array.from({ length: 40 }, (_, i) => prefix + blobIdOf(100 + i).slice(32));
    const stored = ids.filter((_, i) => i % 2 === 0);
    index.addPack(packIdOf(1), stored.slice(0, 10).map((id, i) => ({ id, type: 'data' as const, offset: i, length: 1, rawLength: 1, compressed: false })));
    assert.ok(index.has(stored[0]!));
    // Sorted, then more between lookups (the Map), then sorted in again.
    index.addPack(packIdOf(2), stored.slice(10).map((id, i) => ({ id, type: 'data' as const, offset: i, length: 1, rawLength: 1, compressed: false })));
    for (const [i, id] of ids.entries()) assert.equal(index.has(id), i % 2 === 0, `id ${i}`);
    for (const [i, id] of stored.entries()) assert.equal(index.get(id)?.offset, i % 10);
    assert.equal(index.has(prefix + '0'.repeat(32)), false);
  }
});

test('the rows file leaves nothing in the temporary folder, and a damaged index file after the spill adds nothing', async () => {
  const { readdirSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const before = readdirSync(tmpdir()).filter((n) => n.startsWith('stackvault-scratch-'));
  const index = new MasterIndex({ spillAbove: 100 });
  index.addIndexFile('a', encodeIndexFile([[packIdOf(1), pack(0, 150)]]));
  assert.equal(index.rowsIn, 'file');
  assert.deepEqual(readdirSync(tmpdir()).filter((n) => n.startsWith('stackvault-scratch-')), before);
  const file = encodeIndexFile([[packIdOf(2), pack(150, 40_000)]]);
  file.packs[0]!.blobs[39_999]![0] = 'zz'.repeat(32);
  assert.throws(() => index.addIndexFile('b', file), IntegrityError);
  assert.equal(index.get(blobIdOf(150)), undefined);
  assert.equal(index.get(blobIdOf(149))?.pack, packIdOf(1));
  index.addIndexFile('c', encodeIndexFile([[packIdOf(3), pack(150, 3)]]));
  assert.equal(index.get(blobIdOf(152))?.offset, 200);
  assert.deepEqual(index.packBlobs(packIdOf(1))!.at(-1), pack(0, 150).at(-1));
});

test('a blob stored twice comes from the first pack prune keeps, and a superseded index file is withdrawn', () => {
  const index = new MasterIndex();
  const shared = pack(0, 3);
  index.doom([packIdOf(1)]);
  index.addPack(packIdOf(1), shared, 'old');
  index.addPack(packIdOf(2), shared, 'old');
  index.addPack(packIdOf(3), shared, 'new');
  index.addPack(packIdOf(4), pack(10, 2), 'old');
  assert.equal(index.get(shared[0]!.id)?.pack, packIdOf(2));
  // Pack 2 is listed only by the superseded file; pack 1, doomed, still serves a reader.
  index.supersede('old');
  assert.equal(index.get(shared[0]!.id)?.pack, packIdOf(3));
  assert.equal(index.get(blobIdOf(10)), undefined);
  assert.equal(index.hasPack(packIdOf(4)), false);
  // Listed again by a file that counts: back.
  index.addPack(packIdOf(4), pack(10, 2), 'newer');
  assert.equal(index.get(blobIdOf(11))?.pack, packIdOf(4));
  index.supersede('new');
  assert.equal(index.get(shared[1]!.id), undefined, 'every copy withdrawn');
});

test('an index file with a blob id that is not one adds nothing of that pack', () => {
  const index = new MasterIndex();
  const file = encodeIndexFile([[packIdOf(1), pack(0, 3)], [packIdOf(2), pack(3, 3)]]);
  file.packs[1]!.blobs[1]![0] = 'zz'.repeat(32);
  assert.throws(() => index.addIndexFile('damaged', file), IntegrityError);
  index.supersede('damaged');
  assert.equal(index.get(blobIdOf(0)), undefined);
  assert.equal(index.get(blobIdOf(3)), undefined);
  assert.equal(index.hasPack(packIdOf(2)), false);
  // The same packs from an intact file are there in full.
  index.addIndexFile('intact', encodeIndexFile([[packIdOf(2), pack(3, 3)]]));
  assert.deepEqual(index.packBlobs(packIdOf(2)), pack(3, 3));
});

test('a rewritten index is split into files of at most 50,000 blobs, and only the last supersedes', () => {
  const packs = new Map(Array.from({ length: 240 }, (_, p) => [packIdOf(p), pack(p * 500, 500)] as [string, PackedBlob[]]));
  const files = [...encodeIndexFiles(packs, ['a', 'b'])];
  assert.equal(files.length, 3);
  for (const f of files) assert.ok(f.packs.reduce((n, p) => n + p.blobs.length, 0) <= MAX_BLOBS_PER_INDEX_FILE);
  assert.deepEqual(files.map((f) => f.supersedes), [[], [], ['a', 'b']]);
  assert.equal(files.flatMap((f) => f.packs).length, 240);
  assert.deepEqual([...encodeIndexFiles(new Map(), ['a'])].map((f) => f.supersedes), [['a']]);
});

test('index files are read straight from their bytes as this version writes them, and any other layout is parsed as JSON', () => {
  const packs: Array<[string, PackedBlob[]]> = [
    [packIdOf(1), pack(0, 3)],
    [packIdOf(2), pack(3, 2, 'tree')],
    [packIdOf(3), []],
  ];
  const file = encodeIndexFile(packs, [packIdOf(8), packIdOf(9)]);
  const bytes = Buffer.from(JSON.stringify(file));
  const fast = new MasterIndex();
  let supersedes: string[] = [];
  assert.equal(
    fast.addIndexFileJson('f', bytes, (ids) => ((supersedes = ids), true)),
    'added',
  );
  assert.deepEqual(supersedes, [packIdOf(8), packIdOf(9)]);
  const parsed = new MasterIndex();
  parsed.addIndexFile('f', file);
  assert.deepEqual([...fast.eachPack()], [...parsed.eachPack()]);
  assert.deepEqual(fast.get(blobIdOf(4)), parsed.get(blobIdOf(4)));
  assert.equal(new MasterIndex().addIndexFileJson('f', bytes, () => false), 'skipped');
  // A second file listing the same packs (as a rewritten index does) is read from its bytes too.
  assert.equal(
    fast.addIndexFileJson('f2', Buffer.from(JSON.stringify(encodeIndexFile(packs.slice(1)))), () => true),
    'added',
  );
  fast.supersede('f');
  assert.equal(fast.get(blobIdOf(0)), undefined);
  assert.equal(fast.get(blobIdOf(4))?.pack, packIdOf(2));
  // Laid out otherwise: nothing of it is added, whatever was read before the difference.
  const other = [
    Buffer.from(JSON.stringify(file, null, 1)),
    bytes.subarray(0, bytes.length - 3),
    Buffer.from(bytes.toString().replace(blobIdOf(4), 'x'.repeat(64))),
    Buffer.from(bytes.toString().replace(',100,', ',1e2,')),
    Buffer.from(bytes.toString().replace('"t",', '"x",')),
    Buffer.from(`${bytes.toString()} `),
  ];
  for (const b of other) {
    const index = new MasterIndex();
    assert.equal(
      index.addIndexFileJson('g', b, () => true),
      'other',
      b.toString().slice(0, 60),
    );
    assert.equal(index.get(blobIdOf(0)), undefined);
    assert.equal(index.hasPack(packIdOf(1)), false);
    // The JSON reader then takes it (or finds it damaged).
    index.addIndexFile('g', JSON.parse(JSON.stringify(file)) as typeof file);
    assert.equal(index.get(blobIdOf(0))?.pack, packIdOf(1));
  }
});

test('where the temporary folder takes no file, the rows stay in memory and every blob is still found', (t) => {
  const saved = process.env.TMPDIR;
  process.env.TMPDIR = '/nonexistent/stackvault-test';
  t.after(() => (saved === undefined ? delete process.env.TMPDIR : (process.env.TMPDIR = saved)));
  const index = new MasterIndex({ spillAbove: 10 });
  index.addPack(packIdOf(1), pack(0, 100));
  assert.equal(index.rowsIn, 'memory');
  for (let n = 0; n < 100; n++) assert.equal(index.get(blobIdOf(n))?.offset, n * 100);
});
