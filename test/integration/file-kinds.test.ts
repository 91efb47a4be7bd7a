import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chownSync, mkdirSync, readdirSync, readlinkSync, symlinkSync, writeFileSync } from 'node:fs';
import { chmod, lstat, mkdir, readdir, stat, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { test } from 'node:test';
import { LocalBackend } from '../../src/repo/backends/local.js';
import { Repository } from '../../src/repo/repository.js';
import { compareTrees } from '../../src/sources/files/compare.js';
import { restore } from '../../src/snapshot/restore/restore.js';
import { saveTree, type TreeNode } from '../../src/snapshot/tree.js';
import type { Snapshot } from '../../src/snapshot/snapshot.js';
import { onMountedFileSystem, runCli, tempDir } from '../support/helpers.js';

const ENV = { STACKVAULT_PASSWORD: 'kinds' };
const isRoot = process.getuid?.() === 0;

async function backupAndRestore(dir: string, source: string, extra: string[] = []): Promise<{ backup: Awaited<ReturnType<typeof runCli>>; restored: Awaited<ReturnType<typeof runCli>>; target: string; repo: string }> {
  const repo = join(dir, 'repo');
  const target = join(dir, 'target');
  assert.equal((await runCli(['init', '--repo', repo], { env: ENV })).code, 0);
  const backup = await runCli(['backup', '--repo', repo, ...extra, source], { env: ENV });
  const restored = await runCli(['restore', 'latest', '--repo', repo, '--target', target], { env: ENV });
  return { backup, restored, target, repo };
}

test('names that are not UTF-8 are stored and restored byte for byte', async (t) => {
  const dir = await tempDir(t);
  const source = join(dir, 'source');
  await mkdir(source);
  const raw = (...parts: Array<string | number[]>) => Buffer.concat(parts.map((p) => (typeof p === 'string' ? Buffer.from(p) : Buffer.from(p))));
  const names = [
    raw('latin1-caf', [0xe9]), // café in ISO-8859-1
    raw([0xff, 0xfe], 'bytes'),
    raw('cut-', [0xe2, 0x82]), // a UTF-8 sequence cut short
    raw('surrogate-', [0xed, 0xb2, 0x80]), // UTF-8 of a lone surrogate: not valid
    raw('replacement-', [0xef, 0xbf, 0xbd]), // a real U+FFFD: valid, must not collide
  ];
  const sourceBytes = Buffer.from(source);
  const under = (...parts: Buffer[]) => Buffer.concat([sourceBytes, ...parts.flatMap((p) => [Buffer.from('/'), p])]);
  for (const [i, name] of names.entries()) writeFileSync(under(name), `file ${i}`);
  mkdirSync(under(raw('dir-', [0xfc])));
  writeFileSync(under(raw('dir-', [0xfc]), raw('inner-', [0x80])), 'inner');
  symlinkSync(raw('target-', [0xf8]), under(raw('link-', [0xa0])));

  const { backup, restored, target } = await backupAndRestore(dir, source);
  assert.equal(backup.code, 0, backup.stderr);
  assert.equal(backup.stderr, '');
  assert.equal(restored.code, 0, restored.stderr);
  const listBytes = (p: Buffer) => readdirSync(p, { encoding: 'buffer' }).map((b) => b.toString('hex')).sort();
  const restoredRoot = Buffer.from(join(target, 'source'));
  assert.deepEqual(listBytes(restoredRoot), listBytes(sourceBytes));
  assert.deepEqual(listBytes(Buffer.concat([restoredRoot, Buffer.from('/'), raw('dir-', [0xfc])])), [raw('inner-', [0x80]).toString('hex')]);
  assert.deepEqual(readlinkSync(Buffer.concat([restoredRoot, Buffer.from('/'), raw('link-', [0xa0])]), { encoding: 'buffer' }), raw('target-', [0xf8]));
  assert.deepEqual((await compareTrees(source, join(target, 'source'))).differences, []);
});

test('FIFOs and (as root) device nodes are recreated; a socket is reported and changes the exit code', async (t) => {
  const dir = await tempDir(t);
  const source = join(dir, 'source');
  await mkdir(source);
  await writeFile(join(source, 'plain.txt'), 'plain');
  execFileSync('mkfifo', ['-m', '640', join(source, 'queue.fifo')]);
  if (isRoot) execFileSync('mknod', ['-m', '660', join(source, 'null-like'), 'c', '1', '3']);
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(join(source, 'app.sock'), resolve));
  t.after(() => server.close());

  const { backup, restored, target } = await backupAndRestore(dir, source);
  assert.equal(backup.code, 0, backup.stderr);
  assert.equal(restored.code, 3, restored.stdout + restored.stderr);
  assert.match(restored.stdout, /not recreated: \/source\/app\.sock: a socket/);
  const fifo = await lstat(join(target, 'source', 'queue.fifo'));
  assert.ok(fifo.isFIFO());
  assert.equal(fifo.mode & 0o7777, 0o640);
  if (isRoot) {
    const device = await lstat(join(target, 'source', 'null-like'));
    assert.ok(device.isCharacterDevice());
    assert.equal(device.rdev, (await lstat(join(source, 'null-like'))).rdev);
  }
  server.close();
  const cmp = await compareTrees(source, join(target, 'source'), { skip: (rel) => rel === 'app.sock' });
  assert.deepEqual(cmp.differences, []);
});

test('a sparse file comes back sparse', async (t) => {
  const dir = await tempDir(t);
  const source = join(dir, 'source');
  await mkdir(source);
  const file = join(source, 'disk.img');
  await writeFile(file, Buffer.alloc(8192, 7));
  execFileSync('truncate', ['-s', '1G', file]);
  const { backup, restored, target } = await backupAndRestore(dir, source);
  assert.equal(backup.code, 0, backup.stderr);
  assert.equal(restored.code, 0, restored.stderr);
  const st = await stat(join(target, 'source', 'disk.img'));
  assert.equal(st.size, 1 << 30);
  assert.ok(st.blocks * 512 < 16 << 20, `the restored file takes ${st.blocks * 512} bytes on disk`);
  assert.deepEqual((await compareTrees(source, join(target, 'source'))).differences, []);
});

test('restored as another user than root, set-user-ID and set-group-ID bits are dropped, as tar does', async (t) => {
  if (!isRoot) return t.skip('needs root to make the files and to run as another user');
  const dir = await tempDir(t);
  await chmod(dir, 0o755);
  const source = join(dir, 'source');
  await mkdir(source);
  await writeFile(join(source, 'suid'), '#!/bin/sh\n');
  await chmod(join(source, 'suid'), 0o4755);
  await writeFile(join(source, 'sgid'), '#!/bin/sh\n');
  await chmod(join(source, 'sgid'), 0o2755);
  await mkdir(join(source, 'shared'));
  await chmod(join(source, 'shared'), 0o2775);
  const repo = join(dir, 'repo');
  assert.equal((await runCli(['init', '--repo', repo], { env: ENV })).code, 0);
  assert.equal((await runCli(['backup', '--repo', repo, source], { env: ENV })).code, 0);
  execFileSync('chmod', ['-R', 'a+rX', repo]);
  const target = join(dir, 'target');
  mkdirSync(target);
  chownSync(target, 65534, 65534);
  const restored = await runCli(['restore', 'latest', '--repo', repo, '--target', target], { env: ENV, uid: 65534, gid: 65534 });
  assert.equal(restored.code, 0, restored.stderr);
  assert.equal((await stat(join(target, 'source', 'suid'))).mode & 0o7777, 0o755);
  assert.equal((await stat(join(target, 'source', 'sgid'))).mode & 0o7777, 0o755);
  assert.equal((await stat(join(target, 'source', 'shared'))).mode & 0o7777, 0o775);
});

test('a forged tree that names one entry twice (a folder, then a symlink out of the target) writes nothing outside the target', async (t) => {
  const dir = await tempDir(t);
  const outside = join(dir, 'outside');
  await mkdir(outside);
  await chmod(outside, 0o755);
  const repo = await Repository.init(new LocalBackend(join(dir, 'repo')), { password: 'pw', immutabilityDays: 0 });
  const writer = repo.newBlobWriter();
  const now = (BigInt(Date.now()) * 1_000_000n).toString();
  const meta = { uid: process.getuid?.() ?? 0, gid: process.getgid?.() ?? 0, mtime: now, ctime: now, inode: '1', dev: '1', nlink: 1 };
  const files: TreeNode[] = [];
  for (let i = 0; i < 200; i++) {
    const content = Buffer.from(`payload ${i}`);
    files.push({ name: `f${i}`, type: 'file', mode: 0o644, ...meta, size: content.length, content: [(await writer.save('data', content)).id] });
  }
  const inner = await saveTree(writer, { nodes: files });
  for (const order of [['dir', 'symlink'], ['symlink', 'dir']]) {
    const nodes: TreeNode[] = order.map((kind) =>
      kind === 'dir' ? { name: 'x', type: 'dir', mode: 0o777, ...meta, subtree: inner } : { name: 'x', type: 'symlink', mode: 0o777, ...meta, target: outside },
    );
    const sourceTree = await saveTree(writer, { nodes });
    const root = await saveTree(writer, { nodes: [{ name: 'data', type: 'dir', mode: 0o755, ...meta, subtree: sourceTree }] });
    const snapshot: Snapshot = { version: 1, time: new Date().toISOString(), host: 'forger', username: 'x', stack: null, tags: [], program: 'forged', parent: null, tree: root, sources: [], durationMs: 0 };
    const id = await writer.commit('snapshots', snapshot);
    const result = await restore(repo, { id, snapshot }, { target: join(dir, `target-${order.join('-')}`) });
    assert.ok(result.errors.some((e) => /lists "x" twice/.test(e.message)), `${order}: ${JSON.stringify(result.errors)}`);
    assert.deepEqual(await readdir(outside), [], `${order}: something was written outside the target`);
    assert.equal((await stat(outside)).mode & 0o7777, 0o755, `${order}: the folder outside got the forged folder's mode`);
  }
});

test('--one-file-system keeps other mounts as empty folders; /proc-like file systems are never read', async (t) => {
  const dir = await tempDir(t);
  const source = join(dir, 'source');
  await mkdir(join(source, 'mounted'), { recursive: true });
  await mkdir(join(source, 'proc'));
  await writeFile(join(source, 'own.txt'), 'own');
  await onMountedFileSystem(t, (d) => ['-t', 'tmpfs', '-o', 'size=8m', 'tmpfs', d], async (tmpfs) => {
    await writeFile(join(tmpfs, 'elsewhere.txt'), 'on another file system');
    execFileSync('mount', ['--bind', tmpfs, join(source, 'mounted')]);
    execFileSync('mount', ['-t', 'proc', 'proc', join(source, 'proc')]);
    try {
      const repo = join(dir, 'repo');
      assert.equal((await runCli(['init', '--repo', repo], { env: ENV })).code, 0);
      const whole = await runCli(['backup', '--repo', repo, '--json', '--no-progress', source], { env: ENV, timeoutMs: 60_000 });
      assert.equal(whole.code, 0, whole.stderr);
      const summary = JSON.parse(whole.stdout.trim().split('\n').at(-1)!) as { sources: Array<{ excluded: Array<{ class: string; count: number }> }> };
      assert.deepEqual(summary.sources[0]!.excluded, [{ class: 'pseudo file system', count: 1, bytes: 0 }]);
      const listed = await runCli(['ls', '--repo', repo, 'latest', '/source'], { env: ENV });
      assert.match(listed.stdout, /mounted\/elsewhere\.txt/);
      assert.doesNotMatch(listed.stdout, /proc\/self|proc\/\d/);

      const one = await runCli(['backup', '--repo', repo, '--one-file-system', '--quiet', source], { env: ENV });
      assert.equal(one.code, 0, one.stderr);
      const listedOne = await runCli(['ls', '--repo', repo, 'latest', '/source'], { env: ENV });
      assert.match(listedOne.stdout, /\/source\/mounted\b/);
      assert.doesNotMatch(listedOne.stdout, /elsewhere\.txt/);
      assert.match(listedOne.stdout, /own\.txt/);
    } finally {
      execFileSync('umount', [join(source, 'proc')]);
      execFileSync('umount', [join(source, 'mounted')]);
    }
  });
});
