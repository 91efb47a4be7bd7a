import assert from 'node:assert/strict';
import { readdir, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { DIRECT_WRITE_MIN_BYTES } from '../../src/util/direct-io.js';
import { LocalBackend } from '../../src/repo/backends/local.js';
import { PackFileReader } from '../../src/repo/decode/pack-file-reader.js';
import { IntegrityError } from '../../src/util/errors.js';
import { backendContract } from '../support/backend-contract.js';
import { onMountedFileSystem, pseudoRandom, tempDir } from '../support/helpers.js';

const execFileP = promisify(execFile);

test('put is put-if-absent: a second put leaves the object untouched', async (t) => {
  const dir = await tempDir(t);
  const backend = new LocalBackend(dir);
  await backend.prepare();
  assert.deepEqual(await backend.put('data/ab/abcd', Buffer.from('first')), { created: true });
  const before = await stat(join(dir, 'data/ab/abcd'));
  assert.deepEqual(await backend.put('data/ab/abcd', Buffer.from('other')), { created: false });
  assert.equal((await backend.get('data/ab/abcd')).toString(), 'first');
  const after = await stat(join(dir, 'data/ab/abcd'));
  assert.equal(after.ino, before.ino);
  assert.equal(after.mtimeMs, before.mtimeMs);
  assert.equal(after.mode & 0o777, 0o444, 'stored objects are read-only');
  assert.deepEqual(await readdir(join(dir, 'tmp')), [], 'no temporary file is left');
});

/** A new folder repository, with direct I/O or without. */
async function newBackend(t: TestContext, directIo: boolean): Promise<{ dir: string; backend: LocalBackend }> {
  const dir = await tempDir(t);
  const backend = new LocalBackend(dir, { directIo });
  await backend.prepare();
  return { dir, backend };
}

/** Thousands of small parts, one larger than a write slot, an empty one, and one of `lastBytes`. */
function mixedParts(lastBytes: number): Buffer[] {
  return [...Array.from({ length: 3000 }, (_, i) => pseudoRandom(i + 1, 37 + (i % 300))), pseudoRandom(9001, 1_300_000), Buffer.alloc(0), pseudoRandom(9002, lastBytes)];
}

for (const directIo of [true, false]) {
test(`putParts stores the concatenation of its parts: thousands of small ones and ones larger than a write (${directIo ? 'past' : 'through'} the page cache)`, async (t) => {
  const { dir, backend } = await newBackend(t, directIo);
  // More parts than one writev takes (IOV_MAX is 1024), and parts larger than one write group.
  const parts = mixedParts(600_000);
  assert.deepEqual(await backend.putParts('data/cd/cdef', parts), { created: true });
  assert.ok((await backend.get('data/cd/cdef')).equals(Buffer.concat(parts)));
  assert.deepEqual(await backend.putParts('data/cd/cdef', parts), { created: false });
  assert.deepEqual(await readdir(join(dir, 'tmp')), [], 'no temporary file is left');
});

test(`an object file stores its appends in order, some made while earlier ones waited, then as put() stores (${directIo ? 'past' : 'through'} the page cache)`, async (t) => {
  const { dir, backend } = await newBackend(t, directIo);
  // Small appends, ones larger than a write slot (1 MiB), an empty one, an odd tail.
  const parts = [...mixedParts(2_600_000), ...Array.from({ length: 50 }, (_, i) => pseudoRandom(9100 + i, 40_000)), pseudoRandom(9003, 7)];
  const whole = Buffer.concat(parts);
  const file = backend.createObjectFile();
  // Not waited for one by one, as a backup's many files add blobs to one pack: they must keep their order.
  const waits = parts.map((p) => file.append(p));
  assert.ok(waits.some((w) => w !== undefined), 'some appends waited for a slot');
  await Promise.all(waits);
  assert.deepEqual(await file.store('data/cd/cdef'), { created: true });
  assert.equal((await stat(join(dir, 'data/cd/cdef'))).size, whole.length, 'no padding is left');
  assert.equal((await stat(join(dir, 'data/cd/cdef'))).mode & 0o777, 0o444, 'stored objects are read-only');
  assert.ok((await backend.get('data/cd/cdef')).equals(whole));
  // Never replacing: the same object again is reported, a discarded one leaves nothing.
  const again = backend.createObjectFile();
  await again.append(whole);
  assert.deepEqual(await again.store('data/cd/cdef'), { created: false });
  const dropped = backend.createObjectFile();
  await dropped.append(whole);
  await dropped.discard();
  const empty = backend.createObjectFile();
  assert.deepEqual(await empty.store('data/ee/ee00'), { created: true });
  assert.equal((await backend.get('data/ee/ee00')).length, 0);
  assert.deepEqual(await readdir(join(dir, 'tmp')), [], 'no temporary file is left');
});

test(`large objects keep their exact length: block multiples, odd tails, more than one slot (${directIo ? 'past' : 'through'} the page cache)`, async (t) => {
  const dir = await tempDir(t);
  const backend = new LocalBackend(dir, { directIo });
  await backend.prepare();
  // Direct writes go through 4 MiB slots and pad the last block: sizes on and around both.
  const sizes = [DIRECT_WRITE_MIN_BYTES, DIRECT_WRITE_MIN_BYTES + 1, 4 * 1024 * 1024 - 1, 4 * 1024 * 1024, 4 * 1024 * 1024 + 4095, 9 * 1024 * 1024 + 17];
  const stored = await Promise.all(
    sizes.map(async (size, i) => {
      const parts = [pseudoRandom(100 + i, 1000), pseudoRandom(200 + i, size - 1000 - 7), pseudoRandom(300 + i, 7)];
      await backend.putParts(`data/0${i}/0${i}`, parts);
      return Buffer.concat(parts);
    }),
  );
  for (const [i, expected] of stored.entries()) {
    const key = `data/0${i}/0${i}`;
    assert.equal((await stat(join(dir, 'data', `0${i}`, `0${i}`))).size, sizes[i], 'no padding is left');
    assert.ok((await backend.get(key)).equals(expected));
    // Large ranges are read past the page cache too: at unaligned offsets, and up to the end.
    for (const [offset, length] of [[1, expected.length - 1], [4095, 70_000], [expected.length - 65_537, 65_537]] as const) {
      assert.ok((await backend.get(key, { offset, length })).equals(expected.subarray(offset, offset + length)), `${key} at ${offset}, ${length} bytes`);
    }
    await assert.rejects(backend.get(key, { offset: expected.length - 70_000, length: 70_001 }), /truncated/);
  }
});
}

test('pack files are read whole and in part, and a truncated one is damage', async (t) => {
  const dir = await tempDir(t);
  const file = join(dir, 'pack');
  const bytes = pseudoRandom(5, 6 * 1024 * 1024 + 123);
  await writeFile(file, bytes);
  const reader = new PackFileReader();
  try {
    for (const [offset, length] of [[0, 10], [17, 65_535], [17, 65_536], [4096, 5 * 1024 * 1024], [1, bytes.length - 1]] as const) {
      assert.ok(reader.read(file, offset, length).equals(bytes.subarray(offset, offset + length)), `at ${offset}, ${length} bytes`);
    }
    assert.throws(() => reader.read(file, bytes.length - 100_000, 100_001), IntegrityError);
    assert.throws(() => reader.read(file, bytes.length - 10, 11), IntegrityError);
  } finally {
    reader.close();
  }
});

/** A folder backend holding `count` objects of random bytes, object i `size(i)` long. */
async function backendWithObjects(t: TestContext, count: number, size: (i: number) => number): Promise<{ backend: LocalBackend; objects: Array<{ key: string; bytes: Buffer }> }> {
  const backend = new LocalBackend(await tempDir(t));
  await backend.prepare();
  const objects = Array.from({ length: count }, (_, i) => ({ key: `data/${(i % 256).toString(16).padStart(2, '0')}/obj${i}`, bytes: pseudoRandom(i + 1, size(i)) }));
  for (const o of objects) await backend.put(o.key, o.bytes);
  return { backend, objects };
}

test('small ranges of more objects than stay open at once all come from their own object', async (t) => {
  // A bug found by check --read-data in the bench: opening the 33rd object closed its own
  // new descriptor at once, and the read went to whatever file had reused the number.
  const { backend, objects } = await backendWithObjects(t, 80, (i) => 3000 + i);
  for (let round = 0; round < 5; round++) {
    await Promise.all(
      objects.map(async (o, i) => {
        const offset = (round * 131 + i) % 1000;
        const got = await backend.get(o.key, { offset, length: 1000 });
        assert.ok(got.equals(o.bytes.subarray(offset, offset + 1000)), `${o.key} at ${offset}, round ${round}`);
      }),
    );
  }
});

test('a small ranged read holds no more memory than its object, and many objects read in turns all come right', async (t) => {
  // A backup's walk reads the previous trees from every tree pack written since, most of
  // them small: each window was 1 MiB whatever the object held, sixteen kept at most.
  const { backend, objects } = await backendWithObjects(t, 40, (i) => 100_000 + i);
  for (let round = 0; round < 3; round++) {
    for (const [i, o] of objects.entries()) {
      const offset = (round * 7919 + i * 104) % 90_000;
      const got = await backend.get(o.key, { offset, length: 5000 });
      assert.ok(got.equals(o.bytes.subarray(offset, offset + 5000)), `${o.key} at ${offset}, round ${round}`);
      assert.ok(got.buffer.byteLength <= o.bytes.length, `the window of ${o.key} holds ${got.buffer.byteLength} bytes`);
    }
  }
  await backend.close();
});

test('readAll joins blobs that lie close together in a pack into one read, and leaves the blobs of a failed read for reading one by one', async (t) => {
  const dir = await tempDir(t);
  const [a, b] = [join(dir, 'pack-a'), join(dir, 'pack-b')];
  const bytesA = pseudoRandom(6, 3 * 1024 * 1024);
  const bytesB = pseudoRandom(7, 200_000);
  await writeFile(a, bytesA);
  await writeFile(b, bytesB);
  const places = [
    // Asked out of order: two runs in pack a (a gap of 64 KiB joins, one larger does not), one in pack b.
    { file: a, offset: 70_000, length: 5_000 },
    { file: b, offset: 10, length: 100 },
    { file: a, offset: 1_000, length: 4_000 },
    { file: a, offset: 5_000 + 64 * 1024, length: 900 },
    { file: a, offset: 2 * 1024 * 1024, length: 300_000 },
    { file: b, offset: 110, length: 199_890 },
    { file: a, offset: 1_000, length: 4_000 },
    // Past the end of pack b: its run fails, and both its blobs are left undefined.
    { file: b, offset: 199_000, length: 1_001 },
  ];
  const reader = new PackFileReader();
  const reads: Array<[string, number, number]> = [];
  const readOne = reader.read.bind(reader);
  reader.read = (file, offset, length) => {
    reads.push([file, offset, length]);
    return readOne(file, offset, length);
  };
  try {
    const got = reader.readAll(places);
    places.forEach((p, i) => {
      const want = (p.file === a ? bytesA : bytesB).subarray(p.offset, p.offset + p.length);
      if (p.file === b) assert.equal(got[i], undefined, `blob ${i} shares a read with the blob past the end`);
      else assert.ok(got[i]?.equals(want), `blob ${i}`);
    });
    assert.deepEqual(reads, [
      [a, 1_000, 70_000 + 5_000 - 1_000],
      [a, 2 * 1024 * 1024, 300_000],
      [b, 10, 200_001 - 10],
    ]);
  } finally {
    reader.close();
  }
});

test('a file system that refuses direct writes (ramfs) gets large objects through the page cache', (t) =>
  onMountedFileSystem(
    t,
    (dir) => ['-t', 'ramfs', 'ramfs', dir],
    async (dir) => {
      const backend = new LocalBackend(join(dir, 'repo'), { directIo: true });
      await backend.prepare();
      const big = pseudoRandom(7, 3 * 1024 * 1024 + 5);
      assert.deepEqual(await backend.put('data/ef/ef01', big), { created: true });
      assert.ok((await backend.get('data/ef/ef01')).equals(big));
      const file = new LocalBackend(join(dir, 'repo'), { directIo: true }).createObjectFile();
      await file.append(big.subarray(0, 2_000_001));
      await file.append(big.subarray(2_000_001));
      assert.deepEqual(await file.store('data/ef/ef02'), { created: true });
      assert.ok((await backend.get('data/ef/ef02')).equals(big));
      assert.deepEqual(await readdir(join(dir, 'repo', 'tmp')), [], 'no temporary file is left');
    },
  ));

test('without address space for aligned memory (ulimit -v), large objects go through the page cache', async (t) => {
  const dir = await tempDir(t);
  const backend = new URL('../../src/repo/backends/local.js', import.meta.url).href;
  // WebAssembly memory reserves its address space up front; under this limit Node runs but cannot have any.
  const script = `
    const { LocalBackend } = await import(${JSON.stringify(backend)});
    const b = new LocalBackend(${JSON.stringify(join(dir, 'repo'))}, { directIo: true });
    await b.prepare();
    const big = Buffer.alloc(3 * 1024 * 1024 + 1, 7);
    await b.put('data/ab/ab01', big);
    if (!(await b.get('data/ab/ab01')).equals(big) || !(await b.get('data/ab/ab01', { offset: 1, length: 200000 })).equals(big.subarray(1, 200001))) throw new Error('bytes differ');
    const f = new LocalBackend(${JSON.stringify(join(dir, 'repo'))}, { directIo: true }).createObjectFile();
    await f.append(big);
    await f.store('data/ab/ab02');
    if (!(await b.get('data/ab/ab02')).equals(big)) throw new Error('bytes of the object file differ');
    console.log('stored');`;
  const { stdout } = await execFileP('sh', ['-c', `ulimit -v 4000000 && exec "${process.execPath}" --input-type=module -e '${script.replaceAll("'", "'\\''")}'`]);
  assert.equal(stdout.trim(), 'stored');
});

for (const directIo of [true, false]) {
  test(`a full disk fails the write with its reason and leaves nothing (${directIo ? 'past' : 'through'} the page cache)`, async (t) => {
    const image = join(await tempDir(t), 'small.img');
    await execFileP('truncate', ['-s', '8M', image]);
    await execFileP('mkfs.ext4', ['-q', '-F', image]);
    await onMountedFileSystem(
      t,
      (dir) => ['-o', 'loop', image, dir],
      async (dir) => {
        const backend = new LocalBackend(join(dir, 'repo'), { directIo });
        await backend.prepare();
        await backend.put('data/aa/aa01', pseudoRandom(1, 3 * 1024 * 1024));
        await assert.rejects(backend.put('data/bb/bb01', pseudoRandom(2, 5 * 1024 * 1024 + 3)), /cannot write data\/bb\/bb01 to .*: no space left on device/);
        // A pack written as it fills: the append that meets the full disk, or the store after, fails with the reason.
        const file = backend.createObjectFile();
        const filling = (async () => {
          for (let i = 0; i < 6; i++) await file.append(pseudoRandom(10 + i, 1024 * 1024 + 3));
          return file.store('data/cc/cc01');
        })();
        await assert.rejects(filling, /cannot write (a new object|data\/cc\/cc01) to .*: no space left on device/);
        await file.discard();
        assert.deepEqual(await readdir(join(dir, 'repo', 'tmp')), [], 'no temporary file is left');
        assert.equal(await backend.stat('data/bb/bb01'), undefined);
        assert.equal(await backend.stat('data/cc/cc01'), undefined);
        assert.equal((await backend.stat('data/aa/aa01'))?.size, 3 * 1024 * 1024, 'what was stored stays');
      },
    );
  });
}

test('on a full disk, a folder that cannot be made is reported as no space left, not as a missing folder', async (t) => {
  const image = join(await tempDir(t), 'small.img');
  await execFileP('truncate', ['-s', '8M', image]);
  await execFileP('mkfs.ext4', ['-q', '-F', '-m', '0', image]);
  await onMountedFileSystem(
    t,
    (dir) => ['-o', 'loop', image, dir],
    async (dir) => {
      const backend = new LocalBackend(join(dir, 'repo'));
      await backend.prepare();
      // Every block taken: the rest by a file, then by folders until none can be made.
      await execFileP('sh', ['-c', `dd if=/dev/zero of=${join(dir, 'fill')} bs=64k 2>/dev/null; i=0; while mkdir ${join(dir, 'f')}$i 2>/dev/null; do i=$((i+1)); done`]);
      // An empty object needs no block of its own, only its folders data/ and data/ee/ (Node's recursive mkdir said ENOENT).
      await assert.rejects(backend.put('data/ee/ee01', Buffer.alloc(0)), /cannot write data\/ee\/ee01 to .*: no space left on device/);
      assert.deepEqual(await readdir(join(dir, 'repo', 'tmp')), [], 'no temporary file is left');
    },
  );
});

test('an existing object of another size is reported as damaged, not silently accepted', async (t) => {
  const dir = await tempDir(t);
  const backend = new LocalBackend(dir);
  await backend.prepare();
  await backend.put('index/x', Buffer.from('12345'));
  await assert.rejects(backend.put('index/x', Buffer.from('123')), IntegrityError);
});

test('ranges, listing and stat; temporary uploads are not listed', async (t) => {
  const dir = await tempDir(t);
  const backend = new LocalBackend(dir);
  await backend.prepare();
  await backend.put('snapshots/s1', Buffer.from('0123456789'));
  await writeFile(join(dir, 'tmp', 'leftover.upload'), 'partial');
  assert.equal((await backend.get('snapshots/s1', { offset: 3, length: 4 })).toString(), '3456');
  await assert.rejects(backend.get('snapshots/s1', { offset: 8, length: 4 }), /truncated/);
  const listed = [];
  for await (const info of backend.list('snapshots/')) listed.push(info.key);
  assert.deepEqual(listed, ['snapshots/s1']);
  assert.equal((await backend.stat('snapshots/s1'))?.size, 10);
  assert.equal(await backend.stat('snapshots/none'), undefined);
  const stale = await backend.staleUploads(-1, new Date());
  assert.deepEqual(stale.map((s) => s.key), ['tmp/leftover.upload']);
});

test('a write that cannot happen names the object and the reason, and leaves nothing', async (t) => {
  const dir = await tempDir(t);
  const backend = new LocalBackend(join(dir, 'repo'));
  await backend.prepare();
  await writeFile(join(dir, 'repo', 'data'), 'a file where a folder should be');
  await assert.rejects(backend.put('data/ab/abcd', Buffer.from('x')), /cannot write data\/ab\/abcd to .*repo/);
  assert.deepEqual(await readdir(join(dir, 'repo', 'tmp')), []);
});

test('a repository is created only in a new or empty folder', async (t) => {
  const dir = await tempDir(t);
  await writeFile(join(dir, 'someones-file.txt'), 'do not mix');
  await assert.rejects(new LocalBackend(dir).prepare(), /is not empty and holds no repository/);
  assert.deepEqual(await readdir(dir), ['someones-file.txt']);
  await new LocalBackend(join(dir, 'new')).prepare();
});

backendContract('local', async (t) => new LocalBackend(join(await tempDir(t), 'repo')));
