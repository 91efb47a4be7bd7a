import assert from 'node:assert/strict';
import { mkdir, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { makeRichTree, objectFingerprints, runCli, tempDir } from '../support/helpers.js';

async function repoWithTwoSnapshots(t: import('node:test').TestContext) {
  const dir = await tempDir(t);
  const src = join(dir, 'src');
  const repo = join(dir, 'repo');
  await makeRichTree(src);
  const env = { STACKVAULT_PASSWORD: 'pw' };
  assert.equal((await runCli(['init', '--repo', repo], { env })).code, 0);
  assert.equal((await runCli(['backup', '--repo', repo, '--tag', 'first', '--stack', 'acme', src], { env })).code, 0);
  await writeFile(join(src, 'docs/added.txt'), 'new file');
  assert.equal((await runCli(['backup', '--repo', repo, '--tag', 'second', '--stack', 'acme', src], { env })).code, 0);
  return { dir, src, repo, env };
}

test('snapshots --json, ls, diff and dump', async (t) => {
  const { repo, env } = await repoWithTwoSnapshots(t);
  const listed = await runCli(['snapshots', '--repo', repo, '--json'], { env });
  assert.equal(listed.code, 0);
  const snaps = JSON.parse(listed.stdout) as Array<{ id: string; tags: string[]; stack: string; host: string }>;
  assert.equal(snaps.length, 2);
  assert.deepEqual(snaps.map((s) => s.tags), [['first'], ['second']]);
  assert.equal(snaps[0]!.stack, 'acme');
  const filtered = JSON.parse((await runCli(['snapshots', '--repo', repo, '--json', '--tag', 'second'], { env })).stdout) as unknown[];
  assert.equal(filtered.length, 1);
  const table = await runCli(['snapshots', '--repo', repo], { env });
  assert.match(table.stdout, /ID\s+Time \(UTC\)\s+Host\s+Stack\s+Tags/);

  const ls = await runCli(['ls', '--repo', repo, 'latest', '/src/docs'], { env });
  assert.match(ls.stdout, /^\/src\/docs\/added\.txt$/m);
  const diff = await runCli(['diff', '--repo', repo, snaps[0]!.id.slice(0, 8), snaps[1]!.id.slice(0, 8)], { env });
  assert.equal(diff.code, 0);
  assert.match(diff.stdout, /^\+\s+\/src\/docs\/added\.txt$/m);
  assert.match(diff.stdout, /added 1, removed 0/);
  const dump = await runCli(['dump', '--repo', repo, 'latest', '/src/docs/added.txt'], { env });
  assert.equal(dump.stdout, 'new file');
  const notThere = await runCli(['dump', '--repo', repo, 'latest', '/src/nope'], { env });
  assert.equal(notThere.code, 2);
  assert.match(notThere.stderr, /\/src\/nope is not in snapshot/);
});

test('restore refuses a non-empty target without --force and restores a subset', async (t) => {
  const { dir, repo, env } = await repoWithTwoSnapshots(t);
  const target = join(dir, 'target');
  await mkdir(target);
  await writeFile(join(target, 'precious.txt'), 'keep me');
  const refused = await runCli(['restore', 'latest', '--repo', repo, '--target', target], { env });
  assert.equal(refused.code, 2);
  assert.match(refused.stderr, /is not empty.*--force/);
  assert.deepEqual(await readdir(target), ['precious.txt']);

  const forced = await runCli(['restore', 'latest', '--repo', repo, '--target', target, '--force', '--include', '/src/docs/small.txt'], { env });
  assert.equal(forced.code, 0, forced.stderr);
  assert.deepEqual((await readdir(target)).sort(), ['precious.txt', 'src']);
  assert.deepEqual(await readdir(join(target, 'src')), ['docs']);
  assert.deepEqual(await readdir(join(target, 'src/docs')), ['small.txt']);

  const missing = await runCli(['restore', 'latest', '--repo', repo, '--target', join(dir, 't2'), '--include', '/src/nothing'], { env });
  assert.equal(missing.code, 2);
  assert.match(missing.stderr, /not in snapshot .*\/src\/nothing/);
});

test('wrong password, missing password, missing repository: clear errors, documented exit codes, nothing changed', async (t) => {
  const { dir, repo } = await repoWithTwoSnapshots(t);
  const before = await objectFingerprints(repo);
  const wrong = await runCli(['backup', '--repo', repo, dir], { env: { STACKVAULT_PASSWORD: 'nope' } });
  assert.equal(wrong.code, 12);
  assert.match(wrong.stderr, /wrong password/);
  const none = await runCli(['snapshots', '--repo', repo]);
  assert.equal(none.code, 2);
  assert.match(none.stderr, /encrypted: give its password/);
  const absent = await runCli(['snapshots', '--repo', join(dir, 'no-repo')], { env: { STACKVAULT_PASSWORD: 'pw' } });
  assert.equal(absent.code, 10);
  assert.match(absent.stderr, /no repository at .*no-repo/);
  const passwordFile = join(dir, 'pw.txt');
  await writeFile(passwordFile, 'pw\n');
  assert.equal((await runCli(['snapshots', '--repo', repo, '--password-file', passwordFile])).code, 0);
  assert.deepEqual(await objectFingerprints(repo), before);
  const missingSource = await runCli(['backup', '--repo', repo, join(dir, 'nowhere')], { env: { STACKVAULT_PASSWORD: 'pw' } });
  assert.equal(missingSource.code, 2);
  assert.match(missingSource.stderr, /cannot read .*nowhere: no such folder/);
  assert.deepEqual(await objectFingerprints(repo), before);
});

test('backup --json gives JSON lines ending in a summary; errors are JSON too', async (t) => {
  const { src, repo, env } = await repoWithTwoSnapshots(t);
  const result = await runCli(['backup', '--repo', repo, '--json', src], { env });
  assert.equal(result.code, 0);
  const lines = result.stdout.trim().split('\n').map((l) => JSON.parse(l) as { message_type: string; snapshot_id?: string });
  const summary = lines[lines.length - 1]!;
  assert.equal(summary.message_type, 'summary');
  assert.match(summary.snapshot_id!, /^[0-9a-f]{64}$/);
  const failed = await runCli(['snapshots', '--repo', repo, '--json'], { env: { STACKVAULT_PASSWORD: 'bad' } });
  assert.equal(JSON.parse(failed.stdout.trim()).message_type, 'error');
});

test('forget marks snapshots without deleting, prune shows its plan first', async (t) => {
  const { repo, env } = await repoWithTwoSnapshots(t);
  const before = await objectFingerprints(repo);
  const dry = await runCli(['forget', '--repo', repo, '--keep-last', '1', '--dry-run'], { env });
  assert.match(dry.stdout, /would forget 1 snapshot$/m);
  assert.deepEqual(await objectFingerprints(repo), before);
  const forgot = await runCli(['forget', '--repo', repo, '--keep-last', '1'], { env });
  assert.equal(forgot.code, 0);
  const after = await objectFingerprints(repo);
  for (const [k, v] of before) assert.equal(after.get(k), v);
  assert.equal([...after.keys()].filter((k) => k.startsWith('forget/')).length, 1);
  const listed = JSON.parse((await runCli(['snapshots', '--repo', repo, '--json'], { env })).stdout) as unknown[];
  assert.equal(listed.length, 1);
  const plan = await runCli(['prune', '--repo', repo], { env });
  assert.equal(plan.code, 0);
  assert.match(plan.stdout, /prune plan/);
});

test('--help shows examples and exit codes; unknown commands exit 2', async () => {
  const help = await runCli(['--help']);
  assert.equal(help.code, 0);
  assert.match(help.stdout, /Exit codes:/);
  assert.match(help.stdout, /Examples:/);
  for (const cmd of ['backup', 'restore', 'check', 'forget', 'init']) {
    assert.match((await runCli([cmd, '--help'])).stdout, /Example/);
  }
  assert.equal((await runCli(['frobnicate'])).code, 2);
});

test('demo backs up the example stack, restores it and reports a match', async (t) => {
  const dir = await tempDir(t);
  const result = await runCli(['demo', '--workdir', dir]);
  assert.equal(result.code, 0, result.stderr);
  assert.match(result.stdout, /RESULT: the restored stack matches the original/);
  assert.match(result.stdout, /excluded by class recordings: 2 files/);
});

test('check --read-data-subset reads a share of the packs; a bad subset is a usage error', async (t) => {
  const { repo, env } = await repoWithTwoSnapshots(t);
  for (const subset of ['1/2', '2/2', '50%', '100%']) {
    const result = await runCli(['check', '--repo', repo, '--read-data-subset', subset, '--json'], { env });
    assert.equal(result.code, 0, `${subset}: ${result.stderr}`);
    const report = JSON.parse(result.stdout.trim().split('\n').pop()!) as { packsRead: number; packs: number };
    assert.ok(report.packsRead <= report.packs, subset);
    if (subset === '100%') assert.equal(report.packsRead, report.packs);
    if (subset === '50%') assert.equal(report.packsRead, Math.ceil(report.packs / 2));
  }
  const bad = await runCli(['check', '--repo', repo, '--read-data-subset', '3/2'], { env });
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /--read-data-subset 3\/2/);
});
