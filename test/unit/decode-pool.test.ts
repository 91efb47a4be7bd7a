import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { closeSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { newMasterKey, seal, blobId } from '../../src/repo/format/crypto.js';
import { DecodePool } from '../../src/repo/decode/decode-pool.js';
import { startWriterThreads } from '../../src/snapshot/restore/small-file-writers.js';
import type { WriterSetup } from '../../src/snapshot/restore/small-file-batch.js';
import { IntegrityError, StackvaultError } from '../../src/util/errors.js';
import { pseudoRandom, pseudoText, tempDir } from '../support/helpers.js';

test('a decode pool returns each blob or why it is damaged, and fails (not hangs) once its threads are gone', async () => {
  const master = newMasterKey(true);
  const pool = new DecodePool(master, 1);
  const good = Buffer.from('hello, stored blob');
  const stored = seal(master.encryptionKey, good);
  const damaged = Buffer.from(stored);
  damaged[20]! ^= 1;
  const blob = (length: number) => ({ id: blobId(master.idKey, good), pack: 'p'.repeat(64), compressed: false, rawLength: good.length, length });
  const results = await pool.decode([blob(stored.length), blob(damaged.length)], Buffer.concat([stored, damaged]));
  assert.deepEqual(results[0], good);
  assert.ok(results[1] instanceof IntegrityError && /damaged/.test(results[1].message));

  for (const slot of (pool as unknown as { pool: { slots: Array<{ worker: { terminate(): Promise<number> } }> } }).pool.slots) await slot.worker.terminate();
  await assert.rejects(pool.decode([blob(stored.length)], Buffer.from(stored)), (err: Error) => err instanceof StackvaultError && /decode thread stopped/.test(err.message));
  await pool.close();
});

test('a pack verified from its file by a decode thread: one it cannot read whole is said unreadable, not damaged', async (t) => {
  const master = newMasterKey(true);
  const pool = new DecodePool(master, 1);
  t.after(() => pool.close());
  const dir = await tempDir(t);
  const missing = await pool.verifyFile('p'.repeat(64), join(dir, 'gone'), 1000, []);
  assert.match(missing.unreadable ?? '', /ENOENT|no such file/);
  // Shorter than the listing said: the file changed after it was listed.
  const short = join(dir, 'short');
  writeFileSync(short, Buffer.alloc(500));
  const truncated = await pool.verifyFile('p'.repeat(64), short, 1000, []);
  assert.match(truncated.unreadable ?? '', /truncated/);
  // Whole, and not the pack it is named for.
  const whole = await pool.verifyFile('p'.repeat(64), short, 500, []);
  assert.equal(whole.unreadable, undefined);
  assert.equal(whole.hashOk, false);
});

test("a restore's writer threads write decoded blobs into an open file at their positions, and a failed write is an error of its own, not damage", async (t) => {
  const master = newMasterKey(true);
  // The threads a restore decodes on: the repository's decoding, delivering into files (snapshot/restore/file-places.ts).
  // They start before they know the keys (a restore starts them while the repository opens): one comes later.
  const writers = startWriterThreads(1);
  writers.setup({ setup: true, encryptionKey: master.encryptionKey, idKey: master.idKey, replaceExisting: false, directWrites: true } satisfies WriterSetup);
  writers.grow(2);
  const pool = new DecodePool(writers);
  t.after(() => writers.close());
  const dir = await tempDir(t);
  const parts = [pseudoRandom(1, 300_000), pseudoText(2, 1_000), pseudoRandom(3, 70_000)];
  const stored = parts.map((p) => seal(master.encryptionKey, p));
  const request = (i: number, deliverTo: { fd: number; position: number }) => ({
    id: blobId(master.idKey, parts[i]!),
    pack: 'p'.repeat(64),
    compressed: false,
    rawLength: parts[i]!.length,
    length: stored[i]!.length,
    deliverTo,
  });
  const file = join(dir, 'out');
  const fd = openSync(file, 'wx');
  try {
    // Out of order, across two messages (and so maybe two threads).
    const positions = [0, parts[0]!.length, parts[0]!.length + parts[1]!.length];
    const [second, rest] = await Promise.all([
      pool.decode([request(2, { fd, position: positions[2]! })], Buffer.from(stored[2]!)),
      pool.decode([request(0, { fd, position: 0 }), request(1, { fd, position: positions[1]! })], Buffer.concat([stored[0]!, stored[1]!])),
    ]);
    assert.deepEqual([...rest, ...second], [parts[0]!.length, parts[1]!.length, parts[2]!.length]);
  } finally {
    closeSync(fd);
  }
  assert.deepEqual(readFileSync(file), Buffer.concat(parts));

  const readOnly = openSync(file, 'r');
  try {
    const [failed] = await pool.decode([request(1, { fd: readOnly, position: 0 })], Buffer.from(stored[1]!));
    assert.ok(failed instanceof Error && !(failed instanceof IntegrityError), `want a write error, got ${String(failed)}`);
    assert.equal((failed as NodeJS.ErrnoException).code, 'EBADF');
  } finally {
    closeSync(readOnly);
  }
  assert.deepEqual(readFileSync(file), Buffer.concat(parts), 'the failed write changed nothing');

  // The repository's own decode threads write no files: a delivery fails there, as an error, not damage.
  const own = new DecodePool(master, 1);
  t.after(() => own.close());
  const out = openSync(join(dir, 'untouched'), 'wx');
  try {
    const [refused] = await own.decode([request(0, { fd: out, position: 0 })], Buffer.from(stored[0]!));
    assert.ok(refused instanceof Error && !(refused instanceof IntegrityError) && /nowhere to deliver/.test(refused.message), String(refused));
  } finally {
    closeSync(out);
  }
  assert.equal(readFileSync(join(dir, 'untouched')).length, 0);
});

test("a restore's writer threads hash a file (a pack brought over), and a file they cannot read fails the hash, not the thread", async (t) => {
  const writers = startWriterThreads(1);
  const master = newMasterKey(true);
  writers.setup({ setup: true, encryptionKey: master.encryptionKey, idKey: master.idKey, replaceExisting: false, directWrites: true } satisfies WriterSetup);
  const pool = new DecodePool(writers);
  t.after(() => writers.close());
  const dir = await tempDir(t);
  // Larger than the thread's read buffer, and not a multiple of it.
  const bytes = pseudoRandom(5, 2_500_003);
  writeFileSync(join(dir, 'pack'), bytes);
  assert.equal(await pool.hashFile(join(dir, 'pack')), createHash('sha256').update(bytes).digest('hex'));
  await assert.rejects(pool.hashFile(join(dir, 'missing')), /hashing .*missing failed: .*ENOENT/);
  writeFileSync(join(dir, 'empty'), '');
  assert.equal(await pool.hashFile(join(dir, 'empty')), createHash('sha256').digest('hex'), 'the thread still answers');
});
