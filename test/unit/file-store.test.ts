import assert from 'node:assert/strict';
import { appendFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { LocalBackend } from '../../src/repo/backends/local.js';
import { FileEncoder, type FileBlob } from '../../src/repo/encode/file-encoder.js';
import { Repository } from '../../src/repo/repository.js';
import { RepositoryFilesSink } from '../../src/snapshot/backup/file-store.js';
import { changedWhileReadWarning } from '../../src/snapshot/backup/backup.js';
import type { Snapshot } from '../../src/snapshot/snapshot.js';
import { TreeLoader } from '../../src/snapshot/tree.js';
import { AdaptiveReader, PlainFile } from '../../src/util/adaptive-io.js';
import { markOfFile, pseudoRandom, tempDir } from '../support/helpers.js';

test('a large file goes to an encoder thread even while the threads still start; small ones are done here meanwhile', async (t) => {
  const dir = await tempDir(t);
  const repo = await Repository.init(new LocalBackend(join(dir, 'repo')), { password: 'pw', immutabilityDays: 0 });
  const encoder = FileEncoder.create(repo.master, repo.chunker.params);
  if (!encoder) return t.skip('one core: no worker threads');
  t.after(() => encoder.close());
  const writer = repo.newBlobWriter();
  const sink = new RepositoryFilesSink(writer, new TreeLoader(repo), repo.chunker, encoder, new AdaptiveReader());
  const large = join(dir, 'large.bin');
  await writeFile(large, pseudoRandom(3, 9 << 20));

  // Right after the encoder was made, no thread has loaded yet.
  const admitted = sink.admitNow(9 << 20);
  assert.ok(admitted);
  assert.equal((admitted as unknown as { route: string }).route, 'large', 'the large file waits for a thread');
  assert.equal((sink.admitNow(1000) as unknown as { route: string }).route, 'here', 'a small file is done at once');
  assert.equal(((await sink.admit(9 << 20)) as unknown as { route: string }).route, 'large');

  const { content, size } = await sink.storeFile(large, await markOfFile(large), admitted, () => undefined);
  admitted.release();
  const expected: string[] = [];
  const fh = await PlainFile.open(large);
  for await (const chunk of repo.chunker.chunkFile(fh, 9 << 20)) expected.push(repo.blobId(chunk));
  await fh.close();
  assert.equal(size, 9 << 20);
  assert.deepEqual(content, expected);
  // Its pack written and its file closed: left open, Node closed it when collected, with a warning.
  await writer.flush();
});

test('a file done on this thread that differs from what the walk saw is stored as read and said to have changed', async (t) => {
  const dir = await tempDir(t);
  const repo = await Repository.init(new LocalBackend(join(dir, 'repo')), { password: 'pw', immutabilityDays: 0 });
  const writer = repo.newBlobWriter();
  // Without encoder threads every file is read here.
  const sink = new RepositoryFilesSink(writer, new TreeLoader(repo), repo.chunker, null, new AdaptiveReader());
  const path = join(dir, 'note.txt');
  await writeFile(path, pseudoRandom(8, 300_000));
  const seen = await markOfFile(path);
  const store = async () => {
    const admission = (await sink.admit(seen.size)) as unknown as { route: string; release(): void };
    assert.equal(admission.route, 'here');
    try {
      return await sink.storeFile(path, seen, admission, () => undefined);
    } finally {
      admission.release();
    }
  };
  assert.equal((await store()).changed, false);
  await appendFile(path, 'appended');
  const stored = await store();
  assert.equal(stored.changed, true);
  assert.equal(stored.size, 300_008, 'saved as read');
  await writer.flush();
});

test('the warning for files changed while they were read names the first five where asked, and says what to do', () => {
  const snapshot = { sources: [{ changedWhileRead: ['/a/1', '/a/2', '/a/3'] }, { changedWhileRead: ['/b/4', '/b/5', '/b/6', '/b/7'] }, {}] } as unknown as Snapshot;
  const named = changedWhileReadWarning(7, snapshot);
  assert.match(named, /^7 files changed while they were read: \/a\/1, \/a\/2, \/a\/3, \/b\/4, \/b\/5, \.\.\.; saved as read, each may mix old and new content \(exclude them/);
  assert.doesNotMatch(named, /\/b\/6/);
  const one = changedWhileReadWarning(1, { sources: [{ changedWhileRead: ['/data/app.db'] }] } as unknown as Snapshot);
  assert.match(one, /^1 file changed while it was read: \/data\/app\.db; saved as read, it may mix old and new content \(exclude it, or back up what writes it through a source that takes a consistent copy/);
  assert.match(changedWhileReadWarning(2), /^2 files changed while they were read; saved as read/);
});

for (const size of [5 << 20, 12 << 20]) {
  const route = size > 8 << 20 ? 'streamed' : 'batched';
  test(`a changed ${route} file's blobs that its previous version stored are only hashed; one stored no more has the file read again`, async (t) => {
    const dir = await tempDir(t);
    const repo = await Repository.init(new LocalBackend(join(dir, 'repo')), { password: 'pw', immutabilityDays: 0 });
    const encoder = FileEncoder.create(repo.master, repo.chunker.params);
    if (!encoder) return t.skip('one core: no worker threads');
    t.after(() => encoder.close());
    while (!encoder.warm()) await new Promise((resolve) => setTimeout(resolve, 5));
    const writer = repo.newBlobWriter();
    const sink = new RepositoryFilesSink(writer, new TreeLoader(repo), repo.chunker, encoder, new AdaptiveReader());
    const path = join(dir, 'grows.log');
    await writeFile(path, pseudoRandom(21, size));
    /** The blobs the encoder sends for each store, by kind. */
    const sent: Array<{ known: number; encoded: number }> = [];
    const count = (blobs: FileBlob[]) => sent.push({ known: blobs.filter((b) => 'known' in b).length, encoded: blobs.filter((b) => !('known' in b)).length });
    const encode = encoder.encode.bind(encoder);
    encoder.encode = async function* (...args) {
      const blobs: FileBlob[] = [];
      const inner = encode(...args);
      try {
        for (let next = await inner.next(); ; next = await inner.next()) {
          if (next.done) return next.value;
          blobs.push(next.value);
          yield next.value;
        }
      } finally {
        count(blobs);
      }
    };
    const encodeBatched = encoder.encodeBatched.bind(encoder);
    encoder.encodeBatched = async (...args) => {
      const encoded = await encodeBatched(...args);
      count(encoded.blobs);
      return encoded;
    };
    const store = async (previous?: string[]) => {
      const admission = sink.admitNow(size)!;
      let added = 0;
      let done = 0;
      try {
        const file = await sink.storeFile(path, await markOfFile(path), admission, (storedBytes, length) => ((added += storedBytes), (done += length)), previous);
        return { ...file, added, done };
      } finally {
        admission.release();
      }
    };
    const idsOf = async () => {
      const ids: string[] = [];
      const fh = await PlainFile.open(path);
      for await (const chunk of repo.chunker.chunkFile(fh, size + 100)) ids.push(repo.blobId(chunk));
      await fh.close();
      return ids;
    };

    // The file's blobs named known before any is stored: each comes back only hashed, is
    // found missing, and the file is read again, every blob encoded.
    const first = await store(await idsOf());
    assert.deepEqual(first.content, await idsOf());
    assert.equal(first.done, size, 'what the first read reported is taken back');
    assert.deepEqual(sent.splice(0).map((s) => s.known > 0), [true, false]);
    for (const id of first.content as string[]) assert.ok(writer.has(id), `blob ${id} is stored`);

    // Appended to: only the new end is compressed and encrypted.
    await appendFile(path, pseudoRandom(22, 300_000));
    const second = await store(first.content as string[]);
    assert.deepEqual(second.content, await idsOf());
    const [{ known, encoded }] = sent.splice(0) as [{ known: number; encoded: number }];
    assert.ok(known >= 2 && encoded <= 2, `${known} blobs only hashed, ${encoded} encoded`);
    assert.equal(known + encoded, (second.content as string[]).length);
    assert.ok(second.added < 2 * (1 << 20) + 300_000, `${second.added} bytes added`);
    await writer.flush();
  });
}
