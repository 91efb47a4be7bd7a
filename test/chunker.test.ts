import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import { Chunker } from '../src/repo/chunker.js';
import { pseudoRandom } from './helpers.js';

function chunks(chunker: Chunker, data: Buffer): Buffer[] {
  const out: Buffer[] = [];
  for (let at = 0; at < data.length; ) {
    const n = chunker.cut(data, at, Math.min(data.length, at + chunker.params.max));
    out.push(data.subarray(at, at + n));
    at += n;
  }
  return out;
}

const params = { min: 16 * 1024, avg: 64 * 1024, max: 256 * 1024 };

test('chunks respect min and max and average near the target', () => {
  const chunker = new Chunker(randomBytes(32), params);
  const data = pseudoRandom(3, 16 * 1024 * 1024);
  const parts = chunks(chunker, data);
  assert.equal(Buffer.concat(parts).equals(data), true);
  for (const p of parts.slice(0, -1)) {
    assert.ok(p.length >= params.min && p.length <= params.max, `chunk of ${p.length} bytes`);
  }
  const mean = data.length / parts.length;
  assert.ok(mean > params.avg * 0.6 && mean < params.avg * 1.6, `mean chunk ${mean}`);
});

test('boundaries follow content: an insertion changes only nearby chunks', () => {
  const chunker = new Chunker(Buffer.alloc(32, 7), params);
  const data = pseudoRandom(4, 8 * 1024 * 1024);
  const shifted = Buffer.concat([data.subarray(0, 1000), Buffer.from('inserted bytes'), data.subarray(1000)]);
  const a = new Set(chunks(chunker, data).map((c) => c.toString('base64')));
  const b = chunks(chunker, shifted);
  const shared = b.filter((c) => a.has(c.toString('base64'))).length;
  assert.ok(shared >= b.length - 3, `only ${shared} of ${b.length} chunks survived an insertion`);
});

test('the seed changes the boundaries', () => {
  const data = pseudoRandom(5, 4 * 1024 * 1024);
  const a = chunks(new Chunker(Buffer.alloc(32, 1), params), data).map((c) => c.length);
  const b = chunks(new Chunker(Buffer.alloc(32, 2), params), data).map((c) => c.length);
  assert.notDeepEqual(a, b);
});

test('chunkFile gives the same chunks whatever the size hint, also when the file is larger than it says', async (t) => {
  const { mkdtemp, open, rm, writeFile } = await import('node:fs/promises');
  const { join } = await import('node:path');
  const { tmpdir } = await import('node:os');
  const dir = await mkdtemp(join(tmpdir(), 'sv-chunk-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const chunker = new Chunker(Buffer.alloc(32, 9), params);
  const data = pseudoRandom(6, 3 * 1024 * 1024 + 17);
  const file = join(dir, 'f');
  await writeFile(file, data);
  const expected = chunks(chunker, data).map((c) => c.toString('base64'));
  for (const hint of [undefined, data.length, 10, 0, 200_000]) {
    const fh = await open(file, 'r');
    const got: string[] = [];
    for await (const c of chunker.chunkFile(fh, hint)) got.push(c.toString('base64'));
    await fh.close();
    assert.deepEqual(got, expected, `size hint ${hint}`);
  }
});

test('chunkFdSync gives the chunks chunkFile gives, for empty, small and window-spanning files', async (t) => {
  const { mkdtemp, rm, writeFile } = await import('node:fs/promises');
  const { closeSync, openSync } = await import('node:fs');
  const { join } = await import('node:path');
  const { tmpdir } = await import('node:os');
  const dir = await mkdtemp(join(tmpdir(), 'sv-chunk-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const chunker = new Chunker(Buffer.alloc(32, 9), params);
  const window = Buffer.alloc(chunker.windowBytes);
  // 9 MiB is more than the 4.25 MiB window: its data moves to the window's start on the way.
  for (const size of [0, 7, 5000, params.max, params.max + 1, 9 * 1024 * 1024 + 3]) {
    const data = pseudoRandom(size + 1, size);
    const file = join(dir, `f${size}`);
    await writeFile(file, data);
    const got: string[] = [];
    const fd = openSync(file, 'r');
    try {
      chunker.chunkFdSync(fd, window, (c) => got.push(c.toString('base64')));
    } finally {
      closeSync(fd);
    }
    assert.deepEqual(got, chunks(chunker, data).map((c) => c.toString('base64')), `${size} bytes`);
  }
  assert.throws(() => chunker.chunkFdSync(0, Buffer.alloc(10), () => undefined), /smaller than/);
});

test('chunkFile reads a file to its end even when reads come back short before it', async () => {
  // Some network and FUSE file systems return fewer bytes than asked in the middle of a
  // file; taking that for the end would store the file cut short, without an error.
  const chunker = new Chunker(Buffer.alloc(32, 9), params);
  const data = pseudoRandom(11, 700_000);
  let at = 0;
  const shortReads = {
    async read(buffer: Buffer, offset: number, length: number): Promise<{ bytesRead: number }> {
      const n = Math.min(length, 4096, data.length - at);
      data.copy(buffer, offset, at, at + n);
      at += n;
      return { bytesRead: n };
    },
  };
  const got: Buffer[] = [];
  for await (const c of chunker.chunkFile(shortReads, data.length)) got.push(c);
  assert.equal(Buffer.concat(got).length, data.length);
  assert.deepEqual(got.map((c) => c.toString('base64')), chunks(chunker, data).map((c) => c.toString('base64')));
});
