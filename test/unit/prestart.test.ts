import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { prestartHelpers } from '../../src/cli/prestart.js';
import { ListingThread } from '../../src/sources/files/listing-thread.js';
import { tempDir } from '../support/helpers.js';

test('a backup into a folder repository that holds snapshots lists its sources ahead from the start, one into an empty one once it has a parent', async (t) => {
  const dir = await tempDir(t);
  const source = join(dir, 'data');
  await mkdir(source);
  await writeFile(join(source, 'file'), 'x');
  const listingFor = async (repo: string) => {
    await prestartHelpers(['node', 'stackvault', 'backup', '--repo', repo, source], {});
    const thread = ListingThread.start([{ name: 'data', kind: 'files', path: source }]);
    assert.ok(thread, 'the source is listed by a thread');
    t.after(() => thread.close());
    return thread;
  };
  const used = join(dir, 'used');
  await mkdir(join(used, 'snapshots'), { recursive: true });
  await writeFile(join(used, 'snapshots', 'a'.repeat(64)), '');
  assert.equal((await listingFor(used)).listingAhead, true);
  const empty = join(dir, 'empty');
  await mkdir(join(empty, 'snapshots'), { recursive: true });
  assert.equal((await listingFor(empty)).listingAhead, false);
  assert.equal((await listingFor(join(dir, 'missing'))).listingAhead, false);
});
