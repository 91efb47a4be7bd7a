import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdir, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import type { Backend } from '../../src/repo/backends/backend.js';
import { openBackend } from '../../src/repo/backends/open.js';
import { Repository } from '../../src/repo/repository.js';
import { compareTrees } from '../../src/sources/files/compare.js';
import { backup } from '../../src/snapshot/backup/backup.js';
import { restore } from '../../src/snapshot/restore/restore.js';
import { startFaultProxy } from '../support/fault-proxy.js';
import { CLI, pseudoRandom, pseudoText, runCli, tempDir, waitFor } from '../support/helpers.js';
import { startRcloneServe, startS3rver } from '../support/storage-servers.js';

/** `folders` folders of 100 text notes each (1.5-4.5 KB), the same for the same arguments. */
async function writeNotes(source: string, folders: number): Promise<void> {
  for (let d = 0; d < folders; d++) {
    await mkdir(join(source, `folder-${d}`), { recursive: true });
    for (let f = 0; f < 100; f++) await writeFile(join(source, `folder-${d}`, `note-${f}.txt`), pseudoText(d * 1000 + f, 1500 + ((d * f) % 3000)));
  }
}

/**
 * Restores a tree of 3,500 small files and one large file from a backend reached through a
 * counting proxy, and returns what the restore asked the storage server for.
 */
async function countRestoreRequests(t: TestContext, open: (proxyUrl: string) => Backend, serverUrl: string, packSize?: number, ranges = false) {
  const dir = await tempDir(t);
  const source = join(dir, 'source');
  await writeNotes(source, 20);
  await writeFile(join(source, 'recording.bin'), pseudoRandom(5, 6_000_000));
  // Small incompressible files: packs full of small blobs, read in several windows each.
  await mkdir(join(source, 'clips'));
  for (let f = 0; f < 1500; f++) await writeFile(join(source, 'clips', `clip-${f}.bin`), pseudoRandom(f + 1, 10_000));
  // A proxy that injects nothing: it counts what the restore asks the server for.
  const proxy = await startFaultProxy(serverUrl, { seed: 1, rate: 0 });
  t.after(() => proxy.stop());
  const backend = open(proxy.url);
  t.after(() => backend.close?.());
  await Repository.init(backend, { password: 'pw', immutabilityDays: 0, packSize });
  const saved = await backup(await Repository.open(backend, 'pw'), { sources: [{ name: 'data', path: source, exclusionClasses: {} }] });

  const repo = await Repository.open(backend, 'pw');
  await repo.loadIndex();
  const packs = [...repo.index.eachPack()].length;
  const blobs = repo.index.blobCount;
  proxy.forwarded.length = 0;
  if (ranges) withoutSpool(t, dir);
  const target = join(dir, 'target');
  const result = await restore(repo, { id: saved.id, snapshot: saved.snapshot }, { target });
  assert.deepEqual(result.errors, []);
  assert.deepEqual((await compareTrees(source, join(target, 'data'))).differences, []);
  assert.ok(blobs > 2000, `only ${blobs} blobs`);
  return { packs, blobs, requests: proxy.forwarded.filter((r) => /\/data\//.test(r.path)) };
}

/** Restores in this test read packs in ranges: the system's temporary folder, where whole packs would be copied, does not exist. */
function withoutSpool(t: TestContext, dir: string): void {
  const before = process.env.TMPDIR;
  process.env.TMPDIR = join(dir, 'no-such-folder');
  t.after(() => (before === undefined ? delete process.env.TMPDIR : (process.env.TMPDIR = before)));
}

test('a restore from S3 sends requests in proportion to packs, not to blobs, also when it reads ranges', { timeout: 180_000 }, async (t) => {
  const s3 = await startS3rver(t, 'reads');
  const { packs, blobs, requests } = await countRestoreRequests(t, (url) => openBackend('s3://reads/repo', { env: { AWS_ACCESS_KEY_ID: 'S3RVER', AWS_SECRET_ACCESS_KEY: 'S3RVER', AWS_ENDPOINT_URL: url } }), s3.url, 1 << 20, true);
  const packReads = requests.filter((r) => r.method === 'GET').length;
  t.diagnostic(`${blobs} blobs in ${packs} packs: the restore read packs with ${packReads} requests`);
  assert.ok(packReads <= packs * 6, `${packReads} requests for ${packs} packs (${blobs} blobs)`);
});

test('a restore through rclone (WebDAV) sends requests in proportion to packs, not to blobs', { timeout: 180_000 }, async (t) => {
  const webdav = await startRcloneServe(t, 'webdav', 'counted');
  const open = (url: string) => openBackend('rclone:counted:repo', { env: { ...process.env, ...webdav.env, RCLONE_CONFIG_COUNTED_URL: url } });
  // Packs of the default size, each read in several ranges.
  const { packs, blobs, requests } = await countRestoreRequests(t, open, webdav.url);
  const packReads = requests.filter((r) => r.method === 'GET').length;
  t.diagnostic(`${blobs} blobs in ${packs} packs: the restore read packs with ${packReads} requests`);
  assert.ok(packReads <= packs * 6, `${packReads} requests for ${packs} packs (${blobs} blobs)`);
});

test('a restore from S3 reads each byte of a pack once, also where a blob crosses from one window into the next', { timeout: 180_000 }, async (t) => {
  const dir = await tempDir(t);
  const source = join(dir, 'source');
  await mkdir(source);
  // 15 MB of small incompressible files: one pack of the default size, whose blobs cross
  // the 4 MiB windows a restore reads it in.
  for (let f = 0; f < 1500; f++) await writeFile(join(source, `clip-${f}.bin`), pseudoRandom(f + 1, 10_000));
  const s3 = await startS3rver(t, 'windows');
  const proxy = await startFaultProxy(s3.url, { seed: 1, rate: 0 });
  t.after(() => proxy.stop());
  const backend = openBackend('s3://windows/repo', { env: { AWS_ACCESS_KEY_ID: 'S3RVER', AWS_SECRET_ACCESS_KEY: 'S3RVER', AWS_ENDPOINT_URL: proxy.url } });
  t.after(() => backend.close?.());
  await Repository.init(backend, { password: 'pw', immutabilityDays: 0 });
  const saved = await backup(await Repository.open(backend, 'pw'), { sources: [{ name: 'data', path: source, exclusionClasses: {} }] });

  const repo = await Repository.open(backend, 'pw');
  await repo.loadIndex();
  let packBytes = 0;
  for (const info of await repo.listObjects('data')) packBytes += info.size;
  proxy.forwarded.length = 0;
  // No room to copy packs whole (see the rclone test below): the restore reads windows.
  withoutSpool(t, dir);
  const result = await restore(repo, { id: saved.id, snapshot: saved.snapshot }, { target: join(dir, 'target') });
  assert.deepEqual(result.errors, []);
  assert.deepEqual((await compareTrees(source, join(dir, 'target', 'data'))).differences, []);

  const ranges = proxy.forwarded.filter((r) => r.method === 'GET' && /\/data\//.test(r.path)).map((r) => /bytes=(\d+)-(\d+)/.exec(String(r.headers.range)));
  const read = ranges.reduce((n, m) => n + (m ? Number(m[2]) - Number(m[1]) + 1 : 0), 0);
  t.diagnostic(`packs of ${packBytes} bytes: the restore read ${read} bytes in ${ranges.length} requests`);
  assert.ok(packBytes > 12_000_000, `only ${packBytes} bytes of packs`);
  assert.ok(read <= packBytes * 1.05, `${read} bytes read for ${packBytes} bytes of packs`);
});

test('a restore through rclone has rclone copy the packs it needs most of whole, reads a few files in ranges, and leaves no copy behind', { timeout: 240_000 }, async (t) => {
  const dir = await tempDir(t);
  const source = join(dir, 'source');
  await writeNotes(source, 10);
  await writeFile(join(source, 'recording.bin'), pseudoRandom(5, 6_000_000));
  const webdav = await startRcloneServe(t, 'webdav', 'spooled');
  // Whole-object reads (no range) are rclone's copies; a failing proxy makes them fail.
  let failCopies = false;
  const wholeRead = (method: string, path: string, headers: { range?: string }) => method === 'GET' && /\/data\//.test(path) && !headers.range;
  const proxy = await startFaultProxy(webdav.url, { seed: 1, rate: 0, intercept: (method, path, headers) => (failCopies && wholeRead(method, path, headers) ? { status: 404 } : undefined) });
  t.after(() => proxy.stop());
  const backend = openBackend('rclone:spooled:repo', { env: { ...process.env, ...webdav.env, RCLONE_CONFIG_SPOOLED_URL: proxy.url } });
  t.after(() => backend.close?.());
  await Repository.init(backend, { password: 'pw', immutabilityDays: 0, packSize: 2 << 20 });
  const saved = await backup(await Repository.open(backend, 'pw'), { sources: [{ name: 'data', path: source, exclusionClasses: {} }] });
  const ref = { id: saved.id, snapshot: saved.snapshot };
  const repo = await Repository.open(backend, 'pw');
  await repo.loadIndex();
  const dataPacks = [...repo.index.eachPack()].map(([, blobs]) => blobs).filter((blobs) => blobs.some((b) => b.type === 'data')).length;
  // The spool goes under the system's temporary folder: here, one the test watches.
  const spoolParent = join(dir, 'tmp');
  await mkdir(spoolParent);
  const tmpBefore = process.env.TMPDIR;
  process.env.TMPDIR = spoolParent;
  t.after(() => (tmpBefore === undefined ? delete process.env.TMPDIR : (process.env.TMPDIR = tmpBefore)));

  const restoreAndCount = async (target: string, include?: string[]) => {
    proxy.forwarded.length = 0;
    const result = await restore(repo, ref, { target, include });
    assert.deepEqual(result.errors, []);
    assert.deepEqual(await readdir(spoolParent), [], 'no copy is left behind');
    const reads = proxy.forwarded.filter((r) => r.method === 'GET' && /\/data\//.test(r.path));
    return { whole: reads.filter((r) => wholeRead(r.method, r.path, r.headers)).length, ranged: reads.filter((r) => r.headers.range).length };
  };

  const all = await restoreAndCount(join(dir, 'all'));
  assert.deepEqual((await compareTrees(source, join(dir, 'all', 'data'))).differences, []);
  t.diagnostic(`${dataPacks} packs of data: a whole restore copied ${all.whole} whole and read ${all.ranged} ranges (its folders')`);
  assert.equal(all.whole, dataPacks, 'each pack of data is copied once, whole');

  const one = await restoreAndCount(join(dir, 'one'), ['/data/folder-3/note-7.txt']);
  assert.deepEqual(await readFile(join(dir, 'one', 'data', 'folder-3', 'note-7.txt')), await readFile(join(source, 'folder-3', 'note-7.txt')));
  assert.equal(one.whole, 0, 'a few files come in ranges, not whole packs');

  // Copies that fail (rclone reports the object missing) leave the restore to read ranges.
  failCopies = true;
  const fallback = await restoreAndCount(join(dir, 'fallback'));
  assert.deepEqual((await compareTrees(source, join(dir, 'fallback', 'data'))).differences, []);
  assert.ok(fallback.ranged > 0);
});

test('a restore through rclone writes files from a pack while rclone still copies it, and reads again what did not verify from a copy damaged on its way', { timeout: 240_000 }, async (t) => {
  const dir = await tempDir(t);
  const source = join(dir, 'source');
  await writeNotes(source, 10);
  const webdav = await startRcloneServe(t, 'webdav', 'slow');
  let damage = false;
  const wholeRead = (method: string, path: string, headers: { range?: string }) => method === 'GET' && /\/data\//.test(path) && !headers.range;
  const copies: Array<{ started: number; sent: number }> = [];
  const proxy = await startFaultProxy(webdav.url, {
    seed: 1,
    rate: 0,
    // rclone's copies of packs come slowly (32 KiB every 20 ms) and, once damage is on, with
    // a byte wrong in every 32 KiB; ranged reads (the restore's own) are left alone.
    trickle: (method, path, headers) => (wholeRead(method, path, headers) ? { bytes: 32 * 1024, everyMs: 20 } : undefined),
    alterBody: (method, path, headers, body) => {
      if (!wholeRead(method, path, headers)) return body;
      copies.push({ started: Date.now(), sent: body.length });
      if (!damage) return body;
      const damaged = Buffer.from(body);
      for (let at = 1000; at < damaged.length; at += 32 * 1024) damaged[at]! ^= 0xff;
      return damaged;
    },
  });
  t.after(() => proxy.stop());
  const backend = openBackend('rclone:slow:repo', { env: { ...process.env, ...webdav.env, RCLONE_CONFIG_SLOW_URL: proxy.url } });
  t.after(() => backend.close?.());
  // One pack of data (about 1 MB): without reads from a copy under way, no file could be made before it is whole.
  await Repository.init(backend, { password: 'pw', immutabilityDays: 0 });
  const saved = await backup(await Repository.open(backend, 'pw'), { sources: [{ name: 'data', path: source, exclusionClasses: {} }] });
  const ref = { id: saved.id, snapshot: saved.snapshot };
  const spoolParent = join(dir, 'tmp');
  await mkdir(spoolParent);
  const tmpBefore = process.env.TMPDIR;
  process.env.TMPDIR = spoolParent;
  t.after(() => (tmpBefore === undefined ? delete process.env.TMPDIR : (process.env.TMPDIR = tmpBefore)));

  // The first files are made before the copy ends (file birth times, against when the
  // copy's last piece left the proxy, at the earliest).
  const target = join(dir, 'whole');
  const whole = await restore(await Repository.open(backend, 'pw'), ref, { target });
  assert.deepEqual(whole.errors, []);
  assert.deepEqual((await compareTrees(source, join(target, 'data'))).differences, []);
  assert.equal(copies.length, 1, 'the pack of data was copied whole');
  const copyEnd = copies[0]!.started + Math.floor((copies[0]!.sent - 1) / (32 * 1024)) * 20;
  const files = (await readdir(join(target, 'data'), { recursive: true })).filter((name) => name.endsWith('.txt'));
  const births = await Promise.all(files.map(async (name) => (await stat(join(target, 'data', name))).birthtimeMs));
  const early = births.filter((b) => b < copyEnd).length;
  t.diagnostic(`${early} of ${files.length} files were made before the copy ended`);
  if (births.every((b) => b > 0)) assert.ok(early > 0, `the first file was made ${Math.min(...births) - copyEnd} ms after the copy ended`);
  else t.diagnostic('this file system gives no birth times: when files were made is not checked');

  // Damaged copies: what was read from them early does not verify and is read again.
  damage = true;
  proxy.forwarded.length = 0;
  const again = await restore(await Repository.open(backend, 'pw'), ref, { target: join(dir, 'damaged') });
  assert.deepEqual(again.errors, [], 'no file is reported damaged for a copy damaged on its way');
  assert.deepEqual((await compareTrees(source, join(dir, 'damaged', 'data'))).differences, []);
  const ranged = proxy.forwarded.filter((r) => r.method === 'GET' && /\/data\//.test(r.path) && r.headers.range).length;
  assert.ok(ranged > 0, 'blobs of a damaged copy are read through the repository');
  assert.deepEqual(await readdir(spoolParent), [], 'no copy is left behind');
});

test('a restore through rclone killed with SIGKILL leaves its copies of packs behind, and the next restore removes them', { timeout: 240_000 }, async (t) => {
  const dir = await tempDir(t);
  const source = join(dir, 'source');
  await mkdir(source);
  // 24 MB of incompressible recordings: two packs, still being copied or read when it is killed.
  for (let f = 0; f < 24; f++) await writeFile(join(source, `recording-${f}.bin`), pseudoRandom(f + 1, 1_000_000));
  const webdav = await startRcloneServe(t, 'webdav', 'killed');
  const tmp = join(dir, 'tmp');
  await mkdir(tmp);
  const env = { ...webdav.env, STACKVAULT_PASSWORD: 'pw', TMPDIR: tmp };
  const repo = 'rclone:killed:repo';
  assert.equal((await runCli(['init', '--repo', repo], { env })).code, 0);
  assert.equal((await runCli(['backup', '--repo', repo, source], { env })).code, 0);

  const killed = spawn(process.execPath, [CLI, 'restore', 'latest', '--repo', repo, '--target', join(dir, 'first')], { env: { ...process.env, ...env }, stdio: 'ignore' });
  const exited = new Promise((resolve) => killed.once('exit', resolve));
  // Held still the moment its first copy of a pack is on disk, then killed: no chance to clean up.
  const left = await waitFor('a copy of a pack', async () => {
    for (const name of await readdir(tmp)) if ((await readdir(join(tmp, name))).length > 0) return name;
    return undefined;
  }, 60_000, 5);
  killed.kill('SIGSTOP');
  killed.kill('SIGKILL');
  await exited;
  assert.deepEqual(await readdir(tmp), [left], 'the killed restore left its spool');

  const again = await runCli(['restore', 'latest', '--repo', repo, '--target', join(dir, 'second')], { env });
  assert.equal(again.code, 0, again.stderr);
  assert.deepEqual((await compareTrees(source, join(dir, 'second', source.split('/').pop()!))).differences, []);
  assert.deepEqual(await readdir(tmp), [], 'the next restore removed what the killed one left, and its own');
});

test('SIGINT while a restore through rclone writes its folders: exit 130 with its message, no stack trace, no copy left behind', { timeout: 240_000 }, async (t) => {
  // Ctrl-C about a second into such a restore ended it with an unhandled InterruptedError:
  // a subfolder stopped at the signal while its folder's walk still waited for a writer's
  // slot, and its rejection had no handler yet.
  const dir = await tempDir(t);
  const source = join(dir, 'source');
  for (let d = 0; d < 150; d++) {
    await mkdir(join(source, `folder-${d}`), { recursive: true });
    for (let f = 0; f < 60; f++) await writeFile(join(source, `folder-${d}`, `note-${f}.txt`), pseudoText(d * 100 + f, 800));
  }
  const webdav = await startRcloneServe(t, 'webdav', 'stopped');
  const tmp = join(dir, 'tmp');
  await mkdir(tmp);
  const env = { ...webdav.env, STACKVAULT_PASSWORD: 'pw', TMPDIR: tmp };
  const repo = 'rclone:stopped:repo';
  assert.equal((await runCli(['init', '--repo', repo], { env })).code, 0);
  assert.equal((await runCli(['backup', '--repo', repo, source], { env })).code, 0);
  for (const folders of [5, 40, 120]) {
    const target = join(dir, `target-${folders}`);
    const child = spawn(process.execPath, [CLI, 'restore', 'latest', '--repo', repo, '--target', target], { env: { ...process.env, ...env }, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    // Interrupted once the restore's walk has made this many folders.
    await waitFor(`${folders} folders restored`, async () => ((await readdir(join(target, 'source')).catch(() => [])).length >= folders ? true : undefined), 60_000, 2);
    child.kill('SIGINT');
    const code = await exited;
    t.diagnostic(`interrupted at ${folders} folders: exit ${code}`);
    if (code === 0) continue; // done before the signal came
    assert.equal(code, 130, stderr);
    assert.doesNotMatch(stderr, /\n\s+at /, 'no stack trace');
    assert.match(stderr, /restore interrupted/);
    assert.deepEqual(await readdir(tmp), [], 'no copy of a pack is left behind');
  }
});
