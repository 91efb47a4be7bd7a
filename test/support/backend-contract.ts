import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { backendExtra, type Backend, type ObjectInfo } from '../../src/repo/backends/backend.js';
import { tempDir } from './helpers.js';

async function listed(backend: Backend, prefix: string): Promise<ObjectInfo[]> {
  const out: ObjectInfo[] = [];
  for await (const info of backend.list(prefix)) out.push(info);
  return out.sort((a, b) => a.key.localeCompare(b.key));
}

/**
 * What every backend promises (src/repo/backends/backend.ts), as tests: each backend's
 * test file calls this with a way to make a fresh, empty backend on a real server.
 */
export function backendContract(name: string, fresh: (t: TestContext) => Promise<Backend>): void {
  test(`${name}: put is put-if-absent and never replaces`, async (t) => {
    const backend = await fresh(t);
    await backend.prepare();
    assert.deepEqual(await backend.put('index/aa', Buffer.from('first')), { created: true });
    assert.deepEqual(await backend.put('index/aa', Buffer.from('other')), { created: false });
    assert.equal((await backend.get('index/aa')).toString(), 'first');
    await assert.rejects(backend.put('index/aa', Buffer.from('longer content')), /already exists .* damaged/);
    assert.equal((await backend.get('index/aa')).toString(), 'first');
  });

  test(`${name}: concurrent puts of one key store it once`, async (t) => {
    const backend = await fresh(t);
    await backend.prepare();
    const data = randomBytes(100_000);
    const results = await Promise.all(Array.from({ length: 4 }, () => backend.put('data/cc/cc01', data)));
    assert.ok(results.some((r) => r.created));
    assert.deepEqual(await backend.get('data/cc/cc01'), data);
  });

  test(`${name}: ranges, stat, listing by prefix, delete`, async (t) => {
    const backend = await fresh(t);
    await backend.prepare();
    await backend.put('snapshots/s1', Buffer.from('0123456789'));
    await backend.put('data/ab/ab01', Buffer.from('pack one'));
    await backend.put('data/cd/cd02', Buffer.from('pack two!'));
    assert.equal((await backend.get('snapshots/s1', { offset: 3, length: 4 })).toString(), '3456');
    assert.equal((await backend.get('snapshots/s1', { offset: 0, length: 10 })).toString(), '0123456789');
    await assert.rejects(backend.get('snapshots/s1', { offset: 8, length: 4 }), /truncated/);
    await assert.rejects(backend.get('snapshots/none'), /snapshots\/none/);
    const info = await backend.stat('snapshots/s1');
    assert.equal(info?.size, 10);
    assert.ok(info && Math.abs(info.created.getTime() - Date.now()) < 10 * 60_000, 'created is the time of the upload');
    assert.equal(await backend.stat('snapshots/none'), undefined);
    assert.deepEqual((await listed(backend, 'data/')).map((i) => [i.key, i.size]), [['data/ab/ab01', 8], ['data/cd/cd02', 9]]);
    assert.deepEqual((await listed(backend, 'keys/')).map((i) => i.key), []);
    await backend.delete('data/ab/ab01');
    assert.deepEqual((await listed(backend, 'data/')).map((i) => i.key), ['data/cd/cd02']);
    await backend.delete('data/ab/ab01');
  });

  test(`${name}: a large object goes up in pieces and comes back whole (read whole, in a range, copied into a file)`, async (t) => {
    const backend = await fresh(t);
    await backend.prepare();
    const data = randomBytes(17 * 1024 * 1024 + 123);
    assert.deepEqual(await backend.put('data/ee/ee01', data), { created: true });
    assert.ok((await backend.get('data/ee/ee01')).equals(data));
    const part = await backend.get('data/ee/ee01', { offset: 9 * 1024 * 1024 - 7, length: 5 * 1024 * 1024 });
    assert.ok(part.equals(data.subarray(9 * 1024 * 1024 - 7, 14 * 1024 * 1024 - 7)));
    // Network backends copy a whole object into a file for a restore (see PackSpool).
    const download = await backendExtra(backend, 'downloadToFile');
    if (download) {
      const file = join(await tempDir(t), 'copy');
      await download('data/ee/ee01', file);
      assert.ok((await readFile(file)).equals(data));
      await assert.rejects(download('data/ee/none', join(dirname(file), 'none')));
    }
  });

  test(`${name}: a repository goes only into an empty place`, async (t) => {
    const backend = await fresh(t);
    await backend.prepare();
    await backend.put('someone/else', Buffer.from('x'));
    await assert.rejects(backend.prepare(), /not empty/);
  });
}
