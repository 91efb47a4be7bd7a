import assert from 'node:assert/strict';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { runCli, tempDir } from '../support/helpers.js';

async function releaseFolder(dir: string, version: number, migrations: Record<string, string>): Promise<string> {
  const folder = join(dir, `release-${version}`);
  await mkdir(join(folder, 'files', 'data', 'config'), { recursive: true });
  await writeFile(join(folder, 'files', 'data', 'config', 'app.ini'), `version=${version}\nqueues=support,sales\n`);
  await writeFile(join(folder, 'files', 'data', 'welcome.txt'), 'Welcome to the contact center.\n'.repeat(1000));
  if (Object.keys(migrations).length) await mkdir(join(folder, 'migrations'));
  for (const [name, text] of Object.entries(migrations)) await writeFile(join(folder, 'migrations', name), text);
  return folder;
}

test('a vendor publishes releases once; a stack pulls its version into its own repository', async (t) => {
  const dir = await tempDir(t);
  const vendor = join(dir, 'vendor-releases');
  const vendorEnv = { STACKVAULT_PASSWORD: 'vendor pw' };
  assert.equal((await runCli(['init', '--repo', vendor], { env: vendorEnv })).code, 0);
  const publish = (folder: string, version: string) => runCli(['release', 'publish', '--repo', vendor, '--application', 'contact-center', '--version', version, folder], { env: vendorEnv });

  const v1 = await releaseFolder(dir, 1, {});
  assert.equal((await publish(v1, '1')).code, 0);
  const again = await publish(v1, '1');
  assert.equal(again.code, 2);
  assert.match(again.stderr, /release 1 of contact-center is published already .* releases never change/);
  const badName = await releaseFolder(join(dir, 'bad'), 2, { 'add column.sql': 'ALTER TABLE x ADD y INT;' });
  const refused = await publish(badName, '2');
  assert.equal(refused.code, 2);
  assert.match(refused.stderr, /release migration add column\.sql: expected NNN-name\.sql/);
  const v2 = await releaseFolder(dir, 2, { '001-add-wrapup.sql': 'ALTER TABLE calls ADD wrapup_s INT;\n', '002-move-prompts.sh': 'mv prompts-default prompts\n' });
  const published = await publish(v2, '2');
  assert.equal(published.code, 0, published.stderr);
  const listed = JSON.parse((await runCli(['release', 'list', '--json', '--from-repo', vendor], { env: { STACKVAULT_RELEASE_PASSWORD: 'vendor pw' } })).stdout) as Array<{ version: string; migrations: number }>;
  assert.deepEqual(listed.map((r) => [r.version, r.migrations]), [['1', 0], ['2', 2]]);

  // The customer's stack: its config names the application, the version and the release store.
  const stack = join(dir, 'stack');
  await mkdir(stack);
  await writeFile(
    join(stack, 'stackvault.yaml'),
    `stack: acme\napplication:\n  name: contact-center\n  version: 2\nrelease_store:\n  url: ${vendor}\n  password_env: VENDOR_PW\nrepository:\n  url: ./repo\n  password_env: ACME_PW\nsources:\n  - name: data\n    type: files\n    path: ./data\n`,
  );
  const env = { VENDOR_PW: 'vendor pw', ACME_PW: 'acme pw' };
  assert.equal((await runCli(['init'], { cwd: stack, env })).code, 0);
  const pulled = await runCli(['release', 'pull'], { cwd: stack, env });
  assert.equal(pulled.code, 0, pulled.stderr);
  assert.match(pulled.stdout, /release 2 copied as snapshot [0-9a-f]{8}: 4 files/);
  assert.match((await runCli(['release', 'pull'], { cwd: stack, env })).stdout, /release 2 is in the repository already/);
  const here = JSON.parse((await runCli(['release', 'list', '--here', '--json'], { cwd: stack, env })).stdout) as Array<{ version: string }>;
  assert.deepEqual(here.map((r) => r.version), ['2']);
  const missing = await runCli(['release', 'pull', '--version', '3'], { cwd: stack, env });
  assert.equal(missing.code, 2);
  assert.match(missing.stderr, /no release 3 of contact-center in .* \(it has 1, 2\)/);

  // The stack's repository alone now holds the vanilla files and the migrations of version 2.
  const restored = await runCli(['restore', 'latest', '--tag', 'release', '--target', join(dir, 'restored')], { cwd: stack, env: { ACME_PW: 'acme pw' } });
  assert.equal(restored.code, 0, restored.stderr);
  assert.equal(await readFile(join(dir, 'restored', 'files', 'data', 'config', 'app.ini'), 'utf8'), 'version=2\nqueues=support,sales\n');
  assert.equal(await readFile(join(dir, 'restored', 'migrations', '001-add-wrapup.sql'), 'utf8'), 'ALTER TABLE calls ADD wrapup_s INT;\n');
});
