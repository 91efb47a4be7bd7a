import assert from 'node:assert/strict';
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { LocalBackend } from '../../src/repo/backends/local.js';
import { Repository } from '../../src/repo/repository.js';
import { backup } from '../../src/snapshot/backup/backup.js';
import { SmallFileWriters } from '../../src/snapshot/restore/small-file-writers.js';
import { TreeLoader } from '../../src/snapshot/tree.js';
import { walkTree } from '../../src/snapshot/walk.js';
import { StackvaultError } from '../../src/util/errors.js';
import { makeRichTree, tempDir } from '../support/helpers.js';
import { contentPieces } from '../../src/snapshot/content-list.js';

/** A blob's decode request as a restore makes it for a folder repository: the writer reads the pack itself. */
async function blobPlace(repo: Repository, id: string) {
  const entry = repo.blobEntry(id, 'data');
  const file = (await repo.packFiles())!.take(entry.pack) as string;
  return { pack: entry.pack, compressed: entry.compressed, rawLength: entry.rawLength, length: entry.length, file, offset: entry.offset };
}

test('restore writer threads write small files whole and decode blobs for larger ones, and a writer that stops fails its files instead of hanging', async (t) => {
  const dir = await tempDir(t);
  const src = join(dir, 'tree');
  await makeRichTree(src);
  const repo = await Repository.init(new LocalBackend(join(dir, 'repo')), { password: 'pw', immutabilityDays: 0 });
  const saved = await backup(repo, { sources: [{ name: 'data', path: src, exclusionClasses: {} }] });
  let small: { path: string; node: Parameters<SmallFileWriters['write']>[1] } | undefined;
  for await (const { path, node } of walkTree(new TreeLoader(repo), saved.snapshot.tree)) if (path === '/data/docs/small.txt') small = { path, node };
  assert.ok(small);

  const writers = new SmallFileWriters(repo, 2, false);
  writers.start(await repo.packFiles(), true);
  const write = (dest: string, node: typeof small.node) => new Promise<void>((resolve, reject) => writers.write(dest, node, (err) => (err ? reject(err) : resolve())));
  const dest = join(dir, 'small.txt');
  await write(dest, small.node);
  assert.deepEqual(await readFile(dest), await readFile(join(src, 'docs/small.txt')));
  assert.equal((await stat(dest)).mode & 0o7777, small.node.mode);
  await assert.rejects(write(dest, small.node), { code: 'EEXIST' }, 'an existing name is not overwritten without replaceExisting');

  // The same threads decode blobs for the restore's larger files; closing that view leaves them running.
  const [content] = await writers.decoder.decode([{ id: contentPieces(small.node.content)[0]!, ...(await blobPlace(repo, contentPieces(small.node.content)[0]!)) }], Buffer.alloc(0));
  assert.deepEqual(content, await readFile(join(src, 'docs/small.txt')));
  await writers.decoder.close();
  await write(join(dir, 'again.txt'), small.node);

  for (const slot of (writers as unknown as { pool: { slots: Array<{ worker: { terminate(): Promise<number> } }> } }).pool.slots) await slot.worker.terminate();
  await assert.rejects(write(join(dir, 'other.txt'), small.node), (err: Error) => err instanceof StackvaultError && /writer thread stopped/.test(err.message));
  await writers.close();
});
