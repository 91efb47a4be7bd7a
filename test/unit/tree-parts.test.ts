import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { test } from 'node:test';
import { IntegrityError } from '../../src/util/errors.js';
import type { BlobWriter } from '../../src/repo/encode/blob-writer.js';
import { PART_MAX, PART_MIN, SPLIT_ABOVE, TreeBuilder, TreeLoader, parseStoredTree, saveTree, splitNodes, type TreeNode } from '../../src/snapshot/tree.js';

function file(name: string): TreeNode {
  return { name, type: 'file', mode: 0o644, uid: 0, gid: 0, mtime: '0', ctime: '0', inode: '1', dev: '1', nlink: 1, size: 0, content: [] };
}

const names = (count: number, prefix = 'f') => Array.from({ length: count }, (_, i) => `${prefix}${String(i).padStart(7, '0')}`);

test('parts of a large folder stay between their bounds, and the same names always cut at the same places', () => {
  const nodes = names(100_000).map(file);
  const parts = splitNodes(nodes);
  assert.equal(parts.flat().length, nodes.length);
  for (const part of parts.slice(0, -1)) assert.ok(part.length >= PART_MIN && part.length <= PART_MAX, `${part.length}`);
  assert.deepEqual(
    splitNodes(nodes).map((p) => p.length),
    parts.map((p) => p.length),
  );
  // One name with nothing but cuts after it would still end a part at PART_MAX.
  assert.ok(splitNodes(Array.from({ length: 3 * PART_MAX }, () => file('same'))).every((p) => p.length === PART_MAX));
});

test('a file added to or removed from a large folder changes the one part that holds it', () => {
  const before = names(50_000);
  const after = [...before.slice(0, 20_000), 'f0019999x', ...before.slice(20_000, 30_000), ...before.slice(30_001)];
  const key = (part: TreeNode[]) => part.map((n) => n.name).join('/');
  const old = new Set(splitNodes(before.map(file)).map(key));
  const fresh = splitNodes(after.map(file)).map(key);
  assert.ok(fresh.filter((k) => !old.has(k)).length <= 4, 'at most two parts changed for each of the two edits');
  assert.ok(fresh.length > 10);
});

test('a tree blob that lists parts must list only ids, and a part must not list parts of its own', async () => {
  const blob = (v: unknown) => Buffer.from(JSON.stringify(v));
  const id = 'a'.repeat(64);
  assert.deepEqual(parseStoredTree('t', blob({ parts: [id] })), { parts: [id] });
  for (const bad of [{ parts: [] }, { parts: ['../x'] }, { parts: [id], nodes: [] }, { parts: 'x' }, {}]) {
    assert.throws(() => parseStoredTree('t', blob(bad)), IntegrityError, JSON.stringify(bad));
  }
  const blobs = new Map<string, Buffer>([
    ['root', blob({ parts: [id] })],
    [id, blob({ parts: [id] })],
  ]);
  const loader = new TreeLoader({ loadBlob: async (blobId: string) => blobs.get(blobId)! });
  await assert.rejects(loader.load('root'), /tree root is damaged: its part a+ lists parts of its own/);
});

/** A writer that only hashes: ids as saveTree and TreeBuilder would store them. */
function hashingWriter() {
  const saved: string[] = [];
  const writer = {
    saved,
    has: () => true,
    save: async (_type: string, data: Buffer) => {
      const id = createHash('sha256').update(data).digest('hex');
      saved.push(id);
      return { id, storedBytes: data.length };
    },
  };
  return writer as typeof writer & BlobWriter;
}

async function built(nodes: readonly TreeNode[]) {
  const writer = hashingWriter();
  const builder = new TreeBuilder(writer);
  for (const node of nodes) await builder.add(node);
  return { id: await builder.finish(), saved: writer.saved };
}

test('a folder built an entry at a time is stored as the same blobs as the folder saved whole', async () => {
  for (const count of [0, 100, SPLIT_ABOVE, SPLIT_ABOVE + 1, 30_000]) {
    const nodes = names(count).map(file);
    const whole = hashingWriter();
    const id = await saveTree(whole, { nodes });
    const one = await built(nodes);
    assert.equal(one.id, id, `${count} nodes`);
    assert.deepEqual(one.saved, whole.saved);
  }
});
