import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { backendExtra } from '../../src/repo/backends/backend.js';
import { lazyBackend } from '../../src/repo/backends/lazy.js';
import { LocalBackend } from '../../src/repo/backends/local.js';
import { withRetries } from '../../src/repo/backends/retry.js';
import { TransientError } from '../../src/repo/backends/transient.js';
import { Repository } from '../../src/repo/repository.js';
import { backendContract } from '../support/backend-contract.js';
import { tempDir } from '../support/helpers.js';
import { MemoryBackend } from '../support/memory-backend.js';

backendContract('memory', async () => new MemoryBackend());
backendContract('memory behind lazy loading and retries', async () => withRetries(lazyBackend('memory:', async () => new MemoryBackend())));

test('a backend behind lazy loading and retries keeps its extras: a folder still lends its files and lists stale uploads', async (t) => {
  const dir = await tempDir(t);
  const wrapped = withRetries(lazyBackend('folder', async () => new LocalBackend(join(dir, 'repo'))));
  // The wrappers used to forward three and five of seven optional methods by hand.
  const staleUploads = await backendExtra(wrapped, 'staleUploads');
  const localFile = await backendExtra(wrapped, 'localFile');
  assert.ok(staleUploads && localFile, 'the folder extras pass through both wrappers');
  await wrapped.prepare();
  assert.deepEqual(await wrapped.put('data/ab/ab01', Buffer.from('one two')), { created: true });
  assert.deepEqual(await staleUploads(0, new Date()), []);
  assert.equal(localFile('data/ab/ab01'), join(dir, 'repo', 'data', 'ab', 'ab01'));
  assert.equal(await backendExtra(wrapped, 'extendRetention'), undefined, 'a folder has no retention locks');

  const repo = await Repository.init(withRetries(lazyBackend('folder', async () => new LocalBackend(join(dir, 'repo2')))), { password: 'pw', immutabilityDays: 0 });
  assert.ok(repo.packsAreLocal, 'a repository on a wrapped folder still reads packs straight from their files');
});

test('an extra of the backend behind the retries is retried like the core methods', async () => {
  const memory = new MemoryBackend();
  const locked: string[] = [];
  let failures = 2;
  Object.assign(memory, {
    async extendRetention(key: string) {
      if (failures-- > 0) throw new TransientError('503 Slow Down');
      locked.push(key);
    },
  });
  const wrapped = withRetries(lazyBackend('memory:', async () => memory), { baseDelayMs: 1, maxDelayMs: 2 });
  const extend = await backendExtra(wrapped, 'extendRetention');
  assert.ok(extend);
  await extend('data/ab/ab01', new Date());
  assert.deepEqual(locked, ['data/ab/ab01']);
  const failing = withRetries(memory, { attempts: 2, baseDelayMs: 1, maxDelayMs: 2 });
  failures = 5;
  await assert.rejects((await backendExtra(failing, 'extendRetention'))!('data/ab/ab02', new Date()), /extending the lock of data\/ab\/ab02 .* failed 2 times/);
});
