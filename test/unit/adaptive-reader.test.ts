import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { AdaptiveReader } from '../../src/util/adaptive-io.js';
import { tempDir } from '../support/helpers.js';

async function readAll(reader: AdaptiveReader, path: string, size: number): Promise<string> {
  const file = await reader.open(path, size);
  const buf = Buffer.alloc(size + 1);
  const { bytesRead } = await file.read(buf, 0, buf.length, null);
  await file.close();
  return buf.subarray(0, bytesRead).toString();
}

test('small files are read with blocking calls while they are fast, and concurrently once storage is slow', async (t) => {
  const dir = await tempDir(t);
  await mkdir(join(dir, 'f'));
  for (let i = 0; i < 300; i++) await writeFile(join(dir, 'f', `${i}.txt`), `file ${i}\n`);
  const fast = new AdaptiveReader();
  for (let i = 0; i < 300; i++) assert.equal(await readAll(fast, join(dir, 'f', `${i}.txt`), 8), `file ${i}\n`);
  // Every call "slow": after one window of calls the reader goes asynchronous, and reads the same.
  const slow = new AdaptiveReader(0n);
  for (let i = 0; i < 300; i++) {
    assert.equal(await readAll(slow, join(dir, 'f', `${i}.txt`), 8), `file ${i}\n`);
    assert.equal((await slow.lstat(join(dir, 'f', `${i}.txt`))).size, BigInt(`file ${i}\n`.length));
  }
  assert.equal(slow.blocking, false);
  await assert.rejects(slow.lstat(join(dir, 'missing')), { code: 'ENOENT' });
  await assert.rejects(new AdaptiveReader().open(join(dir, 'missing'), 1), { code: 'ENOENT' });
});
