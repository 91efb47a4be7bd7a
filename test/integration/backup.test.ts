import assert from 'node:assert/strict';
import { appendFile, chmod, lstat, mkdir, readdir, readlink, rm, symlink, writeFile } from 'node:fs/promises';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { test } from 'node:test';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { LocalBackend } from '../../src/repo/backends/local.js';
import type { ObjectFile } from '../../src/repo/backends/backend.js';
import { Repository } from '../../src/repo/repository.js';
import { resolveExclusionClasses } from '../../src/sources/files/exclusion-classes.js';
import { backup } from '../../src/snapshot/backup/backup.js';
import { check } from '../../src/snapshot/maintenance/check.js';
import { rebuildIndex } from '../../src/repo/maintenance/repair-index.js';
import { restore } from '../../src/snapshot/restore/restore.js';
import { listSnapshots } from '../../src/snapshot/snapshot.js';
import { TreeLoader, sameNodes } from '../../src/snapshot/tree.js';
import { walkTree } from '../../src/snapshot/walk.js';
import { compareTrees } from '../../src/sources/files/compare.js';
import { makeRichTree, onSmallExt4, pseudoRandom, pseudoText, runCli, tempDir } from '../support/helpers.js';

async function stackFolder(root: string): Promise<void> {
  await mkdir(join(root, 'prompts/en'), { recursive: true });
  await mkdir(join(root, 'recordings/2026/11'), { recursive: true });
  await mkdir(join(root, 'spool/monitor'), { recursive: true });
  await mkdir(join(root, 'logs'), { recursive: true });
  await writeFile(join(root, 'prompts/en/welcome.wav'), pseudoRandom(1, 40_000));
  await writeFile(join(root, 'recordings/2026/11/call-1.wav'), pseudoRandom(2, 100_000));
  await writeFile(join(root, 'recordings/2026/11/call-2.wav'), pseudoRandom(3, 50_000));
  await writeFile(join(root, 'spool/monitor/call-3.wav'), pseudoRandom(4, 30_000));
  await writeFile(join(root, 'logs/app.log'), pseudoText(5, 10_000));
  await writeFile(join(root, 'server.log'), pseudoText(6, 2_000));
  await writeFile(join(root, 'server.log.1'), pseudoText(7, 1_000));
  await writeFile(join(root, 'settings.ini'), 'a=1\n');
  await writeFile(join(root, 'cache.tmp'), 'x');
}

async function paths(repo: Repository, tree: string): Promise<string[]> {
  const out: string[] = [];
  for await (const e of walkTree(new TreeLoader(repo), tree)) out.push(e.path);
  return out;
}

test('exclusion classes leave out recordings and logs by default, and the snapshot records count, bytes and class', async (t) => {
  const dir = await tempDir(t);
  const src = join(dir, 'stack');
  await stackFolder(src);
  const repo = await Repository.init(new LocalBackend(join(dir, 'repo')), { password: null, immutabilityDays: 0 });
  const saved = await backup(repo, { sources: [{ name: 'data', path: src, exclude: ['*.tmp'] }] });
  const stored = await paths(repo, saved.snapshot.tree);
  assert.ok(stored.includes('/data/prompts/en/welcome.wav'), 'prompts are not recordings');
  assert.ok(stored.includes('/data/settings.ini'));
  for (const p of stored) assert.doesNotMatch(p, /recordings\/|monitor\/|\.log|cache\.tmp/);
  const excluded = Object.fromEntries(saved.snapshot.sources[0]!.excluded.map((e) => [e.class, [e.count, e.bytes]]));
  assert.deepEqual(excluded, { recordings: [3, 180_000], logs: [3, 13_000], exclude: [1, 1] });
  assert.deepEqual(Object.keys(saved.snapshot.sources[0]!.exclusionClasses).sort(), ['logs', 'recordings']);
});

test('a stack can change a class or switch it off', async (t) => {
  const dir = await tempDir(t);
  const src = join(dir, 'stack');
  await stackFolder(src);
  const repo = await Repository.init(new LocalBackend(join(dir, 'repo')), { password: null, immutabilityDays: 0 });
  const classes = resolveExclusionClasses({ logs: false, recordings: ['recordings/'] });
  const saved = await backup(repo, { sources: [{ name: 'data', path: src, exclusionClasses: classes }] });
  const stored = await paths(repo, saved.snapshot.tree);
  assert.ok(stored.includes('/data/logs/app.log'));
  assert.ok(stored.includes('/data/spool/monitor/call-3.wav'));
  assert.ok(!stored.some((p) => p.includes('/recordings/')));
  assert.deepEqual(saved.snapshot.sources[0]!.excluded, [{ class: 'recordings', count: 2, bytes: 150_000 }]);
});

test('include patterns keep only what they name', async (t) => {
  const dir = await tempDir(t);
  const src = join(dir, 'stack');
  await stackFolder(src);
  const repo = await Repository.init(new LocalBackend(join(dir, 'repo')), { password: null, immutabilityDays: 0 });
  const saved = await backup(repo, { sources: [{ name: 'data', path: src, include: ['prompts/', '*.ini'] }] });
  assert.deepEqual((await paths(repo, saved.snapshot.tree)).sort(), ['/data', '/data/prompts', '/data/prompts/en', '/data/prompts/en/welcome.wav', '/data/settings.ini']);
});

test('unchanged files are not re-read; changed ones are', async (t) => {
  const dir = await tempDir(t);
  const src = join(dir, 'tree');
  await makeRichTree(src);
  const repo = await Repository.init(new LocalBackend(join(dir, 'repo')), { password: 'pw', immutabilityDays: 0 });
  const spec = [{ name: 'data', path: src, exclusionClasses: {} }];
  const first = await backup(repo, { sources: spec });
  const second = await backup(repo, { sources: spec });
  const s2 = second.snapshot.sources[0]!.stats;
  assert.equal(second.snapshot.parent, first.id);
  assert.equal(s2.bytesRead, 0);
  assert.equal(s2.unchangedFiles, s2.files);
  assert.equal(second.snapshot.tree, first.snapshot.tree, 'an unchanged tree is stored as the same tree');

  await appendFile(join(src, 'docs/text.txt'), 'one more line\n');
  const third = await backup(repo, { sources: spec });
  const s3 = third.snapshot.sources[0]!.stats;
  assert.equal(s3.changedFiles, 1);
  assert.equal(s3.unchangedFiles, s3.files - 1);
  assert.equal(s3.bytesRead, 3_000_000 + 'one more line\n'.length);
  assert.ok(s3.bytesAdded < 1_500_000, `a small change added ${s3.bytesAdded} bytes`);

  const forced = await backup(repo, { sources: spec, parent: null });
  assert.ok(forced.snapshot.sources[0]!.stats.bytesRead > 15_000_000, 'without a parent every file is read');
});

test('a folder keeps its stored tree only while every entry is the same', async (t) => {
  const dir = await tempDir(t);
  const src = join(dir, 'tree');
  await makeRichTree(src);
  const repo = await Repository.init(new LocalBackend(join(dir, 'repo')), { password: 'pw', immutabilityDays: 0 });
  const spec = [{ name: 'data', path: src, exclusionClasses: {} }];
  const subtree = async (snapshotTree: string, path: string[]) => {
    const loader = new TreeLoader(repo);
    let id = snapshotTree;
    for (const name of path) id = (await loader.load(id)).nodes.find((n) => n.name === name)!.subtree!;
    return id;
  };
  const first = await backup(repo, { sources: spec });
  // Only metadata changes, no content: a mode, a removed link, a symlink's target.
  await chmod(join(src, 'bin/tool.sh'), 0o700);
  await rm(join(src, 'names/hardlink-to-small'));
  await rm(join(src, 'names/rel-link'));
  await symlink('../docs/text.txt', join(src, 'names/rel-link'));
  const second = await backup(repo, { sources: spec });
  assert.equal(await subtree(second.snapshot.tree, ['data', 'deep']), await subtree(first.snapshot.tree, ['data', 'deep']));
  assert.notEqual(await subtree(second.snapshot.tree, ['data', 'bin']), await subtree(first.snapshot.tree, ['data', 'bin']));
  assert.notEqual(await subtree(second.snapshot.tree, ['data', 'names']), await subtree(first.snapshot.tree, ['data', 'names']));
  const target = join(dir, 'restored');
  await restore(repo, { id: second.id, snapshot: second.snapshot }, { target });
  assert.equal((await lstat(join(target, 'data/bin/tool.sh'))).mode & 0o777, 0o700);
  assert.equal(await readlink(join(target, 'data/names/rel-link')), '../docs/text.txt');
  await assert.rejects(lstat(join(target, 'data/names/hardlink-to-small')), { code: 'ENOENT' });
});

test('stored trees match by value, whatever the order of their fields', () => {
  const node = { name: 'a', type: 'file' as const, mode: 0o644, uid: 0, gid: 0, mtime: '1', ctime: '2', inode: '3', dev: '4', nlink: 1, size: 5, content: ['x', 'y'] };
  const reordered = JSON.parse(JSON.stringify({ content: ['x', 'y'], size: 5, nlink: 1, dev: '4', inode: '3', ctime: '2', mtime: '1', gid: 0, uid: 0, mode: 0o644, type: 'file', name: 'a' }));
  assert.ok(sameNodes([node], [reordered]));
  assert.ok(!sameNodes([node], [{ ...node, content: ['x', 'z'] }]));
  assert.ok(!sameNodes([node], [{ ...node, content: ['x'] }]));
  assert.ok(!sameNodes([node], [{ ...node, rdev: 0 }]));
  assert.ok(!sameNodes([node], [node, node]));
});

test('a backup long enough to hand files to the encoder thread (after it starts) restores byte-equal', async (t) => {
  const dir = await tempDir(t);
  const src = join(dir, 'tree');
  // Thousands of small files and some large ones: the first go through this thread while
  // the encoder thread starts, the rest through its queue and batches.
  for (let d = 0; d < 40; d++) {
    await mkdir(join(src, `d${d}`), { recursive: true });
    for (let f = 0; f < 60; f++) await writeFile(join(src, `d${d}`, `s${f}.txt`), pseudoText(d * 100 + f, 200 + ((d * 7 + f * 13) % 3000)));
    await writeFile(join(src, `d${d}`, 'large.bin'), d % 2 ? pseudoRandom(d, 300_000) : pseudoText(d, 700_000));
  }
  const repo = await Repository.init(new LocalBackend(join(dir, 'repo')), { password: 'pw', immutabilityDays: 0 });
  const saved = await backup(repo, { sources: [{ name: 'data', path: src, exclusionClasses: {} }] });
  assert.equal(saved.errorCount, 0);
  assert.equal(saved.snapshot.sources[0]!.stats.files, 40 * 61);
  assert.deepEqual((await check(repo, { readData: true })).errors, []);
  const target = join(dir, 'restored');
  await restore(repo, { id: saved.id, snapshot: saved.snapshot }, { target });
  assert.deepEqual((await compareTrees(src, join(target, 'data'), { owners: false })).differences, []);
});

test('unreadable entries are reported, the rest is saved, and the CLI exits 3', async (t) => {
  const dir = await tempDir(t);
  const { chmod } = await import('node:fs/promises');
  // As root every file is readable, so the backup runs as an unprivileged user then.
  const asUser = process.getuid?.() === 0 ? { uid: 65534, gid: 65534 } : {};
  await chmod(dir, 0o777);
  const src = join(dir, 'tree');
  await mkdir(src);
  await chmod(src, 0o755);
  await writeFile(join(src, 'ok.txt'), 'fine');
  await chmod(join(src, 'ok.txt'), 0o644);
  await writeFile(join(src, 'locked.txt'), 'secret');
  await chmod(join(src, 'locked.txt'), 0);
  const repo = join(dir, 'repo');
  assert.equal((await runCli(['init', '--repo', repo, '--no-encryption'], asUser)).code, 0);
  const result = await runCli(['backup', '--repo', repo, '--json', src], asUser);
  assert.equal(result.code, 3, result.stderr);
  const summary = JSON.parse(result.stdout.trim().split('\n').pop()!) as { error_count: number; sources: Array<{ errors: Array<{ path: string }> }> };
  assert.equal(summary.error_count, 1);
  assert.equal(summary.sources[0]!.errors[0]!.path, '/tree/locked.txt');
  const listed = await runCli(['ls', '--repo', repo, 'latest'], asUser);
  assert.deepEqual(listed.stdout.trim().split('\n'), ['/tree', '/tree/ok.txt']);
  // The snapshot list says which snapshots are not whole, long after the backup's summary scrolled away.
  const snapshots = await runCli(['snapshots', '--repo', repo], asUser);
  assert.match(snapshots.stdout, /^ID .* Problems +Sources$/m);
  assert.match(snapshots.stdout, / 1 unreadable +tree \(/);
  const json = JSON.parse((await runCli(['snapshots', '--repo', repo, '--json'], asUser)).stdout) as Array<{ error_count: number; changed_while_read_count: number }>;
  assert.deepEqual(json.map((s) => [s.error_count, s.changed_while_read_count]), [[1, 0]]);
});

test('a file written to while the backup reads it is saved as read, named, and the CLI exits 3; the next backup, undisturbed, exits 0', async (t) => {
  const dir = await tempDir(t);
  const src = join(dir, 'tree');
  await mkdir(src);
  await writeFile(join(src, 'steady.txt'), 'steady');
  const live = join(src, 'app.db');
  // Large enough that reading it takes far longer than the writer's next append.
  await writeFile(live, pseudoRandom(9, 48 << 20));
  const repo = join(dir, 'repo');
  assert.equal((await runCli(['init', '--repo', repo, '--no-encryption'])).code, 0);
  // An application writing its store while the backup runs: appends without pause.
  const writer = spawn(process.execPath, ['-e', `const fs = require('fs'); const fd = fs.openSync(${JSON.stringify(live)}, 'a'); const b = Buffer.alloc(512, 120); process.stdout.write('go\\n'); for (;;) fs.writeSync(fd, b);`], { stdio: ['ignore', 'pipe', 'inherit'] });
  t.after(() => writer.kill('SIGKILL'));
  await new Promise((resolve) => writer.stdout!.once('data', resolve));
  const result = await runCli(['backup', '--repo', repo, '--json', src]);
  writer.kill('SIGKILL');
  await new Promise((resolve) => writer.once('exit', resolve));
  assert.equal(result.code, 3, result.stderr);
  const summary = JSON.parse(result.stdout.trim().split('\n').pop()!) as { error_count: number; changed_while_read_count: number; sources: Array<{ errors: unknown[]; changedWhileRead?: string[] }> };
  assert.equal(summary.error_count, 0, 'nothing was unreadable');
  assert.equal(summary.changed_while_read_count, 1);
  assert.deepEqual(summary.sources[0]!.changedWhileRead, ['/tree/app.db']);
  const text = await runCli(['backup', '--repo', repo, src]);
  assert.equal(text.code, 0, `undisturbed: ${text.stdout}${text.stderr}`);
  assert.doesNotMatch(text.stdout + text.stderr, /changed while/);
  const snapshots = await runCli(['snapshots', '--repo', repo]);
  const rows = snapshots.stdout.split('\n').filter((l) => /^[0-9a-f]{8} /.test(l));
  assert.equal(rows.length, 2, snapshots.stdout);
  assert.match(rows[0]!, / 1 changed while read +tree \(/);
  assert.match(rows[1]!, / - +tree \(/);
  const json = JSON.parse((await runCli(['snapshots', '--repo', repo, '--json'])).stdout) as Array<{ error_count: number; changed_while_read_count: number }>;
  assert.deepEqual(json.map((s) => [s.error_count, s.changed_while_read_count]), [[0, 1], [0, 0]]);
  // What was saved restores whole, as it was read.
  const reopened = await Repository.open(new LocalBackend(repo), undefined);
  assert.deepEqual((await check(reopened, { readData: true })).errors, []);
});

test('the index can be rebuilt from packs alone', async (t) => {
  const dir = await tempDir(t);
  const src = join(dir, 'tree');
  await makeRichTree(src);
  const repoDir = join(dir, 'repo');
  const repo = await Repository.init(new LocalBackend(repoDir), { password: 'pw', immutabilityDays: 0, packSize: 1 << 20 });
  await backup(repo, { sources: [{ name: 'data', path: src }] });
  // Lose every index file (as if they never reached the storage).
  await rm(join(repoDir, 'index'), { recursive: true });
  const bare = await Repository.open(new LocalBackend(repoDir), 'pw');
  const rebuilt = await rebuildIndex(bare);
  assert.deepEqual(rebuilt.damaged, []);
  const reopened = await Repository.open(new LocalBackend(repoDir), 'pw');
  assert.deepEqual((await check(reopened, { readData: true })).errors, []);
  const [ref] = await listSnapshots(reopened);
  assert.deepEqual((await restore(reopened, ref!, { target: join(dir, 'out') })).errors, []);
});

test('a backup holds no more in memory than its batches in flight while the backend is slow: its packs fill files, not memory', async (t) => {
  const dir = await tempDir(t);
  const src = join(dir, 'tree');
  // 128 MiB of incompressible files: far more than the packs and batches in flight.
  for (let d = 0; d < 32; d++) {
    await mkdir(join(src, `d${d}`), { recursive: true });
    for (let f = 0; f < 32; f++) await writeFile(join(src, `d${d}`, `f${f}`), pseudoRandom(d * 100 + f + 1, 128 * 1024));
  }
  /** data packs wait for the test to open the gate before they are stored: the backend stands still */
  class StalledBackend extends LocalBackend {
    gate: Promise<void> | undefined;
    puts = 0;
    // Data packs are written into files as they fill, and stored from there.
    override createObjectFile(): ObjectFile {
      const file = super.createObjectFile();
      return {
        ...file,
        store: async (key: string) => {
          this.puts++;
          await this.gate;
          return file.store(key);
        },
      };
    }
  }
  const backend = new StalledBackend(join(dir, 'repo'));
  // Packs of the default 16 MiB: held in memory, two uploading, one waiting and one filling were 68 MiB.
  const repo = await Repository.init(backend, { password: 'pw', immutabilityDays: 0 });
  let open!: () => void;
  backend.gate = new Promise((resolve) => (open = resolve));
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  gc();
  const before = process.memoryUsage().arrayBuffers;
  const done = backup(repo, { sources: [{ name: 'tree', path: src }] });
  // Wait until the backup stands still behind the stalled uploads.
  for (let waited = 0; backend.puts < 2; waited += 50) {
    assert.ok(waited < 30_000, 'the backup never stored a pack');
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  await new Promise((resolve) => setTimeout(resolve, 1500));
  gc();
  const held = process.memoryUsage().arrayBuffers - before;
  const packFiles = (await readdir(join(dir, 'repo', 'tmp'))).length;
  open();
  const result = await done;
  // The encoders' batches (4 MiB each, 3 per thread). Not counted here: each pack file's two write slots of 1 MiB (WebAssembly memory).
  assert.ok(held < 32 * 1024 * 1024, `held ${Math.round(held / 1048576)} MiB of a 128 MiB tree while the backend stood still`);
  // Two packs being stored; the batches in flight when the walk stopped (up to 24 MiB) fill two more; one filling.
  assert.ok(packFiles <= 5, `${packFiles} packs in flight`);
  assert.equal(result.errorCount, 0);
  const [ref] = await listSnapshots(repo);
  assert.deepEqual((await restore(repo, ref!, { target: join(dir, 'out') })).errors, []);
  assert.deepEqual((await compareTrees(src, join(dir, 'out', 'tree'))).differences, []);
});

test('a backup onto a full disk fails naming the repository and the reason, commits nothing and leaves no pack file behind', async (t) => {
  const dir = await tempDir(t);
  const src = join(dir, 'tree');
  // 48 MiB of incompressible files onto a file system of 24 MiB: the disk fills while packs are written.
  for (let d = 0; d < 6; d++) {
    await mkdir(join(src, `d${d}`), { recursive: true });
    for (let f = 0; f < 8; f++) await writeFile(join(src, `d${d}`, `f${f}`), pseudoRandom(d * 10 + f + 1, 1024 * 1024));
  }
  await onSmallExt4(t, '24M', async (mount) => {
    const repo = join(mount, 'repo');
    assert.equal((await runCli(['init', '--repo', repo, '--no-encryption'])).code, 0);
    const result = await runCli(['backup', '--repo', repo, src]);
    assert.notEqual(result.code, 0);
    assert.match(result.stderr, new RegExp(`cannot write .* to ${repo}: no space left on device`));
    assert.doesNotMatch(result.stderr, /Unhandled|at .*\.js:\d+/, 'a clear error, not a crash');
    const left = await readdir(join(repo, 'tmp'));
    assert.deepEqual(left, [], `no pack file is left: ${JSON.stringify(await Promise.all(left.map(async (f) => (await lstat(join(repo, 'tmp', f))).size)))} ${result.stderr}`);
    assert.deepEqual(await readdir(join(repo, 'snapshots')).catch(() => []), []);
  });
});

test('a pack store that fails ends the backup with its error, and the packs finished after it leave no file behind', async (t) => {
  const dir = await tempDir(t);
  const src = join(dir, 'tree');
  await mkdir(src);
  for (let f = 0; f < 24; f++) await writeFile(join(src, `f${f}`), pseudoRandom(f + 1, 512 * 1024));
  /** the first data pack's store fails, as on a disk that just filled up; the others would be stored */
  class FailingBackend extends LocalBackend {
    stores = 0;
    override createObjectFile(): ObjectFile {
      const file = super.createObjectFile();
      return {
        ...file,
        store: async (key: string) => {
          if (++this.stores === 1) {
            await file.discard();
            throw new Error('the first store fails');
          }
          return file.store(key);
        },
      };
    }
  }
  const repoDir = join(dir, 'repo');
  const repo = await Repository.init(new FailingBackend(repoDir), { password: 'pw', immutabilityDays: 0, packSize: 1 << 20 });
  await assert.rejects(backup(repo, { sources: [{ name: 'tree', path: src }] }), /the first store fails/);
  assert.deepEqual(await readdir(join(repoDir, 'tmp')), [], 'no pack file is left');
  assert.deepEqual(await listSnapshots(repo), []);
});
