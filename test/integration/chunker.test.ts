import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import { Chunker } from '../../src/repo/encode/chunker.js';
import { JsGearScanner, WasmGearScanner } from '../../src/repo/encode/gear-scan.js';
import { pseudoRandom } from '../support/helpers.js';

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
  // 9 MiB is more than the 4.25 MiB window: its data moves to the window's start on the way.
  for (const size of [0, 7, 5000, params.max, params.max + 1, 9 * 1024 * 1024 + 3]) {
    const data = pseudoRandom(size + 1, size);
    const file = join(dir, `f${size}`);
    await writeFile(file, data);
    const got: string[] = [];
    const fd = openSync(file, 'r');
    try {
      chunker.chunkFdSync(fd, (c) => got.push(c.toString('base64')));
    } finally {
      closeSync(fd);
    }
    assert.deepEqual(got, chunks(chunker, data).map((c) => c.toString('base64')), `${size} bytes`);
  }
});

test('chunkFile through a window it is given cuts where it cuts alone, file after file in the same window', async (t) => {
  const { mkdtemp, rm, writeFile, open } = await import('node:fs/promises');
  const { join } = await import('node:path');
  const { tmpdir } = await import('node:os');
  const dir = await mkdtemp(join(tmpdir(), 'sv-chunk-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const chunker = new Chunker(Buffer.alloc(32, 9), params);
  const window = Buffer.alloc(chunker.windowBytes);
  // Closed here: left open, Node closed it when collected, with a warning in a later test's output.
  const small = await open(join(dir, 'none'), 'w');
  try {
    await assert.rejects(async () => {
      for await (const _ of chunker.chunkFile(small, 0, Buffer.alloc(10))) void _;
    }, /window needs/);
  } finally {
    await small.close();
  }
  // Larger than the window (its data moves to the window's start on the way), and smaller files after.
  for (const size of [9 * 1024 * 1024 + 3, 0, 5000, params.max + 1]) {
    const data = pseudoRandom(size + 2, size);
    const file = join(dir, `f${size}`);
    await writeFile(file, data);
    const fh = await open(file, 'r');
    const got: string[] = [];
    try {
      // Each chunk is a view into the window, read before the next is asked for.
      for await (const chunk of chunker.chunkFile(fh, size, window)) {
        assert.equal(chunk.buffer, window.buffer);
        got.push(chunk.toString('base64'));
      }
    } finally {
      await fh.close();
    }
    assert.deepEqual(got, chunks(chunker, data).map((c) => c.toString('base64')), `${size} bytes`);
  }
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

test('boundaries stay where earlier versions put them, so existing repositories keep deduplicating', () => {
  // Lengths cut by the chunker before its loop moved to WebAssembly (random data, 10 MiB of zeros, random again).
  const data = Buffer.concat([pseudoRandom(11, 24 << 20), Buffer.alloc(10 << 20), pseudoRandom(12, 6 << 20)]);
  assert.deepEqual(
    chunks(new Chunker(Buffer.alloc(32, 5)), data).map((c) => c.length),
    [
      1120713, 1131152, 1500150, 1744184, 1125496, 1299357, 1107269, 1005208, 1138809, 1221516, 1477642, 1100610, 1090972, 715112,
      1839562, 1163102, 1149102, 1066653, 1354111, 1151859, 8388608, 3121772, 1118823, 1994739, 1055923, 1279212, 481384,
    ],
  );
  assert.deepEqual(
    chunks(new Chunker(Buffer.alloc(32, 5), params), pseudoRandom(13, 2 << 20)).map((c) => c.length),
    [
      90651, 66602, 86720, 70569, 62656, 95127, 72737, 76155, 66033, 74170, 80057, 66714, 65532, 80550, 48787, 66896, 86035, 74510,
      18689, 71268, 65863, 78145, 68943, 40712, 128677, 66336, 54975, 72664, 80339, 20040,
    ],
  );
});

test('the WebAssembly scan finds what the JavaScript one finds, in its window and in any other buffer', () => {
  const gear = Int32Array.from({ length: 256 }, (_, i) => pseudoRandom(i + 1, 4).readInt32LE(0));
  const wasm = WasmGearScanner.create(gear);
  assert.ok(wasm, 'WebAssembly runs here');
  const js = new JsGearScanner(gear);
  const outside = pseudoRandom(21, 1 << 20);
  const window = wasm.window(outside.length);
  outside.copy(window);
  for (let round = 0; round < 400; round++) {
    const r = pseudoRandom(round + 100, 16);
    const from = r.readUInt32LE(0) % outside.length;
    // Ranges of up to 300 KiB span several scratch areas of the copying path.
    const to = Math.min(outside.length, from + (r.readUInt32LE(4) % (300 * 1024)));
    const mask = (~0 << (32 - (8 + (r[8]! % 12)))) | 0;
    const h = r.readInt32LE(12);
    const expected = js.scan(outside, from, to, mask, h);
    for (const [where, buf] of [['window', window], ['elsewhere', outside]] as const) {
      assert.equal(wasm.scan(buf, from, to, mask, h), expected, `${where}: round ${round}`);
      assert.equal(wasm.h, js.h, `${where}: hash after round ${round}`);
    }
  }
});

test('without WebAssembly memory (ulimit -v) the chunker cuts where it always does, in JavaScript', async () => {
  const { execFile } = await import('node:child_process');
  const { promisify } = await import('node:util');
  const chunkerUrl = new URL('../../src/repo/encode/chunker.js', import.meta.url).href;
  const scanUrl = new URL('../../src/repo/encode/gear-scan.js', import.meta.url).href;
  const script = `
    const { Chunker } = await import(${JSON.stringify(chunkerUrl)});
    const { WasmGearScanner } = await import(${JSON.stringify(scanUrl)});
    const chunker = new Chunker(Buffer.alloc(32, 5), { min: 16384, avg: 65536, max: 262144 });
    const data = Buffer.alloc(1 << 20);
    for (let i = 0; i < data.length; i++) data[i] = (i * 2654435761) >>> 24;
    const lengths = [];
    for (let at = 0; at < data.length; ) { const n = chunker.cut(data, at, Math.min(data.length, at + 262144)); lengths.push(n); at += n; }
    console.log(JSON.stringify({ wasm: WasmGearScanner.create(new Int32Array(256)) !== null, lengths }));`;
  const run = (limit: string) =>
    promisify(execFile)('sh', ['-c', `${limit}exec "${process.execPath}" --input-type=module -e '${script.replaceAll("'", "'\\''")}'`]);
  const limited = JSON.parse((await run('ulimit -v 4000000 && ')).stdout) as { wasm: boolean; lengths: number[] };
  const free = JSON.parse((await run('')).stdout) as { wasm: boolean; lengths: number[] };
  assert.equal(limited.wasm, false, 'the limit leaves no room for WebAssembly memory');
  assert.equal(free.wasm, true);
  assert.deepEqual(limited.lengths, free.lengths);
  assert.ok(free.lengths.length > 3);
});
