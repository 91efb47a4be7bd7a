import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import { objectHash } from '../../src/repo/format/crypto.js';
import { PACK_TRAILER_BYTES, PackBuilder, headerLengthFromTrailer, parsePackHeader } from '../../src/repo/format/pack.js';
import { pseudoRandom } from '../support/helpers.js';

test('a pack holds its blobs in order, whether they lie one after another in memory or apart', () => {
  const key = randomBytes(32);
  // An encoder thread's batch: blobs side by side in one buffer; then blobs of their own, a gap, and the batch again.
  const batch = pseudoRandom(1, 10_000);
  const blobs = [
    batch.subarray(0, 1000),
    batch.subarray(1000, 4000),
    batch.subarray(4000, 4100),
    pseudoRandom(2, 700),
    pseudoRandom(3, 50),
    batch.subarray(5000, 6000),
    batch.subarray(6000, 10_000),
  ];
  const builder = new PackBuilder();
  blobs.forEach((b, i) => builder.add(`${i}`.padStart(64, '0'), 'data', b.length + 1, i % 2 === 0, b));
  const { id, parts, blobs: entries } = builder.finish(key);
  const bytes = Buffer.concat(parts);
  // Four runs of blobs (the first three together, two alone, the last two together), then header and trailer.
  assert.equal(parts.length, 4 + 2);
  assert.ok(Buffer.concat(blobs).equals(bytes.subarray(0, 10_000 - 900 + 750)));
  assert.equal(id, objectHash(bytes));
  const tail = bytes.subarray(bytes.length - PACK_TRAILER_BYTES - headerLengthFromTrailer(bytes.subarray(bytes.length - PACK_TRAILER_BYTES), id));
  const parsed = parsePackHeader(tail, bytes.length, key, id);
  assert.deepEqual(
    parsed.map((b) => [b.offset, b.length]),
    blobs.reduce<Array<[number, number]>>((list, b) => [...list, [list.length ? list.at(-1)![0] + list.at(-1)![1] : 0, b.length]], []),
  );
  assert.deepEqual(
    entries.map((e) => ({ ...e })),
    parsed.map((p, i) => ({ id: p.id, type: p.type, offset: p.offset, length: p.length, rawLength: blobs[i]!.length + 1, compressed: i % 2 === 0, pack: id })),
  );
  for (const [i, b] of blobs.entries()) assert.ok(bytes.subarray(parsed[i]!.offset, parsed[i]!.offset + b.length).equals(b), `blob ${i}`);
});
