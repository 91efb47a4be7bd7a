import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { runCli, tempDir } from '../support/helpers.js';

const config = (version: number, keepDaily: number) => `stack: acme
application:
  version: ${version}
  images:
    "1": { WEB_IMAGE: "example-web:1" }
    "2": { WEB_IMAGE: "example-web:2" }
repository:
  url: /mnt/backup/acme
sources:
  - name: data
    type: files
    path: ./data
retention:
  keep_daily: ${keepDaily}
`;

test('history lists the incarnations of the stack repository with what each changed', async (t) => {
  const dir = await tempDir(t);
  const stack = join(dir, 'stacks', 'acme');
  const git = (...args: string[]) => execFileSync('git', ['-C', dir, '-c', 'user.name=Ops', '-c', 'user.email=ops@example.com', ...args], { encoding: 'utf8' });
  execFileSync('mkdir', ['-p', stack]);
  git('init', '-q');
  await writeFile(join(dir, 'README'), 'another stack lives here too');
  git('add', '.');
  git('commit', '-q', '-m', 'unrelated');
  await writeFile(join(stack, 'stackvault.yaml'), config(1, 7));
  await writeFile(join(stack, 'docker-compose.yml'), 'services: {}\n');
  git('add', '.');
  git('commit', '-q', '-m', 'install version 1');
  await writeFile(join(stack, 'stackvault.yaml'), config(1, 14));
  git('commit', '-qam', 'keep two weeks');
  await writeFile(join(stack, 'stackvault.yaml'), config(2, 14));
  await writeFile(join(stack, 'docker-compose.yml'), 'services: { web: { image: "${WEB_IMAGE}" } }\n');
  git('commit', '-qam', 'update to 2');

  const listed = await runCli(['history', '--json'], { cwd: stack });
  assert.equal(listed.code, 0, listed.stderr);
  const incarnations = JSON.parse(listed.stdout) as Array<{ subject: string; version: string; versionChangedFrom?: string | null; files: Array<{ status: string; path: string }>; author: string }>;
  assert.deepEqual(incarnations.map((i) => i.subject), ['update to 2', 'keep two weeks', 'install version 1'], 'only commits of this stack, newest first');
  assert.deepEqual(incarnations.map((i) => [i.version, i.versionChangedFrom]), [['2', '1'], ['1', undefined], ['1', null]]);
  assert.deepEqual(incarnations[0]!.files, [{ status: 'M', path: 'stacks/acme/docker-compose.yml' }, { status: 'M', path: 'stacks/acme/stackvault.yaml' }]);
  assert.equal(incarnations[0]!.author, 'Ops <ops@example.com>');
  const human = await runCli(['history'], { cwd: stack });
  assert.match(human.stdout, /update to 2\n {4}version 1 -> 2; M stacks\/acme\/docker-compose\.yml, M stacks\/acme\/stackvault\.yaml/);

  const outside = await tempDir(t);
  await writeFile(join(outside, 'stackvault.yaml'), config(1, 7));
  const refused = await runCli(['history'], { cwd: outside });
  assert.equal(refused.code, 2);
  assert.match(refused.stderr, /is not in a git repository .*"git init" and commit it/);
});
