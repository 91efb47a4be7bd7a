import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { chmod, mkdir, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { openBackend } from '../../src/repo/backends/open.js';
import { deriveKeysEarly, takeEarlyKey } from '../../src/repo/early-keys.js';
import { keepKeyFile, keyCacheFolder, keyFilesIn } from '../../src/util/key-cache.js';
import { Repository } from '../../src/repo/repository.js';
import { tempDir } from '../support/helpers.js';

async function newRepository(dir: string, password: string) {
  const backend = openBackend(dir);
  await Repository.init(backend, { password, immutabilityDays: 0 });
  const [keyFile] = keyFilesIn(join(dir, 'keys'), 2);
  return { backend, keyFile: keyFile! };
}

test('a key derived before the repository is opened opens it, once, and only with the same password', async (t) => {
  const dir = await tempDir(t);
  const { backend, keyFile } = await newRepository(join(dir, 'repo'), 'right password');

  deriveKeysEarly([keyFile], 'right password');
  const repo = await Repository.open(backend, 'right password');
  assert.equal(repo.openedWithKey, keyFile.id);
  assert.equal(takeEarlyKey(keyFile.id, 'right password'), undefined, 'the open took the early derivation');

  // Derived with another password (the command was given a different one): not taken, and
  // the repository still opens with the password it was given.
  deriveKeysEarly([keyFile], 'a guess');
  const again = await Repository.open(backend, 'right password');
  assert.equal(again.openedWithKey, keyFile.id);
  assert.ok(takeEarlyKey(keyFile.id, 'a guess'), 'the guess was left alone');
  await assert.rejects(Repository.open(backend, 'wrong password'), /wrong password|does not open/i);

  // A key file asking for more than stackvault would ever choose is not guessed with.
  const costly = JSON.parse(keyFile.bytes.toString('utf8')) as { N: number };
  costly.N = 2 ** 30;
  const planted = Buffer.from(JSON.stringify(costly));
  const id = createHash('sha256').update(planted).digest('hex');
  deriveKeysEarly([{ id, bytes: planted }], 'right password');
  assert.equal(takeEarlyKey(id, 'right password'), undefined);
});

test('a key file kept from another repository at the same location is never used: the repository opens with its own key', async (t) => {
  const dir = await tempDir(t);
  const before = await newRepository(join(dir, 'before'), 'pw');
  const now = await newRepository(join(dir, 'now'), 'pw');
  const stored = await Repository.open(now.backend, 'pw');

  deriveKeysEarly([before.keyFile], 'pw');
  const repo = await Repository.open(now.backend, 'pw');
  assert.equal(repo.openedWithKey, now.keyFile.id);
  assert.deepEqual(repo.master, stored.master);
  assert.notDeepEqual(repo.master, await Repository.open(before.backend, 'pw').then((r) => r.master));
});

test('the key cache keeps the key file that opened a repository, forgets those it no longer lists, and ignores damaged ones', async (t) => {
  const dir = await tempDir(t);
  const cache = keyCacheFolder('rclone:backup:acme', { STACKVAULT_CACHE_DIR: join(dir, 'cache') })!;
  assert.equal(cache, keyCacheFolder('rclone:backup:acme', { STACKVAULT_CACHE_DIR: join(dir, 'cache') }));
  assert.notEqual(cache, keyCacheFolder('rclone:backup:other', { STACKVAULT_CACHE_DIR: join(dir, 'cache') }));
  assert.equal(keyCacheFolder('rclone:backup:acme', { HOME: '/home/op' }), keyCacheFolder('rclone:backup:acme', { XDG_CACHE_HOME: '/home/op/.cache' }));
  assert.equal(keyCacheFolder('x', {}), undefined, 'no home, no cache');

  const first = await newRepository(join(dir, 'first'), 'pw');
  const second = await newRepository(join(dir, 'second'), 'pw');
  keepKeyFile(cache, first.keyFile, new Set([first.keyFile.id]));
  assert.deepEqual(keyFilesIn(cache, 2), [first.keyFile]);
  assert.equal((await stat(cache)).mode & 0o777, 0o700);
  assert.equal((await stat(join(cache, first.keyFile.id))).mode & 0o777, 0o600);

  // The repository now lists only the second key: the first is forgotten.
  keepKeyFile(cache, second.keyFile, new Set([second.keyFile.id]));
  assert.deepEqual(await readdir(cache), [second.keyFile.id]);

  // Bytes that do not hash to their name are not a key file.
  await writeFile(join(cache, second.keyFile.id), Buffer.concat([second.keyFile.bytes, Buffer.from(' ')]));
  assert.deepEqual(keyFilesIn(cache, 2), []);
  assert.deepEqual(keyFilesIn(join(dir, 'missing'), 2), []);

  // A cache that cannot be written changes nothing and throws nothing.
  if (process.getuid?.() !== 0) {
    const readOnly = join(dir, 'read-only');
    await mkdir(readOnly);
    await chmod(readOnly, 0o500);
    keepKeyFile(join(readOnly, 'keys', 'x'), first.keyFile, new Set([first.keyFile.id]));
  }
  keepKeyFile(join(dir, 'first', 'keys', first.keyFile.id, 'below-a-file'), first.keyFile, new Set());
  assert.deepEqual(await readFile(join(dir, 'first', 'keys', first.keyFile.id)), first.keyFile.bytes);
});
