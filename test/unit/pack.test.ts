import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import { objectHash } from '../../src/repo/format/crypto.js';
import { MemoryPackBody, PACK_TRAILER_BYTES, PackBuilder, PackMemory, headerLengthFromTrailer, parsePackHeader } from '../../src/repo/format/pack.js';
import { pseudoRandom } from '../support/helpers.js';

test('a pack holds copies of its blobs in order: what it was handed may be reused at once, its memory grows for a large blob and serves the next pack', async () => {
  const key = randomBytes(32);
  const memory = new PackMemory(4096);
  // What put() was handed: a copy, and the memory itself (to see it reused).
  const stored = new Map<string, { bytes: Buffer; memory: ArrayBufferLike }>();
  const put = async (k: string, data: Uint8Array) => {
    stored.set(k, { bytes: Buffer.from(data), memory: data.buffer });
    return { created: true };
  };
  // An encoder thread's batch (blobs side by side in one buffer), blobs of their own, one larger than the pack's memory.
  const batch = pseudoRandom(1, 3000);
  const blobs = [batch.subarray(0, 1000), batch.subarray(1000, 2900), pseudoRandom(2, 700), pseudoRandom(3, 9000), pseudoRandom(4, 50)];
  const expected = blobs.map((b) => Buffer.from(b));
  const builder = new PackBuilder(new MemoryPackBody(memory, put));
  blobs.forEach((b, i) => {
    assert.equal(builder.add(`${i}`.padStart(64, '0'), 'data', b.length + 1, i % 2 === 0, b), undefined, 'copied at once');
    b.fill(0xee); // the caller's buffer goes back to its thread at once
  });
  const { id, length, blobs: entries, body } = await builder.finish(key);
  await body.store('first');
  const { bytes, memory: firstMemory } = stored.get('first')!;
  assert.equal(bytes.length, length);
  assert.ok(Buffer.concat(expected).equals(bytes.subarray(0, 12_650)));
  assert.equal(id, objectHash(bytes));
  const tail = bytes.subarray(bytes.length - PACK_TRAILER_BYTES - headerLengthFromTrailer(bytes.subarray(bytes.length - PACK_TRAILER_BYTES), id));
  const parsed = parsePackHeader(tail, bytes.length, key, id);
  assert.deepEqual(
    parsed.map((b) => [b.offset, b.length]),
    expected.reduce<Array<[number, number]>>((list, b) => [...list, [list.length ? list.at(-1)![0] + list.at(-1)![1] : 0, b.length]], []),
  );
  assert.deepEqual(
    entries.map((e) => ({ ...e })),
    parsed.map((p, i) => ({ id: p.id, type: p.type, offset: p.offset, length: p.length, rawLength: expected[i]!.length + 1, compressed: i % 2 === 0, pack: id })),
  );
  for (const [i, b] of expected.entries()) assert.ok(bytes.subarray(parsed[i]!.offset, parsed[i]!.offset + b.length).equals(b), `blob ${i}`);

  const next = new PackBuilder(new MemoryPackBody(memory, put));
  next.add('f'.repeat(64), 'tree', 10, false, pseudoRandom(5, 14_000));
  const second = await next.finish(key);
  await second.body.store('second');
  assert.ok(stored.get('second')!.memory === firstMemory, 'the grown memory of the first pack serves the next large one');
  assert.equal(second.id, objectHash(stored.get('second')!.bytes));
});