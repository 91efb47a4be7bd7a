import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdir, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { LocalBackend } from '../../src/repo/backends/local.js';
import type { PackedBlob } from '../../src/repo/format/pack.js';
import { encodeIndexFile } from '../../src/repo/master-index.js';
import { Repository } from '../../src/repo/repository.js';
import { onMountedFileSystem, runCli, tempDir } from '../support/helpers.js';

/** A repository whose index lists `blobs` blobs (the packs they name are not written: a backup of new files reads none). */
async function repositoryWithIndexOf(dir: string, blobs: number): Promise<string> {
  const path = join(dir, 'repo');
  const repo = await Repository.init(new LocalBackend(path), { password: 'pw', immutabilityDays: 0 });
  const packs: Array<[string, PackedBlob[]]> = [];
  for (let b = 0; b < blobs; b += 500) {
    const ids = Array.from({ length: Math.min(500, blobs - b) }, (_, i) => createHash('sha256').update(`blob ${b + i}`).digest('hex'));
    packs.push([createHash('sha256').update(`pack ${b}`).digest('hex'), ids.map((id, i) => ({ id, type: 'data', offset: i * 100, length: 100, rawLength: 100, compressed: false }))]);
  }
  await repo.saveObject('index', encodeIndexFile(packs));
  return path;
}

test('an index kept in a scratch file: a full temporary folder fails the backup with its name and what to do, and saves nothing', { timeout: 120_000 }, async (t) => {
  const dir = await tempDir(t);
  const repo = await repositoryWithIndexOf(dir, 40_000);
  const source = join(dir, 'source');
  await mkdir(source);
  await writeFile(join(source, 'new.txt'), 'a small change');
  const env = { STACKVAULT_PASSWORD: 'pw', STACKVAULT_INDEX_MEMORY_BLOBS: '100' };
  await onMountedFileSystem(
    t,
    (target) => ['-t', 'tmpfs', '-o', 'size=256k', 'tmpfs', target],
    async (full) => {
      const failed = await runCli(['backup', '--repo', repo, source], { env: { ...env, TMPDIR: full } });
      assert.notEqual(failed.code, 0);
      assert.match(failed.stderr, new RegExp(`cannot keep the index in a scratch file under ${full} \\(\\d+ blobs so far\\): .*ENOSPC.*point TMPDIR to a folder with room`));
      assert.deepEqual(await readdir(full), [], 'the scratch file is gone with the process');
    },
  );
  // Nothing stored: the index is loaded before anything is written.
  for (const kind of ['snapshots', 'data']) assert.deepEqual(await readdir(join(repo, kind)).catch(() => []), [], kind);
  // With room, the same backup goes through its index in the scratch file.
  const saved = await runCli(['backup', '--repo', repo, source], { env });
  assert.equal(saved.code, 0, saved.stderr);
  assert.equal((await readdir(join(repo, 'snapshots'))).length, 1);
});
