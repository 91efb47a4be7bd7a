import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { lstat, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import type { TreeNode } from '../../src/sources/files/entries.js';
import { FilesWalker, type FilesSink, type WalkProgress } from '../../src/sources/files/walker.js';
import { AdaptiveReader } from '../../src/util/adaptive-io.js';
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
    return this.contents.has(id) || this.folders.has(id);
  }
  admitNow() {
    return { release: () => undefined };
  }
  async admit() {
    return { release: () => undefined };
  }
  async storeFile(path: string, _size: number, _admission: unknown, stored: (storedBytes: number, length: number) => void) {
    const data = await readFile(path);
    const id = createHash('sha256').update(data).digest('hex');
    stored(this.contents.has(id) ? 0 : data.length, data.length);
    this.contents.set(id, data);
    this.filesStored++;
    return { content: [id], size: data.length };
  }
  async saveFolder(nodes: TreeNode[]) {
    const id = createHash('sha256').update(JSON.stringify(nodes)).digest('hex');
    this.folders.set(id, nodes);
    return id;
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
    const { id } = await walker.saveDir(root, '', previous, false, (await lstat(root, { bigint: true })).dev);
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
