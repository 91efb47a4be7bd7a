import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { test } from 'node:test';
import { CONTENT_SPLIT_ABOVE, ContentBuilder, contentIds, parseContentPart } from '../../src/snapshot/content-list.js';
import { PART_MAX, PART_MIN } from '../../src/snapshot/tree.js';
import { isFileContent, sameNodes, splitContent, type SplitContent, type TreeNode } from '../../src/sources/files/entries.js';
import { IntegrityError } from '../../src/util/errors.js';

const blobId = (n: number) => createHash('sha256').update(`blob ${n}`).digest('hex');

/** Blobs saved by content address, as a repository keeps them: what the builder stores and the readers load. */
function store() {
  const blobs = new Map<string, Buffer>();
  return {
    blobs,
    save: async (_type: string, data: Buffer) => {
      const id = createHash('sha256').update(data).digest('hex');
      blobs.set(id, data);
      return { id, storedBytes: data.length, fresh: true };
    },
    loadBlob: async (id: string) => blobs.get(id) ?? assert.fail(`no blob ${id}`),
  };
}

async function build(ids: readonly string[], repo = store()) {
  const builder = new ContentBuilder(repo as never);
  for (const id of ids) await builder.add(id);
  return builder.finish();
}

test('a file of few blobs keeps its list in its node, and one of many lists them in parts within bounds', async () => {
  const repo = store();
  const few = Array.from({ length: CONTENT_SPLIT_ABOVE }, (_, i) => blobId(i));
  assert.deepEqual(await build(few, repo), few);
  assert.equal(repo.blobs.size, 0, 'nothing stored for a list that fits');

  const many = Array.from({ length: 40_000 }, (_, i) => blobId(i));
  const content = (await build(many, repo)) as SplitContent;
  assert.ok(!Array.isArray(content) && content.parts.length >= 3, 'stored in parts');
  const lengths = content.parts.map((part) => parseContentPart(part, repo.blobs.get(part)!).length);
  for (const length of lengths.slice(0, -1)) assert.ok(length >= PART_MIN && length <= PART_MAX, `${length}`);
  const read: string[] = [];
  for await (const id of contentIds(repo, content)) read.push(id);
  assert.deepEqual(read, many);
  assert.ok(isFileContent(content) && isFileContent(few));
});

test('a change in the middle of a large file changes the parts around it, not the others', async () => {
  const before = Array.from({ length: 60_000 }, (_, i) => blobId(i));
  const after = [...before.slice(0, 30_000), blobId(-1), blobId(-2), ...before.slice(30_001)];
  const a = (await build(before)) as SplitContent;
  const b = (await build(after)) as SplitContent;
  assert.ok(b.parts.filter((p) => !a.parts.includes(p)).length <= 2, `${b.parts.length} parts, new: ${b.parts.filter((p) => !a.parts.includes(p)).length}`);
  assert.deepEqual(await build(before), a, 'the same ids give the same parts');
});

test('nodes whose content parts are the same are the same node', () => {
  const node = (content: TreeNode['content']): TreeNode => ({ name: 'f', type: 'file', mode: 0o644, uid: 0, gid: 0, mtime: '0', ctime: '0', inode: '1', dev: '1', nlink: 1, size: 1, content });
  const parts = [blobId(1), blobId(2)];
  assert.ok(sameNodes([node(splitContent(parts))], [node(splitContent([...parts]))]));
  assert.ok(!sameNodes([node(splitContent(parts))], [node([...parts])]), 'a list of parts is not a list of data blobs');
  assert.ok(!sameNodes([node(splitContent(parts))], [node(splitContent([blobId(1)]))]));
});

test('a damaged content part is named, never read as a shorter file', () => {
  const blob = (v: unknown) => Buffer.from(JSON.stringify(v));
  assert.deepEqual(parseContentPart('p', blob({ content: [blobId(1)] })), [blobId(1)]);
  for (const bad of [Buffer.from('{"content": ['), blob({ content: [] }), blob({ content: ['x'] }), blob({ nodes: [] })]) {
    assert.throws(() => parseContentPart('p', bad), (err: unknown) => err instanceof IntegrityError && /content part p is damaged/.test(err.message));
  }
  assert.ok(isFileContent(splitContent([blobId(1)])));
  const bads = [{ parts: [blobId(1)] }, { parts: [], length: 0 }, { parts: [1], length: 1 }, { parts: [blobId(1)], length: 2 }, { parts: [blobId(1)], length: 1, more: 1 }, 'x', null];
  for (const bad of bads) assert.ok(!isFileContent(bad), JSON.stringify(bad));
});
