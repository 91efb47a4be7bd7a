import assert from 'node:assert/strict';
import { chmod, chown, mkdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { writeSmallFile, type RestorableMetadata, type SmallFileCreation } from '../../src/sources/files/restore.js';
import { tempDir } from '../support/helpers.js';

const isRoot = process.getuid?.() === 0;
const mtime = '1700000000123456000';

/** Modes that can be created as asked under a umask of 022, and modes that need a chmod after. */
const MODES = [0o644, 0o755, 0o600, 0o640, 0o666, 0o444, 0o4755, 0o2750, 0o1644, 0o000];

async function expectRestored(path: string, meta: RestorableMetadata): Promise<void> {
  const st = await stat(path, { bigint: true });
  assert.equal(Number(st.mode & 0o7777n), meta.mode, `mode of ${path}`);
  assert.equal(st.mtimeNs, 1700000000123456000n, `mtime of ${path}`);
  if (isRoot) {
    assert.equal(Number(st.uid), meta.uid, `owner of ${path}`);
    assert.equal(Number(st.gid), meta.gid, `group of ${path}`);
  }
}

test('a small file gets exactly its mode, owner and time, whether created with its mode or set after', async (t) => {
  const dir = await tempDir(t);
  const creation: SmallFileCreation = { replaceExisting: false };
  const owners = isRoot ? [[0, 0], [1234, 5678]] : [[process.getuid!(), process.getgid!()]];
  for (const mode of MODES) {
    for (const [uid, gid] of owners) {
      const meta = { type: 'file', mode, uid: uid!, gid: gid!, mtime };
      const path = join(dir, `f-${mode.toString(8)}-${uid}`);
      writeSmallFile(path, Buffer.from('content'), meta, creation);
      await expectRestored(path, meta);
    }
  }
  assert.equal(creation.createdAsAsked, true, 'files in a plain folder come out as created');
});

test('in a set-group-ID target a new file takes the folder group: the first one shows it, and every file gets its own group', { skip: !isRoot && 'needs root to choose groups' }, async (t) => {
  const dir = await tempDir(t);
  const target = join(dir, 'target');
  await mkdir(target);
  await chown(target, 0, 4242);
  await chmod(target, 0o2775);
  const sub = join(target, 'sub');
  await mkdir(sub, { mode: 0o700 }); // inherits the set-group-ID bit and group 4242, as a restore's own folders would
  const creation: SmallFileCreation = { replaceExisting: false };
  for (const [i, folder] of [target, sub, sub].entries()) {
    const meta = { type: 'file', mode: 0o644, uid: 0, gid: 0, mtime };
    const path = join(folder, `f${i}`);
    writeSmallFile(path, Buffer.from('content'), meta, creation);
    await expectRestored(path, meta);
  }
  assert.equal(creation.createdAsAsked, false);
});
