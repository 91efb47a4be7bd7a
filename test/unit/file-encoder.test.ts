import assert from 'node:assert/strict';
import { appendFile, open, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { LocalBackend } from '../../src/repo/backends/local.js';
import { decompress } from '../../src/repo/format/compression.js';
import { unseal } from '../../src/repo/format/crypto.js';
import { FileEncoder, type EncodedBlob, type FileBlob } from '../../src/repo/encode/file-encoder.js';
import { Repository } from '../../src/repo/repository.js';
import { StackvaultError } from '../../src/util/errors.js';
import { PlainFile } from '../../src/util/adaptive-io.js';
import { markOfFile, pseudoRandom, pseudoText, tempDir } from '../support/helpers.js';

/** A blob the encoder compressed and encrypted (none was named known to it). */
function sealed(blob: FileBlob): EncodedBlob {
  assert.ok(!('known' in blob), `blob ${blob.id} was only hashed`);
  return blob;
}

test('a worker thread encodes a file into exactly the blobs the main thread would, and reports read errors as they were', async (t) => {
  const dir = await tempDir(t);
  const repo = await Repository.init(new LocalBackend(join(dir, 'repo')), { password: 'pw', immutabilityDays: 0 });
  const file = join(dir, 'big.bin');
  await writeFile(file, Buffer.concat([pseudoText(1, 3 << 20), pseudoRandom(2, 5 << 20)]));
  const expected: string[] = [];
  const fh = await PlainFile.open(file);
  for await (const chunk of repo.chunker.chunkFile(fh, 8 << 20)) expected.push(repo.blobId(chunk));
  await fh.close();

  const encoder = FileEncoder.create(repo.master, repo.chunker.params);
  if (!encoder) return t.skip('one core: no worker threads');
  t.after(() => encoder.close());
  const blobs = [];
  for await (const blob of encoder.encode(file, await markOfFile(file))) blobs.push(blob);
  assert.deepEqual(blobs.map((b) => b.id), expected);
  assert.ok(blobs.length > 2);
  // Each stored blob opens with the repository's key and has the content its id names.
  for (const blob of blobs.map(sealed)) {
    const plain = unseal(repo.master.encryptionKey, blob.stored, 'blob');
    const content = blob.compressed ? decompress(plain) : plain;
    assert.equal(content.length, blob.rawLength);
    assert.equal(repo.blobId(content), blob.id);
  }
  // A consumer that stops early cancels the rest; the encoder stays usable.
  for await (const blob of encoder.encode(file, await markOfFile(file))) {
    assert.equal(blob.id, expected[0]);
    break;
  }
  const missing = encoder.encode(join(dir, 'missing.bin'), { size: 1 << 20, ctimeMs: 0 });
  await assert.rejects(missing.next(), { code: 'ENOENT' });
  const again = [];
  for await (const blob of encoder.encode(file, await markOfFile(file))) again.push(blob.id);
  assert.deepEqual(again, expected);
  // A worker that dies is the backup's failure, not the file's: a StackvaultError ends the walk.
  for (const slot of (encoder as unknown as { workers: Array<{ worker: { terminate(): Promise<number> } }> }).workers) await slot.worker.terminate();
  await assert.rejects(encoder.encode(file, await markOfFile(file)).next(), (err: Error) => err instanceof StackvaultError && /file encoder thread stopped/.test(err.message));
});

test('large files handed to the encoder at once are each encoded whole and right, one after another on a thread', async (t) => {
  const dir = await tempDir(t);
  const repo = await Repository.init(new LocalBackend(join(dir, 'repo')), { password: 'pw', immutabilityDays: 0 });
  const encoder = FileEncoder.create(repo.master, repo.chunker.params);
  if (!encoder) return t.skip('one core: no worker threads');
  t.after(() => encoder.close());
  // More files than threads, so that some wait in a thread's queue behind another.
  const files = await Promise.all(
    [0, 1, 2, 3, 4].map(async (i) => {
      const path = join(dir, `large${i}.bin`);
      await writeFile(path, pseudoRandom(10 + i, (9 << 20) + i * 4099));
      const expected: string[] = [];
      const fh = await PlainFile.open(path);
      for await (const chunk of repo.chunker.chunkFile(fh, 9 << 20)) expected.push(repo.blobId(chunk));
      await fh.close();
      return { path, expected };
    }),
  );
  const encoded = await Promise.all(
    files.map(async ({ path }) => {
      const ids: string[] = [];
      for await (const blob of encoder.encode(path, await markOfFile(path))) {
        ids.push(blob.id);
        // A slow consumer: the thread waits for it (its blobs ahead are bounded), the others go on.
        await new Promise((resolve) => setTimeout(resolve, 2));
      }
      return ids;
    }),
  );
  assert.deepEqual(encoded, files.map((f) => f.expected));
});

test('small files go to a worker in batches: each gets its own blobs or its own error', async (t) => {
  const dir = await tempDir(t);
  const repo = await Repository.init(new LocalBackend(join(dir, 'repo')), { password: 'pw', immutabilityDays: 0 });
  const encoder = FileEncoder.create(repo.master, repo.chunker.params);
  if (!encoder) return t.skip('one core: no worker threads');
  t.after(() => encoder.close());
  // More files than one batch holds, text and random, one empty, and one that is missing.
  const contents = Array.from({ length: 150 }, (_, i) => (i === 7 ? Buffer.alloc(0) : i % 2 ? pseudoText(i, 1000 + i * 37) : pseudoRandom(i, 500 + i * 11)));
  const paths = contents.map((_, i) => join(dir, `f${i}`));
  await Promise.all(paths.map((p, i) => writeFile(p, contents[i]!)));
  const results = await Promise.allSettled(
    [...paths, join(dir, 'missing')].map(async (p, i) => encoder.encodeBatched(p, contents[i] ? await markOfFile(p) : { size: 10, ctimeMs: 0 })),
  );
  for (const [i, content] of contents.entries()) {
    const result = results[i]!;
    assert.equal(result.status, 'fulfilled');
    const { blobs, changed } = (result as PromiseFulfilledResult<Awaited<ReturnType<FileEncoder['encodeBatched']>>>).value;
    assert.equal(changed, false);
    assert.deepEqual(blobs.map((b) => b.id), content.length ? [repo.blobId(content)] : []);
    for (const blob of blobs.map(sealed)) {
      const plain = unseal(repo.master.encryptionKey, blob.stored, 'blob');
      assert.deepEqual(blob.compressed ? decompress(plain) : plain, content);
    }
  }
  const missing = results.at(-1)!;
  assert.equal(missing.status, 'rejected');
  assert.equal((missing as PromiseRejectedResult).reason.code, 'ENOENT');
  assert.ok(!((missing as PromiseRejectedResult).reason instanceof StackvaultError), 'a missing file is that file\'s error, not the backup\'s');
});

for (const password of ['pw', null]) {
  test(`a batch larger than the worker's staging buffer (random files up to 8 MiB) keeps every blob whole (${password ? 'encrypted' : 'unencrypted'})`, async (t) => {
    const dir = await tempDir(t);
    const repo = await Repository.init(new LocalBackend(join(dir, 'repo')), { password, immutabilityDays: 0 });
    const encoder = FileEncoder.create(repo.master, repo.chunker.params);
    if (!encoder) return t.skip('one core: no worker threads');
    t.after(() => encoder.close());
    // Incompressible, so a batch's sealed blobs outgrow the 8 MiB it starts with; text between them is compressed.
    const contents = [pseudoRandom(1, 3 << 20), pseudoText(2, 200_000), pseudoRandom(3, (8 << 20) - 1), pseudoRandom(4, 5 << 20)];
    const paths = contents.map((_, i) => join(dir, `f${i}`));
    await Promise.all(paths.map((p, i) => writeFile(p, contents[i]!)));
    const encoded = await Promise.all(paths.map(async (p) => encoder.encodeBatched(p, await markOfFile(p))));
    for (const [i, { blobs }] of encoded.entries()) {
      const parts = blobs.map(sealed).map((blob) => {
        const plain = unseal(repo.master.encryptionKey, blob.stored, 'blob');
        const content = blob.compressed ? decompress(plain) : plain;
        assert.equal(repo.blobId(content), blob.id);
        return content;
      });
      assert.ok(Buffer.concat(parts).equals(contents[i]!), `file ${i}`);
    }
    assert.ok(encoded[1]!.blobs.map(sealed).every((b) => b.compressed), 'text is stored compressed');
  });
}

test('a file written to while a thread reads it is encoded as read and said to have changed, in a stream and in a batch; one left alone is not', async (t) => {
  const dir = await tempDir(t);
  const repo = await Repository.init(new LocalBackend(join(dir, 'repo')), { password: 'pw', immutabilityDays: 0 });
  const encoder = FileEncoder.create(repo.master, repo.chunker.params);
  if (!encoder) return t.skip('one core: no worker threads');
  t.after(() => encoder.close());
  const streamed = async (path: string, whileRead?: () => Promise<void>) => {
    const blobs = encoder.encode(path, await markOfFile(path));
    let next = await blobs.next();
    // The thread is held a few blobs ahead until these are taken: the write lands mid-read.
    await whileRead?.();
    let count = 0;
    for (; !next.done; next = await blobs.next()) count++;
    return { count, changed: next.value };
  };
  const large = join(dir, 'large.bin');
  await writeFile(large, pseudoRandom(5, 24 << 20));
  assert.deepEqual(await streamed(large), { count: (await streamed(large)).count, changed: false });
  const grown = await streamed(large, () => appendFile(large, pseudoRandom(6, 1 << 20)));
  assert.equal(grown.changed, true, 'an append while it was read');
  const rewritten = await streamed(large, async () => {
    // The same size, other bytes: only its change time tells (a tick of the kernel's clock apart).
    await new Promise((resolve) => setTimeout(resolve, 20));
    const fh = await open(large, 'r+');
    await fh.write(Buffer.from('rewritten'), 0, 9, 0);
    await fh.close();
  });
  assert.equal(rewritten.changed, true, 'a rewrite in place while it was read');
  assert.equal((await streamed(large)).changed, false);

  // A batch reads its files at once: a file changed after the walk saw it is told the same way.
  const small = join(dir, 'small.txt');
  await writeFile(small, pseudoText(7, 100_000));
  const seen = await markOfFile(small);
  assert.equal((await encoder.encodeBatched(small, seen)).changed, false);
  await appendFile(small, 'more');
  const batched = await encoder.encodeBatched(small, seen);
  assert.equal(batched.changed, true);
  assert.equal(batched.blobs.reduce((n, b) => n + b.rawLength, 0), 100_004, 'saved as read');
});
