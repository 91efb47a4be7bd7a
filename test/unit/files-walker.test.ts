import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { chmod, lstat, mkdir, readFile, rm, symlink, unlink, utimes, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { test } from 'node:test';
import { statWalk, type TreeNode } from '../../src/sources/files/entries.js';
import { ListingThread } from '../../src/sources/files/listing-thread.js';
import { FilesWalker, type FilesSink, type WalkProgress } from '../../src/sources/files/walker.js';
import { AdaptiveReader } from '../../src/util/adaptive-io.js';
import { osPath } from '../../src/util/os-path.js';
import { makeRichTree, tempDir } from '../support/helpers.js';

/** A sink that keeps everything in memory, content by its hash: the walker needs no repository. */
class MemorySink implements FilesSink {
  readonly contents = new Map<string, Buffer>();
  readonly folders = new Map<string, TreeNode[]>();
  filesStored = 0;
  async previousFolder(id: string) {
    return this.folders.get(id);
  }
  has(id: string): boolean {
    return (this.contents.has(id) || this.folders.has(id)) && !this.lost.has(id);
  }
  /** blobs the test makes the repository lose (as a repaired index would) */
  readonly lost = new Set<string>();
  admitNow() {
    return { release: () => undefined };
  }
  async admit() {
    return { release: () => undefined };
  }
  async storeFile(path: string, _mark: unknown, _admission: unknown, stored: (storedBytes: number, length: number) => void) {
    const data = await readFile(osPath(path));
    const id = createHash('sha256').update(data).digest('hex');
    stored(this.contents.has(id) ? 0 : data.length, data.length);
    this.contents.set(id, data);
    this.filesStored++;
    return { content: [id], size: data.length, changed: false };
  }
  async saveFolder(nodes: TreeNode[]) {
    const id = createHash('sha256').update(JSON.stringify(nodes)).digest('hex');
    this.folders.set(id, nodes);
    return id;
  }
  folderWriter() {
    const nodes: TreeNode[] = [];
    return { add: async (node: TreeNode) => void nodes.push(node), finish: () => this.saveFolder(nodes) };
  }
}

test('the files walker emits a folder tree into any sink, and keeps what the previous walk stored as it was', async (t) => {
  const dir = await tempDir(t);
  const root = join(dir, 'tree');
  await makeRichTree(root, 3);
  await writeFile(join(root, 'notes.txt'), 'first content');
  const sink = new MemorySink();
  const walk = async (previous?: string) => {
    const progress: WalkProgress = { filesDone: 0, bytesDone: 0, bytesAdded: 0, errors: 0, currentPath: '' };
    const source = { name: 'data', kind: 'files' as const, path: root };
    const walker = new FilesWalker(source, {}, sink, progress, () => undefined, () => undefined, new AdaptiveReader());
    const { id } = await walker.saveDir(root, '', previous, false, (await lstat(root, { bigint: true })).dev.toString());
    return { id, walker, progress };
  };
  const first = await walk();
  assert.ok(first.walker.stats.files > 5);
  assert.equal(first.walker.stats.newFiles, first.walker.stats.files);
  assert.equal(sink.filesStored, first.walker.stats.files);

  // Nothing changed: every file and folder is the previous walk's, nothing is read.
  const again = await walk(first.id);
  assert.equal(again.id, first.id);
  assert.equal(again.walker.stats.unchangedFiles, first.walker.stats.files);
  assert.equal(sink.filesStored, first.walker.stats.files);

  // One file changed: only it is read again.
  await writeFile(join(root, 'notes.txt'), 'changed content');
  const changed = await walk(first.id);
  assert.notEqual(changed.id, first.id);
  assert.equal(changed.walker.stats.changedFiles, 1);
  assert.equal(sink.filesStored, first.walker.stats.files + 1);
});

test('a walk with a listing thread stores the same trees and counts as one without, whatever changed', async (t) => {
  const dir = await tempDir(t);
  const root = join(dir, 'tree');
  await makeRichTree(root, 5);
  await mkdir(join(root, 'many/inner'), { recursive: true });
  for (let i = 0; i < 300; i++) await writeFile(join(root, 'many', `f${i}`), `file ${i}`);
  // A name that is not UTF-8.
  await writeFile(Buffer.concat([Buffer.from(`${root}/bad-`), Buffer.of(0xff), Buffer.from('-name')]), 'x');
  await writeFile(join(root, 'many/inner/kept.txt'), 'kept');
  const sink = new MemorySink();
  const classes = { logs: ['*.log'] };
  const dev = (await lstat(root, { bigint: true })).dev.toString();
  const walk = async (previous: string | undefined, threaded: boolean) => {
    const progress: WalkProgress = { filesDone: 0, bytesDone: 0, bytesAdded: 0, errors: 0, currentPath: '' };
    const source = { name: 'data', kind: 'files' as const, path: root, exclude: ['many/f29*'] };
    let thread: ListingThread | undefined;
    if (threaded) {
      thread = new ListingThread(500);
      thread.addRoot(root, dev, { exclude: source.exclude, classes });
      thread.begin();
    }
    try {
      const walker = new FilesWalker(source, classes, sink, progress, () => undefined, () => undefined, new AdaptiveReader(), undefined, thread);
      const { id } = await walker.saveDir(root, '', previous, false, dev);
      const { bytesAdded: _added, ...stats } = walker.stats;
      return { id, stats, errors: walker.errors, excluded: walker.exclusions(), filesDone: progress.filesDone, bytesDone: progress.bytesDone };
    } finally {
      await thread?.close();
    }
  };
  /** Walks once each way against `previous`, the threaded walk first; both must agree. */
  const both = async (previous: string | undefined, what: string) => {
    const threaded = await walk(previous, true);
    const plain = await walk(previous, false);
    assert.deepEqual(threaded, plain, what);
    return threaded;
  };
  const first = await both(undefined, 'first walk');
  let last = first;
  const step = async (what: string, change: () => Promise<void>) => {
    await change();
    const next = await both(first.id, what);
    assert.notEqual(next.id, last.id, `${what}: the tree changed`);
    last = next;
    return next;
  };
  const same = await both(first.id, 'nothing changed');
  assert.equal(same.id, first.id);
  assert.equal(same.stats.unchangedFiles, first.stats.files);
  assert.equal(same.stats.bytesRead, 0);

  await step('a deep file touched', () => utimes(join(root, 'deep/a/b/c/d/leaf.dat'), 1_234_567_890, 1_234_567_890));
  await step('a file added and one removed in a large folder', async () => {
    await writeFile(join(root, 'many/new-file'), 'new');
    await unlink(join(root, 'many/f7'));
  });
  await step('a folder made private', () => chmod(join(root, 'many/inner'), 0o700));
  await step('a symlink pointed elsewhere', async () => {
    await unlink(join(root, 'names/rel-link'));
    await symlink('../docs/text.txt', join(root, 'names/rel-link'));
  });
  await step('an excluded file added', () => writeFile(join(root, 'many/inner/debug.log'), 'left out'));
  await step('a file replaced by a folder', async () => {
    await rm(join(root, 'many/inner/kept.txt'));
    await mkdir(join(root, 'many/inner/kept.txt'));
  });
  const socket = createServer();
  await step('a socket added', () => new Promise<void>((resolve) => socket.listen(join(root, 'docs/socket'), resolve)));
  // (closing it removes it)
  t.after(() => socket.close());

  // A blob the repository lost: the unchanged folder's file is read again, not referenced.
  assert.equal((await walk(last.id, true)).stats.bytesRead, 0);
  // (docs/secret.key: its folder is one the thread finds unchanged; many/f100: its folder
  // holds excluded files, and is compared entry by entry)
  for (const id of sink.contents.keys()) if (['k', 'file 100'].includes(sink.contents.get(id)!.toString())) sink.lost.add(id);
  assert.equal(sink.lost.size, 2);
  const afterLoss = await walk(last.id, true);
  sink.lost.clear();
  assert.equal(afterLoss.stats.changedFiles, 2);
  assert.equal(afterLoss.stats.bytesRead, 1 + 'file 100'.length);
  assert.equal(afterLoss.id, last.id, 'the same content, read again, makes the same tree');

  // A thread that stopped: the walk lists on its own.
  const stopped = new ListingThread();
  stopped.addRoot(root, dev, { classes });
  await stopped.close();
  const walker = new FilesWalker({ name: 'data', kind: 'files', path: root, exclude: ['many/f29*'] }, classes, sink, { filesDone: 0, bytesDone: 0, bytesAdded: 0, errors: 0, currentPath: '' }, () => undefined, () => undefined, new AdaptiveReader(), undefined, stopped);
  assert.equal((await walker.saveDir(root, '', last.id, false, dev)).id, last.id);
});

test('a stat-only walk stops within a folder once it is interrupted, not after the folder', async (t) => {
  const dir = await tempDir(t);
  for (let i = 0; i < 2_000; i += 500) await Promise.all(Array.from({ length: 500 }, (_, k) => writeFile(join(dir, `f${i + k}`), '')));
  const interrupt = new AbortController();
  let visited = 0;
  await statWalk(
    dir,
    () => {
      if (++visited === 10) interrupt.abort();
      return false;
    },
    interrupt.signal,
  );
  assert.equal(visited, 10);
});
