import assert from 'node:assert/strict';
import { readdir, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { LocalBackend } from '../src/repo/backends/local.js';
import { IntegrityError } from '../src/util/errors.js';
import { backendContract } from './backend-contract.js';
import { pseudoRandom, tempDir } from './helpers.js';

test('put is put-if-absent: a second put leaves the object untouched', async (t) => {
  const dir = await tempDir(t);
  const backend = new LocalBackend(dir);
  await backend.prepare();
  assert.deepEqual(await backend.put('data/ab/abcd', Buffer.from('first')), { created: true });
  const before = await stat(join(dir, 'data/ab/abcd'));
  assert.deepEqual(await backend.put('data/ab/abcd', Buffer.from('other')), { created: false });
  assert.equal((await backend.get('data/ab/abcd')).toString(), 'first');
  const after = await stat(join(dir, 'data/ab/abcd'));
  assert.equal(after.ino, before.ino);
  assert.equal(after.mtimeMs, before.mtimeMs);
  assert.equal(after.mode & 0o777, 0o444, 'stored objects are read-only');
  assert.deepEqual(await readdir(join(dir, 'tmp')), [], 'no temporary file is left');
});

test('putParts stores the concatenation of its parts: thousands of small ones and ones larger than a write', async (t) => {
  const dir = await tempDir(t);
  const backend = new LocalBackend(dir);
  await backend.prepare();
  // More parts than one writev takes (IOV_MAX is 1024), and parts larger than one write group.
  const parts = [
    ...Array.from({ length: 3000 }, (_, i) => pseudoRandom(i + 1, 37 + (i % 300))),
    pseudoRandom(9001, 1_300_000),
    Buffer.alloc(0),
    pseudoRandom(9002, 600_000),
  ];
  assert.deepEqual(await backend.putParts('data/cd/cdef', parts), { created: true });
  assert.ok((await backend.get('data/cd/cdef')).equals(Buffer.concat(parts)));
  assert.deepEqual(await backend.putParts('data/cd/cdef', parts), { created: false });
  assert.deepEqual(await readdir(join(dir, 'tmp')), [], 'no temporary file is left');
});

test('an existing object of another size is reported as damaged, not silently accepted', async (t) => {
  const dir = await tempDir(t);
  const backend = new LocalBackend(dir);
  await backend.prepare();
  await backend.put('index/x', Buffer.from('12345'));
  await assert.rejects(backend.put('index/x', Buffer.from('123')), IntegrityError);
});

test('ranges, listing and stat; temporary uploads are not listed', async (t) => {
  const dir = await tempDir(t);
  const backend = new LocalBackend(dir);
  await backend.prepare();
  await backend.put('snapshots/s1', Buffer.from('0123456789'));
  await writeFile(join(dir, 'tmp', 'leftover.upload'), 'partial');
  assert.equal((await backend.get('snapshots/s1', { offset: 3, length: 4 })).toString(), '3456');
  await assert.rejects(backend.get('snapshots/s1', { offset: 8, length: 4 }), /truncated/);
  const listed = [];
  for await (const info of backend.list('snapshots/')) listed.push(info.key);
  assert.deepEqual(listed, ['snapshots/s1']);
  assert.equal((await backend.stat('snapshots/s1'))?.size, 10);
  assert.equal(await backend.stat('snapshots/none'), undefined);
  const stale = await backend.staleUploads(-1, new Date());
  assert.deepEqual(stale.map((s) => s.key), ['tmp/leftover.upload']);
});

test('a write that cannot happen names the object and the reason, and leaves nothing', async (t) => {
  const dir = await tempDir(t);
  const backend = new LocalBackend(join(dir, 'repo'));
  await backend.prepare();
  await writeFile(join(dir, 'repo', 'data'), 'a file where a folder should be');
  await assert.rejects(backend.put('data/ab/abcd', Buffer.from('x')), /cannot write data\/ab\/abcd to .*repo/);
  assert.deepEqual(await readdir(join(dir, 'repo', 'tmp')), []);
});

test('a repository is created only in a new or empty folder', async (t) => {
  const dir = await tempDir(t);
  await writeFile(join(dir, 'someones-file.txt'), 'do not mix');
  await assert.rejects(new LocalBackend(dir).prepare(), /is not empty and holds no repository/);
  assert.deepEqual(await readdir(dir), ['someones-file.txt']);
  await new LocalBackend(join(dir, 'new')).prepare();
});

backendContract('local', async (t) => new LocalBackend(join(await tempDir(t), 'repo')));
