import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { chmod, link, lstat, mkdir, readFile, rm, symlink, unlink, utimes, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { test } from 'node:test';
import { statWalk, type EntryStat, type TreeNode } from '../../src/sources/files/entries.js';
import { HardLinkGroups } from '../../src/sources/files/hard-links.js';
import { listCompact } from '../../src/sources/files/listing-compact.js';
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
  // Its three further links (of two files) take the content their first link's read stored.
  assert.equal(sink.filesStored, first.walker.stats.files - 3);

  // Nothing changed: every file and folder is the previous walk's, nothing is read.
  const again = await walk(first.id);
  assert.equal(again.id, first.id);
  assert.equal(again.walker.stats.unchangedFiles, first.walker.stats.files);
  assert.equal(sink.filesStored, first.walker.stats.files - 3);

  // One file changed: only it is read again.
  await writeFile(join(root, 'notes.txt'), 'changed content');
  const changed = await walk(first.id);
  assert.notEqual(changed.id, first.id);
  assert.equal(changed.walker.stats.changedFiles, 1);
  assert.equal(sink.filesStored, first.walker.stats.files - 3 + 1);
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

test('the listing thread answers a small folder asked for while it lists a large one, and lists both whole', async (t) => {
  const root = await tempDir(t);
  await mkdir(join(root, 'big'));
  await mkdir(join(root, 'small'));
  for (let i = 0; i < 2_000; i += 500) await Promise.all(Array.from({ length: 500 }, (_, k) => writeFile(join(root, 'big', `f${i + k}`), '')));
  await writeFile(join(root, 'small/only'), 'x');
  const dev = (await lstat(root, { bigint: true })).dev.toString();
  const thread = new ListingThread();
  t.after(() => thread.close());
  // Listing ahead from the root too: the large folder may be half listed ahead when it is asked for.
  thread.addRoot(root, dev, { classes: {} });
  thread.begin();
  const answered: string[] = [];
  const ask = (name: string) => thread.list(join(root, name)).then((listing) => (answered.push(name), listing));
  const [big, small] = await Promise.all([ask('big'), ask('small')]);
  // Listed whole in one step, the large folder kept the small one waiting behind it.
  assert.deepEqual(answered, ['small', 'big']);
  assert.deepEqual(big, listCompact(join(root, 'big')));
  assert.deepEqual(small, listCompact(join(root, 'small')));
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

test('a file of several links is read once per walk, unless that read failed or saw it change', async (t) => {
  const dir = await tempDir(t);
  const root = join(dir, 'tree');
  await mkdir(join(root, 'a'), { recursive: true });
  await mkdir(join(root, 'b'), { recursive: true });
  await writeFile(join(root, 'a/driver.so'), 'one driver under many names');
  for (const name of ['a/other.so', 'b/driver.so', 'b/third.so']) await link(join(root, 'a/driver.so'), join(root, name));
  await writeFile(join(root, 'b/plain.txt'), 'a file of one link');
  const dev = (await lstat(root, { bigint: true })).dev.toString();
  const links = ['a/driver.so', 'a/other.so', 'b/driver.so', 'b/third.so'];
  /** A sink whose first read of a link throws (`fail`) or reports the file changed (`change`). */
  class LinkSink extends MemorySink {
    readonly read: string[] = [];
    constructor(private readonly firstLinkRead?: 'fail' | 'change') {
      super();
    }
    override async storeFile(path: string, mark: unknown, admission: unknown, stored: (storedBytes: number, length: number) => void) {
      const name = path.slice(root.length + 1);
      const first = links.includes(name) && !this.read.some((p) => links.includes(p));
      this.read.push(name);
      // The first link read is still being read while the walk meets the others.
      await new Promise((resolve) => setTimeout(resolve, 50));
      if (first && this.firstLinkRead === 'fail') throw Object.assign(new Error('EIO: i/o error, read'), { code: 'EIO' });
      const result = await super.storeFile(path, mark, admission, stored);
      return first && this.firstLinkRead === 'change' ? { ...result, changed: true } : result;
    }
  }
  const walk = async (sink: LinkSink) => {
    const progress: WalkProgress = { filesDone: 0, bytesDone: 0, bytesAdded: 0, errors: 0, currentPath: '' };
    const walker = new FilesWalker({ name: 'data', kind: 'files' as const, path: root }, {}, sink, progress, () => undefined, () => undefined, new AdaptiveReader());
    const { id } = await walker.saveDir(root, '', undefined, false, dev);
    const nodes = [...sink.folders.get(id)!.flatMap((n) => sink.folders.get(n.subtree!)!.map((m) => [`${n.name}/${m.name}`, m] as const))];
    return { walker, progress, nodes: new Map<string, TreeNode>(nodes) };
  };
  const size = 'one driver under many names'.length;

  const once = new LinkSink();
  const { walker, progress, nodes } = await walk(once);
  assert.equal(once.read.filter((p) => links.includes(p)).length, 1, `one link read: ${once.read.join(', ')}`);
  for (const name of links) {
    assert.deepEqual(nodes.get(name)!.content, nodes.get('a/driver.so')!.content, name);
    assert.equal(nodes.get(name)!.size, size, name);
    assert.equal(nodes.get(name)!.nlink, 4, name);
  }
  assert.equal(walker.stats.files, 5);
  assert.equal(walker.stats.newFiles, 5);
  assert.equal(walker.stats.bytes, 4 * size + 'a file of one link'.length);
  assert.equal(walker.stats.bytesRead, size + 'a file of one link'.length);
  assert.equal(progress.filesDone, 5);
  assert.equal(progress.bytesDone, walker.stats.bytes);

  // A first read that saw the file change leaves every other link to be read on its own.
  const changing = new LinkSink('change');
  const changed = await walk(changing);
  assert.equal(changing.read.filter((p) => links.includes(p)).length, 4);
  assert.equal(changed.walker.changedCount, 1);
  assert.equal(changed.nodes.size, 5);

  // So does one that failed: the file is missing only where its own read failed.
  const failing = new LinkSink('fail');
  const failed = await walk(failing);
  assert.equal(failing.read.filter((p) => links.includes(p)).length, 4);
  const failedLink = failing.read.find((p) => links.includes(p))!;
  assert.deepEqual(
    failed.walker.errors.map((e) => e.path),
    [`/data/${failedLink}`],
  );
  assert.deepEqual([...failed.nodes.keys()].sort(), [...links, 'b/plain.txt'].filter((p) => p !== failedLink).sort());
});

test('a hard-link group gives its content only to links seen as its first was, and stays bounded', async () => {
  const st = (inode: string, ctime = '5', nlink = 3): EntryStat => ({ type: 'file', size: 10, dev: '1', rdev: 0, mode: 0o644, uid: 0, gid: 0, mtime: '4', ctime, inode, nlink });
  const groups = new HardLinkGroups(2);
  assert.equal(groups.earlier(st('7')), undefined);
  const settle = groups.reading(st('7'));
  // Written to between the two stats: its change time moved, and this link is read on its own.
  assert.equal(groups.earlier(st('7', '6')), undefined);
  const second = groups.earlier(st('7'));
  assert.ok(second);
  settle({ content: ['blob'], size: 10 });
  assert.deepEqual(await second, { content: ['blob'], size: 10 });
  // Its third and last link: the group is dropped after it.
  assert.ok(groups.earlier(st('7')));
  assert.equal(groups.earlier(st('7')), undefined);
  // Beyond the limit, the oldest group goes: its next link is read again.
  groups.reading(st('8'))(undefined);
  groups.reading(st('9'))(undefined);
  groups.reading(st('10'))(undefined);
  assert.equal(groups.earlier(st('8')), undefined);
  assert.ok(groups.earlier(st('9')));
  assert.equal(await groups.earlier(st('10')), undefined);
});
