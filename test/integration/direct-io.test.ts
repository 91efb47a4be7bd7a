import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { closeSync, existsSync, openSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { LocalBackend } from '../../src/repo/backends/local.js';
import { Repository } from '../../src/repo/repository.js';
import { backup } from '../../src/snapshot/backup/backup.js';
import { restore } from '../../src/snapshot/restore/restore.js';
import { compareTrees } from '../../src/sources/files/compare.js';
import { DIRECT_ALIGNMENT, openForDirectWritesSync, writeAtSync } from '../../src/util/direct-io.js';
import { makeRichTree, onMountedFileSystem, pseudoRandom, runCli, tempDir } from '../support/helpers.js';

for (const direct of [true, false]) {
  test(`pieces written at any offset, in any order, meet exactly (${direct ? 'whole blocks past the page cache' : 'all through it'})`, async (t) => {
    const file = join(await tempDir(t), 'restored');
    const content = pseudoRandom(3, 3 * 1024 * 1024 + 777);
    // Cuts on, next to and far from block edges, and pieces smaller than a block.
    const cuts = [0, 1, 100, DIRECT_ALIGNMENT - 1, DIRECT_ALIGNMENT, DIRECT_ALIGNMENT + 5, 70_000, 70_001, 1_048_576, 2_000_003, content.length];
    const pieces = cuts.slice(1).map((end, i) => ({ position: cuts[i]!, data: content.subarray(cuts[i]!, end) }));
    const fd = openSync(file, 'wx');
    const directFd = direct ? openForDirectWritesSync(file) : undefined;
    assert.equal(directFd !== undefined, direct, 'this file system takes direct writes');
    try {
      for (const i of [5, 0, 9, 2, 7, 1, 8, 3, 6, 4]) writeAtSync(fd, directFd, Buffer.from(pieces[i]!.data), pieces[i]!.position);
    } finally {
      closeSync(fd);
      if (directFd !== undefined) closeSync(directFd);
    }
    assert.ok(readFileSync(file).equals(content));
  });
}

test('a restore onto a file system that refuses direct writes (ramfs) writes through the page cache', async (t) => {
  const dir = await tempDir(t);
  const source = join(dir, 'source');
  await makeRichTree(source);
  const repo = await Repository.init(new LocalBackend(join(dir, 'repo')), { password: 'pw', immutabilityDays: 0 });
  const saved = await backup(repo, { sources: [{ name: 'data', path: source, exclusionClasses: {} }] });
  await onMountedFileSystem(
    t,
    (target) => ['-t', 'ramfs', 'ramfs', target],
    async (target) => {
      const result = await restore(repo, { id: saved.id, snapshot: saved.snapshot }, { target });
      assert.deepEqual(result.errors, []);
      const cmp = await compareTrees(source, join(target, 'data'), { owners: true });
      assert.deepEqual(cmp.differences, []);
      assert.ok(cmp.bytes > 15_000_000, `compared ${cmp.bytes} bytes`);
    },
  );
});

test('a restore smaller than 1 GiB writes its files through the page cache: written directly, each file waited for the disk', async (t) => {
  const dir = await tempDir(t);
  const probe = join(dir, 'probe');
  closeSync(openSync(probe, 'wx'));
  const directFd = openForDirectWritesSync(probe);
  if (directFd === undefined) return t.skip('this file system takes no direct writes: everything is in the page cache anyway');
  closeSync(directFd);
  const source = join(dir, 'source');
  await makeRichTree(source);
  const repo = await Repository.init(new LocalBackend(join(dir, 'repo')), { password: 'pw', immutabilityDays: 0 });
  const saved = await backup(repo, { sources: [{ name: 'data', path: source, exclusionClasses: {} }] });
  const target = join(dir, 'target');
  assert.deepEqual((await restore(repo, { id: saved.id, snapshot: saved.snapshot }, { target })).errors, []);
  // fincore (util-linux) counts a file's bytes in the page cache; a file written directly
  // has only its partial blocks there. A small file (on a writer thread) and a large one.
  for (const file of ['deep/a/b/c/d/leaf.dat', 'bin/large.bin']) {
    const path = join(target, 'data', file);
    const cached = Number(execFileSync('fincore', ['--bytes', '--noheadings', '--output', 'RES', path], { encoding: 'utf8' }).trim());
    assert.ok(cached >= statSync(path).size, `${file}: ${cached} of ${statSync(path).size} bytes in the page cache`);
  }
});

test('STACKVAULT_DIRECT_IO=off keeps everything in the page cache; a value other than on or off is refused before any work', async (t) => {
  const dir = await tempDir(t);
  const module = new URL('../../src/util/direct-io.js', import.meta.url).href;
  const flag = (setting: string) =>
    execFileSync(process.execPath, ['--input-type=module', '-e', `console.log((await import(${JSON.stringify(module)})).O_DIRECT)`], { env: { ...process.env, STACKVAULT_DIRECT_IO: setting }, encoding: 'utf8' }).trim();
  assert.equal(flag('off'), '0');
  assert.notEqual(flag('on'), '0');

  const source = join(dir, 'source');
  await makeRichTree(source);
  const env = { STACKVAULT_PASSWORD: 'pw', STACKVAULT_DIRECT_IO: 'off' };
  const repo = join(dir, 'repo');
  assert.equal((await runCli(['--quiet', 'init', '--repo', repo], { env })).code, 0);
  assert.equal((await runCli(['--quiet', 'backup', '--repo', repo, source], { env })).code, 0);
  assert.equal((await runCli(['--quiet', 'restore', 'latest', '--repo', repo, '--target', join(dir, 'target')], { env })).code, 0);
  assert.deepEqual((await compareTrees(source, join(dir, 'target', 'source'), { owners: false })).differences, []);

  const refused = await runCli(['init', '--repo', join(dir, 'other')], { env: { ...env, STACKVAULT_DIRECT_IO: 'maybe' } });
  assert.equal(refused.code, 2);
  assert.match(refused.stderr, /STACKVAULT_DIRECT_IO=maybe: expected on or off/);
  assert.equal(existsSync(join(dir, 'other')), false, 'nothing was created');
});
