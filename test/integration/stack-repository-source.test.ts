import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { gitDriver } from '../../src/sources/git/driver.js';
import { makeRichTree, runCli, tempDir } from '../support/helpers.js';

const git = (cwd: string, ...args: string[]) => execFileSync('git', ['-c', 'user.email=ops@example.com', '-c', 'user.name=ops', ...args], { cwd, encoding: 'utf8' }).trim();

test('every stack snapshot holds the stack repository: restore clones it with its history, a drill checks it', async (t) => {
  const dir = await tempDir(t);
  const stack = join(dir, 'stacks', 'acme');
  const repo = join(dir, 'repo');
  await makeRichTree(join(stack, 'data'));
  git(dir, 'init', '-q', '-b', 'main', join(dir, 'stacks'));
  const yaml = `stack: acme\nrepository: { url: ${repo} }\nsources: [{ name: data, type: files, path: ./data }]\n`;
  await writeFile(join(stack, 'stackvault.yaml'), yaml);
  await writeFile(join(dir, 'stacks', '.gitignore'), 'acme/data/\n');
  git(join(dir, 'stacks'), 'add', '.');
  git(join(dir, 'stacks'), 'commit', '-qm', 'acme: first incarnation');
  await writeFile(join(stack, 'docker-compose.yml'), 'services: {}\n');
  git(join(dir, 'stacks'), 'add', '.');
  git(join(dir, 'stacks'), 'commit', '-qm', 'acme: compose file');
  const head = git(stack, 'rev-parse', 'HEAD');
  const env = { STACKVAULT_PASSWORD: 'pw' };

  assert.equal((await runCli(['init'], { env, cwd: stack })).code, 0);
  const saved = await runCli(['backup', '--json'], { env, cwd: stack });
  assert.equal(saved.code, 0, saved.stderr);
  const summary = JSON.parse(saved.stdout.trim().split('\n').pop()!) as { sources: Array<{ name: string; kind: string; path: string }> };
  const record = summary.sources.find((s) => s.name === 'stack-repository');
  assert.equal(record?.kind, 'git', 'the stack repository is a source of its own');
  assert.match(record.path, new RegExp(`@${head.slice(0, 12)}$`));

  // Disaster recovery from the snapshot alone: the configuration comes back with its history.
  const target = join(dir, 'recovered');
  const restored = await runCli(['restore', 'latest', '--repo', repo, '--source', 'stack-repository', '--target', target], { env, cwd: dir });
  assert.equal(restored.code, 0, restored.stderr);
  assert.equal(git(target, 'rev-parse', 'HEAD'), head);
  assert.equal(git(target, 'rev-list', '--count', 'HEAD'), '2');
  assert.equal(await readFile(join(target, 'acme', 'stackvault.yaml'), 'utf8'), yaml);
  assert.equal(git(target, 'remote'), '', 'no remote points at the temporary bundle');
  const again = await runCli(['restore', 'latest', '--repo', repo, '--source', 'stack-repository', '--target', target], { env, cwd: dir });
  assert.equal(again.code, 2);
  assert.match(again.stderr, /not empty/);
  // A file where the clone would go is someone's: refused, and left as it was.
  await writeFile(join(dir, 'notes.txt'), 'keep me');
  const onFile = await runCli(['restore', 'latest', '--repo', repo, '--source', 'stack-repository', '--target', join(dir, 'notes.txt')], { env, cwd: dir });
  assert.equal(onFile.code, 2, onFile.stderr);
  assert.equal(await readFile(join(dir, 'notes.txt'), 'utf8'), 'keep me');

  const drilled = await runCli(['drill', '--json'], { env, cwd: stack });
  assert.equal(drilled.code, 0, drilled.stderr);
  const report = JSON.parse(drilled.stdout.trim().split('\n').pop()!) as { databases: Array<Record<string, unknown>> };
  assert.deepEqual(report.databases, [{ source: 'stack-repository', commits: 2, head, verified: true }]);
  const text = await runCli(['drill'], { env, cwd: stack });
  assert.match(text.stdout, new RegExp(`source stack-repository: repository cloned and checked \\(git fsck\\), 2 commits, HEAD ${head.slice(0, 12)}`));
});

test("the stack repository's bundle is taken whole every time, also when git is still exiting after its last byte", async (t) => {
  const dir = await tempDir(t);
  git(dir, 'init', '-q', '-b', 'main');
  for (let i = 0; i < 200; i++) await writeFile(join(dir, `file-${i}.txt`), `content ${i}\n`.repeat(50 + i));
  git(dir, 'add', '.');
  git(dir, 'commit', '-qm', 'many files');
  const sink = {
    async writeFile(_path: string, content: AsyncIterable<Buffer> | Buffer) {
      if (Buffer.isBuffer(content)) return { size: content.length };
      let size = 0;
      for await (const chunk of content) size += chunk.length;
      return { size };
    },
  };
  // Stopping git once its output ended killed it before it exited: most backups failed.
  for (let i = 0; i < 15; i++) await gitDriver.backup!({ kind: 'git', name: 'stack-repository', path: dir }, sink, {});
});

test('a git source of stackvault.yaml takes its path as given when absolute, else from the stack folder', () => {
  const context = { baseDir: '/srv/stacks/acme', where: 'stackvault.yaml: sources[2]', exclusionClasses: {} };
  assert.equal(gitDriver.fromConfig({ name: 'dialplans', path: '/srv/dialplans' } as never, context).path, '/srv/dialplans');
  assert.equal(gitDriver.fromConfig({ name: 'dialplans', path: './dialplans' } as never, context).path, '/srv/stacks/acme/dialplans');
});
