import assert from 'node:assert/strict';
import { test } from 'node:test';
import { checkConsolePasswordHash, hashConsolePassword, verifyConsolePassword } from '../../src/runner/console/password.js';

test('a console password is kept as a salted scrypt hash: the right one verifies, another does not, a malformed hash is refused', async () => {
  const hash = await hashConsolePassword('correct horse battery');
  assert.match(hash, /^\$scrypt\$ln=15,r=8,p=1\$[A-Za-z0-9+/]{22}\$[A-Za-z0-9+/]{43}$/);
  assert.notEqual(await hashConsolePassword('correct horse battery'), hash, 'each hash has its own salt');
  assert.equal(await verifyConsolePassword('correct horse battery', hash), true);
  assert.equal(await verifyConsolePassword('correct horse batterY', hash), false);
  assert.equal(await verifyConsolePassword('', hash), false);
  assert.equal(checkConsolePasswordHash(` ${hash}\n`, 'x'), hash);
  assert.throws(() => checkConsolePasswordHash('hunter2', 'stackvault.yaml: runner.console_password_hash'), /stackvault\.yaml: runner\.console_password_hash is not a console password hash/);
  await assert.rejects(hashConsolePassword('short'), /at least 8 characters/);
});
