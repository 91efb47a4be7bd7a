import assert from 'node:assert/strict';
import { test } from 'node:test';
import { newMasterKey, seal, blobId } from '../src/repo/crypto.js';
import { DecodePool } from '../src/repo/decode-pool.js';
import { IntegrityError, StackvaultError } from '../src/util/errors.js';

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
