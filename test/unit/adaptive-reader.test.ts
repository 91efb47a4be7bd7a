import assert from 'node:assert/strict';
import { mkdir, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { AdaptiveReader } from '../../src/util/adaptive-io.js';
import { readLinkTarget, readNames } from '../../src/util/os-path.js';
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

test('folder names and link targets come back byte for byte with blocking calls and without', async (t) => {
  const dir = await tempDir(t);
  const odd = Buffer.concat([Buffer.from(`${dir}/latin1-`), Buffer.of(0xe9), Buffer.from('.txt')]);
  await writeFile(odd, 'x');
  await symlink(Buffer.concat([Buffer.from('target-'), Buffer.of(0xff)]), join(dir, 'link'));
  await writeFile(join(dir, 'plain'), 'y');
  const fast = new AdaptiveReader();
  const slow = new AdaptiveReader(0n);
  // One window of "slow" calls turns the second reader asynchronous.
  for (let i = 0; i < 256; i++) await slow.lstat(dir);
  assert.equal(slow.blocking, false);
  for (const reader of [fast, slow]) {
    const names = await reader.names(dir);
    assert.deepEqual(names.sort(), (await readNames(dir)).sort());
    assert.equal(names.length, 3);
    assert.equal(await reader.readLink(join(dir, 'link')), await readLinkTarget(join(dir, 'link')));
    await assert.rejects(reader.readLink(join(dir, 'plain')), { code: 'EINVAL' });
  }
  assert.equal(fast.blocking, true);
});
