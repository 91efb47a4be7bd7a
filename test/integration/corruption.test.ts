import assert from 'node:assert/strict';
import { chmod, mkdir, readFile, readdir, stat, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { ByteRange } from '../../src/repo/backends/backend.js';
import { LocalBackend } from '../../src/repo/backends/local.js';
import { objectKey } from '../../src/repo/format/layout.js';
import { Repository } from '../../src/repo/repository.js';
import { backup } from '../../src/snapshot/backup/backup.js';
import { check } from '../../src/snapshot/maintenance/check.js';
import { TreeLoader } from '../../src/snapshot/tree.js';
import { walkTree } from '../../src/snapshot/walk.js';
import { flipBlob, flipByte, makeRichTree, pseudoRandom, runCli, tempDir } from '../support/helpers.js';
import { MemoryBackend } from '../support/memory-backend.js';
import { contentPieces } from '../../src/snapshot/content-list.js';


async function setup(t: import('node:test').TestContext, encrypted: boolean) {
  const dir = await tempDir(t);
  const source = join(dir, 'source');
  await makeRichTree(source);
  await writeFile(join(source, 'docs/extra.bin'), pseudoRandom(99, 3_000_000));
  const repoDir = join(dir, 'repo');
  const repo = await Repository.init(new LocalBackend(repoDir), { password: encrypted ? 'pw' : null, immutabilityDays: 0, packSize: 1 << 20 });
  const saved = await backup(repo, { sources: [{ name: 'data', path: source, exclusionClasses: {} }] });
  /** blob id -> paths of files (or folders, for tree blobs) that use it */
  const users = new Map<string, string[]>();
  const add = (id: string, path: string) => users.set(id, [...(users.get(id) ?? []), path]);
  add(saved.snapshot.tree, '/');
  for await (const { path, node } of walkTree(new TreeLoader(repo), saved.snapshot.tree)) {
    for (const id of contentPieces(node.content)) add(id, path);
    if (node.subtree) add(node.subtree, path);
  }
  return { dir, repoDir, repo, saved, users, env: encrypted ? { STACKVAULT_PASSWORD: 'pw' } : {} };
}

for (const encrypted of [true, false]) {
  test(`one flipped byte in any pack is found by check --read-data, naming snapshot and file (${encrypted ? 'encrypted' : 'unencrypted'})`, { timeout: 300_000 }, async (t) => {
    const { repoDir, repo, saved, users } = await setup(t, encrypted);
    const packs = [...repo.index.eachPack()];
    assert.ok(packs.length >= 4, `want several packs, got ${packs.length}`);
    let seed = encrypted ? 7 : 11;
    const random = (n: number) => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) % n;
    for (const [packId, blobs] of packs) {
      const file = join(repoDir, objectKey('data', packId));
      const size = (await stat(file)).size;
      // One flip inside a blob, one in the header or trailer.
      const blob = blobs[random(blobs.length)]!;
      const inBlob = blob.offset + random(blob.length);
      const blobEnd = blobs.reduce((n, b) => Math.max(n, b.offset + b.length), 0);
      const inHeader = blobEnd + random(size - blobEnd);
      for (const offset of [inBlob, inHeader]) {
        await flipByte(file, offset);
        const fresh = await Repository.open(new LocalBackend(repoDir), encrypted ? 'pw' : undefined);
        const result = await check(fresh, { readData: true });
        assert.ok(result.errors.length > 0, `flip at ${offset} of pack ${packId.slice(0, 8)} went unnoticed`);
        assert.ok(result.errors.some((e) => e.includes(packId.slice(0, 8))), `pack not named: ${result.errors.join('\n')}`);
        if (offset === inBlob) {
          const expected = users.get(blob.id) ?? [];
          for (const path of expected) {
            assert.ok(
              result.affected.some((a) => a.snapshot === saved.id && a.path === path),
              `check did not name ${path} of snapshot ${saved.id.slice(0, 8)}: ${JSON.stringify(result.affected)}`,
            );
          }
        }
        await flipByte(file, offset);
      }
    }
    const clean = await check(await Repository.open(new LocalBackend(repoDir), encrypted ? 'pw' : undefined), { readData: true });
    assert.deepEqual(clean.errors, []);
  });
}

test('the CLI reports a damaged file by snapshot and path, and restore of it fails loudly without writing wrong data', async (t) => {
  const { dir, repoDir, repo, saved, env } = await setup(t, true);
  const loader = new TreeLoader(repo);
  let victim: { path: string; blob: string } | undefined;
  let smallVictim: { path: string; blob: string } | undefined;
  for await (const { path, node } of walkTree(loader, saved.snapshot.tree)) {
    if (path === '/data/docs/extra.bin') victim = { path, blob: contentPieces(node.content)[0]! };
    if (path === '/data/names/with space ü €.txt') smallVictim = { path, blob: contentPieces(node.content)[0]! };
  }
  assert.ok(victim && smallVictim);
  // A large file (written by a decode thread) and a small one (written by a writer thread).
  for (const { blob } of [victim, smallVictim]) {
    const entry = repo.index.get(blob)!;
    await flipBlob(repoDir, entry);
  }

  const checked = await runCli(['check', '--repo', repoDir, '--read-data'], { env });
  assert.equal(checked.code, 1);
  assert.match(checked.stdout, new RegExp(`snapshot ${saved.id.slice(0, 8)} .*: /data/docs/extra.bin cannot be restored`));

  const target = join(dir, 'target');
  const restored = await runCli(['restore', saved.id.slice(0, 8), '--repo', repoDir, '--target', target], { env });
  assert.equal(restored.code, 1);
  assert.match(restored.stderr + restored.stdout, /\/data\/docs\/extra\.bin.*damaged/);
  const docs = await readdir(join(target, 'data/docs'));
  assert.ok(!docs.includes('extra.bin'), 'the damaged file must not be written');
  assert.ok(!docs.some((n) => n.includes('sv-restore')), `temporary file left behind: ${docs.join(', ')}`);
  assert.ok(docs.includes('small.txt'), 'undamaged files are still restored');
  assert.match(restored.stderr + restored.stdout, /\/data\/names\/with space ü €\.txt.*damaged/);
  const names = await readdir(join(target, 'data/names'));
  assert.ok(!names.includes('with space ü €.txt'), 'a damaged small file must not be written');
  assert.ok(names.includes('-dash') && names.includes('.hidden'), `the rest of its folder is restored: ${names.join(', ')}`);
});

test('a pack cut short fails exactly the small files whose blobs it lost; their neighbours in the pack are restored', async (t) => {
  const dir = await tempDir(t);
  const source = join(dir, 'source');
  // Small files in several folders, packed together: a restore gathers them and reads
  // neighbouring blobs in one read, which the cut makes fail.
  for (let d = 0; d < 6; d++) {
    await mkdir(join(source, `dir${d}`), { recursive: true });
    for (let f = 0; f < 40; f++) await writeFile(join(source, `dir${d}`, `f${f}.bin`), pseudoRandom(d * 100 + f + 1, 3_000 + 97 * f));
  }
  const repoDir = join(dir, 'repo');
  const repo = await Repository.init(new LocalBackend(repoDir), { password: 'pw', immutabilityDays: 0, packSize: 1 << 20 });
  const saved = await backup(repo, { sources: [{ name: 'data', path: source, exclusionClasses: {} }] });
  const files: Array<{ path: string; blobs: string[] }> = [];
  for await (const { path, node } of walkTree(new TreeLoader(repo), saved.snapshot.tree)) if (node.type === 'file') files.push({ path, blobs: [...contentPieces(node.content)] });
  const [packId, blobs] = [...repo.index.eachPack()].sort((x, y) => y[1].length - x[1].length)[0]!;
  const cut = blobs.map((b) => b.offset).sort((x, y) => x - y)[Math.floor(blobs.length / 2)]! + 10;
  const lost = new Set(blobs.filter((b) => b.offset + b.length > cut).map((b) => b.id));
  const damaged = files.filter((f) => f.blobs.some((id) => lost.has(id))).map((f) => f.path);
  assert.ok(damaged.length > 10 && damaged.length < files.length - 10, `cut loses ${damaged.length} of ${files.length} files`);
  const packFile = join(repoDir, objectKey('data', packId));
  await chmod(packFile, 0o644);
  await truncate(packFile, cut);

  const target = join(dir, 'target');
  const restored = await runCli(['restore', saved.id.slice(0, 8), '--repo', repoDir, '--target', target], { env: { STACKVAULT_PASSWORD: 'pw' } });
  assert.equal(restored.code, 1);
  for (const { path } of files) {
    const written = await readFile(join(target, path)).catch(() => undefined);
    if (damaged.includes(path)) {
      assert.equal(written, undefined, `${path} lost its blob and must not be written`);
      assert.ok((restored.stderr + restored.stdout).includes(path), `${path} is reported`);
    } else {
      assert.ok(written?.equals(await readFile(join(source, path.replace(/^\/data/, '')))), `${path} is restored`);
    }
  }
});

test('a damaged first blob of a small file with several fails that file only: the files after it in its batch get their own blobs', async (t) => {
  const dir = await tempDir(t);
  const source = join(dir, 'source');
  await mkdir(source);
  for (let f = 0; f < 30; f++) await writeFile(join(source, `f${String(f).padStart(2, '0')}.bin`), pseudoRandom(f + 1, 6_000 + 97 * f));
  const repoDir = join(dir, 'repo');
  // Small chunks: each of these small files has several blobs, read together with its neighbours'.
  const repo = await Repository.init(new LocalBackend(repoDir), { password: 'pw', immutabilityDays: 0, chunker: { min: 1024, avg: 2048, max: 8192 } });
  const saved = await backup(repo, { sources: [{ name: 'data', path: source, exclusionClasses: {} }] });
  const files: Array<{ path: string; blobs: string[] }> = [];
  for await (const { path, node } of walkTree(new TreeLoader(repo), saved.snapshot.tree)) if (node.type === 'file') files.push({ path, blobs: [...contentPieces(node.content)] });
  // Chunk boundaries depend on the repository's random chunker seed: the victim is a file that has several.
  const victim = files.slice(5).find((f) => f.blobs.length >= 3)!;
  assert.ok(victim, 'a file of several blobs, with files before and after it');
  const entry = repo.blobEntry(victim.blobs[0]!, 'data');
  await flipBlob(repoDir, entry);

  const target = join(dir, 'target');
  const restored = await runCli(['restore', saved.id.slice(0, 8), '--repo', repoDir, '--target', target], { env: { STACKVAULT_PASSWORD: 'pw' } });
  assert.equal(restored.code, 1);
  assert.ok((restored.stderr + restored.stdout).includes(victim.path), `${victim.path} is reported`);
  for (const { path } of files) {
    const written = await readFile(join(target, path)).catch(() => undefined);
    if (path === victim.path) assert.equal(written, undefined, `${path} must not be written`);
    else assert.ok(written?.equals(await readFile(join(source, path.replace(/^\/data/, '')))), `${path} is restored`);
  }
});

test('check walks the snapshots while it reads the packs, not after them', async (t) => {
  const dir = await tempDir(t);
  const source = join(dir, 'source');
  await makeRichTree(source);
  await writeFile(join(source, 'large.bin'), pseudoRandom(7, 3_000_000));
  const stored = new MemoryBackend();
  const repo = await Repository.init(stored, { password: 'pw', immutabilityDays: 0, packSize: 1 << 20 });
  await backup(repo, { sources: [{ name: 'data', path: source, exclusionClasses: {} }] });
  // Reading a whole pack (check --read-data) waits until a tree is read (the walk reads
  // ranges): a walk after the reading never comes, and the reading gives up.
  let treeRead!: () => void;
  const walking = new Promise<void>((resolve) => (treeRead = resolve));
  class HeldPacks extends MemoryBackend {
    override async get(key: string, range?: ByteRange): Promise<Buffer> {
      if (key.startsWith('data/')) {
        if (range) treeRead();
        else await Promise.race([walking, sleep(5_000).then(() => Promise.reject(new Error('no tree was read while the packs were')))]);
      }
      return super.get(key, range);
    }
  }
  const held = new HeldPacks();
  for (const [key, object] of stored.objects) held.objects.set(key, object);
  const result = await check(await Repository.open(held, 'pw'), { readData: true });
  assert.deepEqual(result.errors, []);
  assert.ok(result.packsRead > 1, `${result.packsRead} packs read`);
});
