import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { test } from 'node:test';
import type * as ZstdBinding from 'zstd-napi/binding.js';
import { compress, compressIfSmaller, decompress, decompressInto } from '../../src/repo/format/compression.js';
import { LocalBackend } from '../../src/repo/backends/local.js';
import { Repository } from '../../src/repo/repository.js';
import { objectKey } from '../../src/repo/format/layout.js';
import { pseudoRandom, pseudoText, tempDir } from '../support/helpers.js';

const zstd = createRequire(import.meta.url)('zstd-napi/binding.js') as typeof ZstdBinding;

/** A frame as a streaming compressor writes it: without the content's size in its header. */
function streamedFrame(data: Buffer): Buffer {
  const context = new zstd.CCtx();
  const out = Buffer.alloc(zstd.compressBound(data.length) + 1024);
  let at = 0;
  // Fed before it is ended, as a stream is, the compressor cannot know the whole size.
  for (let rest = data; rest.length > 0; ) {
    const [, produced, consumed] = context.compressStream2(out.subarray(at), rest, zstd.EndDirective.continue);
    at += produced;
    rest = rest.subarray(consumed);
  }
  for (let remaining = 1; remaining !== 0; ) {
    const [left, produced] = context.compressStream2(out.subarray(at), Buffer.alloc(0), zstd.EndDirective.end);
    at += produced;
    remaining = left;
  }
  return out.subarray(0, at);
}

test('decompress gives back what compress made, whatever its size, frame after frame', () => {
  for (const data of [Buffer.alloc(0), pseudoText(1, 100), pseudoRandom(2, 70_000), pseudoText(3, 3_000_000)]) {
    assert.deepEqual(decompress(compress(data)), data);
  }
  const [a, b] = [pseudoText(4, 5_000), pseudoText(5, 9_000)];
  assert.deepEqual(decompress(Buffer.concat([compress(a), compress(b)])), Buffer.concat([a, b]));
  const text = pseudoText(6, 20_000);
  const small = compressIfSmaller(text)!;
  const into = Buffer.alloc(text.length);
  assert.deepEqual(into.subarray(0, decompressInto(small, into)), text);
});

test('frames that do not say their content\'s size are decompressed as a stream; one cut short is refused', () => {
  // Far larger than one output chunk of the stream (128 KiB), from a small frame.
  const big = Buffer.concat(Array.from({ length: 40 }, () => pseudoText(7, 100_000)));
  const frame = streamedFrame(big);
  assert.equal(zstd.getFrameContentSize(frame), null, 'the test frame has no size in its header');
  assert.ok(frame.length < big.length / 10);
  assert.deepEqual(decompress(frame), big);
  const other = pseudoText(8, 1_000);
  assert.deepEqual(decompress(Buffer.concat([frame, streamedFrame(other)])), Buffer.concat([big, other]));
  assert.throws(() => decompress(frame.subarray(0, frame.length - 10)));
  assert.throws(() => decompress(compress(big).subarray(0, 100)));
});

test('frames say their content\'s size; database dumps get zstd\'s own level 3, files smaller match tables; frames of either read', () => {
  const data = Buffer.concat([pseudoText(9, 1_000_000), pseudoRandom(10, 200_000), pseudoText(9, 1_000_000)]);
  const levelThree = new zstd.CCtx();
  const out = Buffer.alloc(zstd.compressBound(data.length));
  const plain = Buffer.from(out.subarray(0, levelThree.compress(out, data, 3)));
  // decompress() sizes its output from the header; without it every blob would take the stream path.
  assert.equal(zstd.getFrameContentSize(compress(data)), data.length);
  // A dump came out 2.9% larger with the files' tables: it keeps zstd's own, byte for byte.
  assert.deepEqual(compressIfSmaller(data), plain);
  assert.deepEqual(compress(data), plain);
  const file = Buffer.from(compressIfSmaller(data, 'file')!);
  assert.notDeepEqual(file, plain, 'files get other match tables');
  assert.deepEqual(decompress(file), data);
  assert.deepEqual(decompress(plain), data);
});

test('JSON (trees, content lists, the repository\'s own objects) gets level 1, on it smaller than level 3', async (t) => {
  const id = (i: number) => pseudoRandom(i, 32).toString('hex');
  const json = Buffer.from(JSON.stringify({ nodes: Array.from({ length: 2000 }, (_, i) => ({ name: `page-${i}.1.gz`, type: 'file', mode: 420, mtime: `17${i}000000000`, size: 1000 + i, content: [id(i)] })) }));
  const out = Buffer.alloc(zstd.compressBound(json.length));
  const levelOne = Buffer.from(out.subarray(0, new zstd.CCtx().compress(out, json, 1)));
  const levelThree = Buffer.from(out.subarray(0, new zstd.CCtx().compress(out, json, 3)));
  assert.deepEqual(compress(json, 'json'), levelOne);
  assert.deepEqual(compressIfSmaller(json, 'json'), levelOne);
  assert.ok(levelOne.length < levelThree.length, `level 1 ${levelOne.length} bytes, level 3 ${levelThree.length}`);
  assert.deepEqual(decompress(levelOne), json);

  // A tree blob is stored so, with no kind named: in a repository without encryption, its stored bytes are the frame.
  const dir = await tempDir(t);
  const repo = await Repository.init(new LocalBackend(join(dir, 'repo')), { password: null, immutabilityDays: 0 });
  const writer = repo.newBlobWriter();
  const { id: treeId } = await writer.save('tree', json);
  await writer.flush();
  const entry = repo.index.get(treeId)!;
  assert.equal(entry.compressed, true);
  const pack = await repo.backend.get(objectKey('data', entry.pack));
  assert.deepEqual(pack.subarray(entry.offset, entry.offset + entry.length), levelOne);
});
