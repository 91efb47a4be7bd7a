import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { LocalBackend } from '../src/repo/backends/local.js';
import { Repository } from '../src/repo/repository.js';
import { compareTrees } from '../src/sources/compare.js';
import { backup } from '../src/snapshot/backup.js';
import { restore } from '../src/snapshot/restore.js';
import { makeRichTree, tempDir } from './helpers.js';

for (const encrypted of [true, false]) {
  test(`round trip is byte-equal with metadata (${encrypted ? 'encrypted' : 'unencrypted'})`, async (t) => {
    const dir = await tempDir(t);
    const source = join(dir, 'source');
    await makeRichTree(source);
    const repo = await Repository.init(new LocalBackend(join(dir, 'repo')), { password: encrypted ? 'pw' : null, immutabilityDays: 0 });
    const saved = await backup(repo, { sources: [{ name: 'data', path: source, exclusionClasses: {} }] });
    assert.equal(saved.errorCount, 0);

    const reopened = await Repository.open(new LocalBackend(join(dir, 'repo')), encrypted ? 'pw' : undefined);
    const target = join(dir, 'target');
    const result = await restore(reopened, { id: saved.id, snapshot: saved.snapshot }, { target });
    assert.deepEqual(result.errors, []);
    const cmp = await compareTrees(source, join(target, 'data'), { owners: process.getuid?.() === 0 });
    assert.deepEqual(cmp.differences, []);
    assert.ok(cmp.files >= 10, `compared ${cmp.files} files`);
    assert.ok(cmp.bytes > 15_000_000);
  });
}
