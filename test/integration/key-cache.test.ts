import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { keyCacheFolder } from '../../src/util/key-cache.js';
import { runCli, tempDir } from '../support/helpers.js';
import { startRcloneServe } from '../support/storage-servers.js';

test(
  'through rclone, the key file that made or opened a repository is kept on this machine; a removed key or a repository made anew at the same place never opens with a kept one',
  { timeout: 240_000 },
  async (t) => {
    const server = await startRcloneServe(t, 'webdav', 'keep');
    const dir = await tempDir(t);
    const cache = join(dir, 'cache');
    const repo = 'rclone:keep:repo';
    const env = (password: string, more: Record<string, string> = {}) => ({ ...server.env, STACKVAULT_PASSWORD: password, STACKVAULT_CACHE_DIR: cache, ...more });
    const sv = (args: string[], password: string, more?: Record<string, string>) => runCli([...args, '--repo', repo], { env: env(password, more) });
    const folder = keyCacheFolder(repo, { STACKVAULT_CACHE_DIR: cache })!;
    const kept = async () => (await readdir(folder).catch(() => [] as string[])).sort();
    const listed = async (password: string) => {
      const out = await sv(['key', 'list', '--json'], password);
      assert.equal(out.code, 0, out.stderr);
      return (JSON.parse(out.stdout) as Array<{ id: string }>).map((k) => k.id).sort();
    };
    const source = join(dir, 'source');
    await mkdir(source);
    await writeFile(join(source, 'notes.txt'), 'kept keys\n');

    assert.equal((await sv(['init'], 'first password')).code, 0);
    // Kept by init: the first backup derives its key while it loads, as every later one.
    const keptByInit = await kept();
    assert.equal(keptByInit.length, 1, 'init keeps the key file it made');
    const saved = await sv(['backup', source, '--json'], 'first password');
    assert.equal(saved.code, 0, saved.stderr);
    assert.deepEqual(await kept(), await listed('first password'), 'the key file that opened it is kept');
    assert.deepEqual(keptByInit, await kept());

    // --no-cache keeps nothing.
    const elsewhere = join(dir, 'other-cache');
    assert.equal((await sv(['snapshots', '--no-cache'], 'first password', { STACKVAULT_CACHE_DIR: elsewhere })).code, 0);
    assert.equal(existsSync(elsewhere), false);

    // The password changed: its old key file, still kept here, is gone from the repository
    // and opens nothing; the new one is kept in its place.
    const changed = await sv(['key', 'passwd'], 'first password', { STACKVAULT_NEW_PASSWORD: 'second password' });
    assert.equal(changed.code, 0, changed.stderr);
    const old = await sv(['snapshots'], 'first password');
    assert.equal(old.code, 12, `the removed key must not open the repository: ${old.stdout}${old.stderr}`);
    assert.equal((await sv(['snapshots'], 'second password')).code, 0);
    assert.deepEqual(await kept(), await listed('second password'));

    // A repository made anew at the same place, with the same password: its own key opens it.
    const [before] = await kept();
    // Through the server: it caches what its folder holds.
    execFileSync('rclone', ['purge', 'keep:repo'], { env: { ...process.env, ...server.env } });
    const made = await sv(['init'], 'second password');
    assert.equal(made.code, 0, made.stderr);
    const keptByNewInit = await kept();
    assert.equal(keptByNewInit.length, 1, 'the new repository\'s key file, in place of the old one');
    assert.notDeepEqual(keptByNewInit, [before]);
    const fresh = await sv(['snapshots', '--json'], 'second password');
    assert.equal(fresh.code, 0, fresh.stderr);
    assert.deepEqual(JSON.parse(fresh.stdout), []);
    assert.deepEqual(await kept(), await listed('second password'));
    assert.notDeepEqual(await kept(), [before]);
    assert.equal((await sv(['backup', source], 'second password')).code, 0);
    const check = await sv(['check'], 'second password');
    assert.equal(check.code, 0, check.stdout + check.stderr);
  },
);
