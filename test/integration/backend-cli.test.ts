import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { fileURLToPath } from 'node:url';
import { parse, stringify } from 'yaml';
import { compareTrees } from '../../src/sources/files/compare.js';
import { makeRichTree, runCli, tempDir } from '../support/helpers.js';
import { azuriteConnectionString, startAzurite, startRcloneServe, startS3rver } from '../support/storage-servers.js';
import { startRcloneHelper } from '../../src/repo/backends/rclone-helper.js';

/** The README's example repository section for a backend, as a user would copy it. */
async function readmeExample(name: string): Promise<{ url: string; password_env: string; immutability_days?: number }> {
  const readme = await readFile(fileURLToPath(new URL('../../../README.md', import.meta.url)), 'utf8');
  const block = new RegExp(`<!-- example: ${name} -->\\s*\`\`\`yaml\\n([\\s\\S]*?)\`\`\``).exec(readme);
  assert.ok(block, `README has an example for ${name}`);
  return (parse(block[1]!) as { repository: { url: string; password_env: string; immutability_days?: number } }).repository;
}

/**
 * The README's example config, pointed at a real server only through the environment
 * (credentials and, for S3, the endpoint), runs init, backup, check and restore through
 * the command line. Where the example promises immutability that the test server cannot
 * enforce, init refuses it clearly first.
 */
async function exampleWorks(t: TestContext, name: string, env: Record<string, string>): Promise<void> {
  const repository = await readmeExample(name);
  const dir = await tempDir(t);
  await makeRichTree(join(dir, 'data'), 5);
  await writeFile(join(dir, 'stackvault.yaml'), stringify({ stack: 'acme', repository, sources: [{ name: 'data', type: 'files', path: './data' }] }));
  const cli = (args: string[]) => runCli(args, { cwd: dir, env: { ...env, [repository.password_env]: 'a long passphrase' } });
  if (repository.immutability_days) {
    const refused = await cli(['init']);
    assert.equal(refused.code, 1, refused.stderr);
    assert.match(refused.stderr, new RegExp(`promises ${repository.immutability_days} days of immutability`));
  }
  const init = await cli(['init', '--immutability', '0']);
  assert.equal(init.code, 0, init.stderr);
  const saved = await cli(['backup', '--json']);
  assert.equal(saved.code, 0, saved.stderr);
  const checked = await cli(['check', '--read-data']);
  assert.equal(checked.code, 0, checked.stderr);
  const restored = await cli(['restore', 'latest', '--target', join(dir, 'restored')]);
  assert.equal(restored.code, 0, restored.stderr);
  assert.deepEqual((await compareTrees(join(dir, 'data'), join(dir, 'restored', 'data'), { owners: false })).differences, []);
  const snapshots = JSON.parse((await cli(['snapshots', '--json'])).stdout) as unknown[];
  assert.equal(snapshots.length, 1);
  for (const r of [init, saved, checked, restored]) {
    for (const secret of Object.values(env).filter((v) => /AccountKey|pw-/.test(v) || v === 'S3RVER')) assert.ok(!(r.stdout + r.stderr).includes(secret));
  }
}

test('README example: Azure', async (t) => {
  const azurite = await startAzurite(t);
  await exampleWorks(t, 'azure', { AZURE_STORAGE_CONNECTION_STRING: azuriteConnectionString(azurite.url) });
});

test('README example: S3', async (t) => {
  const s3 = await startS3rver(t, 'acme-backups');
  await exampleWorks(t, 's3', { AWS_ACCESS_KEY_ID: 'S3RVER', AWS_SECRET_ACCESS_KEY: 'S3RVER', AWS_ENDPOINT_URL: s3.url });
});

test('README example: rclone (SFTP)', async (t) => {
  const sftp = await startRcloneServe(t, 'sftp', 'offsite');
  await exampleWorks(t, 'rclone', sftp.env);
});

test('an rclone repository on the command line: the helper started before parsing is the one used, and none outlives the command', async (t) => {
  const dav = await startRcloneServe(t, 'webdav', 'early');
  const dir = await tempDir(t);
  // A wrapper that records every helper started (its pid: exec keeps it, and whether it was
  // spared building the terminal library's tables, TCELL_MINIMIZE) before it runs rclone.
  const started = join(dir, 'started');
  const wrapper = join(dir, 'rclone-wrapper');
  await writeFile(wrapper, `#!/bin/sh\necho "$$ \${TCELL_MINIMIZE:-unset}" >> ${started}\nexec rclone "$@"\n`, { mode: 0o755 });
  const env = { ...dav.env, STACKVAULT_RCLONE: wrapper, STACKVAULT_PASSWORD: 'early helper' };
  const starts = async () => (await readFile(started, 'utf8').catch(() => '')).split('\n').filter(Boolean);

  const repo = 'rclone:early:repo';
  for (const args of [['init', '--repo', repo], [`--repo=${repo}`, 'snapshots'], ['snapshots', '-r', repo]]) {
    const before = (await starts()).length;
    const run = await runCli(args, { env });
    assert.equal(run.code, 0, run.stderr);
    assert.equal((await starts()).length - before, 1, `${args.join(' ')} started one helper`);
  }
  // Named through the environment, and a command that never opens the repository.
  const help = await runCli(['snapshots', '--help'], { env: { ...env, STACKVAULT_REPOSITORY: repo } });
  assert.equal(help.code, 0, help.stderr);
  const pids = (await starts()).map((line) => Number(line.split(' ')[0]));
  assert.equal(pids.length, 4);
  assert.deepEqual(
    (await starts()).map((line) => line.split(' ')[1]),
    ['1', '1', '1', '1'],
  );
  for (let tries = 0; pids.some(alive) && tries < 50; tries++) await new Promise((r) => setTimeout(r, 100));
  assert.deepEqual(pids.filter(alive), [], 'no helper is left running');
});

test('a command line refused through an unreachable rclone remote: the error at once, not after the reads begun before parsing', async () => {
  // prestart begins an rclone repository's reads while the command loads; a command that
  // then stops before opening it (here a usage error) waited for their answers, which
  // rclone gives an unreachable SFTP server only after its own retries (101 s here).
  const env = {
    STACKVAULT_PASSWORD: 'unreachable',
    RCLONE_CONFIG_NOWHERE_TYPE: 'sftp',
    RCLONE_CONFIG_NOWHERE_HOST: '127.0.0.1',
    RCLONE_CONFIG_NOWHERE_PORT: '1',
    RCLONE_CONFIG_NOWHERE_USER: 'nobody',
    RCLONE_CONFIG_NOWHERE_PASS: execFileSync('rclone', ['obscure', 'a password'], { encoding: 'utf8' }).trim(),
  };
  const started = Date.now();
  const run = await runCli(['--repo', 'rclone:nowhere:repo', 'restore', 'latest', '--no-such-flag'], { env });
  assert.equal(run.code, 2, run.stderr);
  assert.match(run.stderr, /no-such-flag/);
  assert.ok(Date.now() - started < 15_000, `reported after ${Date.now() - started} ms`);
});

test("rclone's own log settings in the environment (a log file, syslog, JSON, verbose, quiet) do not keep the helper from starting", async (t) => {
  const dav = await startRcloneServe(t, 'webdav', 'logged');
  const dir = await tempDir(t);
  // With RCLONE_LOG_FILE set, the helper's "Serving remote control on ..." line went to the
  // file and the command waited for it forever; with RCLONE_VERBOSE or RCLONE_QUIET the
  // helper refused to start.
  const logged = { RCLONE_LOG_FILE: join(dir, 'rclone.log'), RCLONE_USE_JSON_LOG: 'true', RCLONE_SYSLOG: 'true' };
  const repo = 'rclone:logged:repo';
  for (const [args, extra] of [
    [['init', '--repo', repo], logged],
    [['snapshots', '--repo', repo], logged],
    [['snapshots', '--repo', repo], { RCLONE_VERBOSE: '2' }],
    [['snapshots', '--repo', repo], { RCLONE_QUIET: 'true' }],
  ] as const) {
    const run = await runCli([...args], { env: { ...dav.env, STACKVAULT_PASSWORD: 'logged', ...extra }, timeoutMs: 60_000 });
    assert.equal(run.code, 0, `${JSON.stringify(extra)}: ${run.stderr}`);
  }
});

test('an rclone remote whose server refuses connections: reported after three of our attempts, on top of rclone\'s own retries', async () => {
  // rclone's own retries (10 per request by default, 4.6 s for a refused WebDAV server) made
  // eight attempts of ours take 2 min 40 s; at one each here, the count of ours is what shows.
  const env = { STACKVAULT_PASSWORD: 'unreachable', RCLONE_CONFIG_GONE_TYPE: 'webdav', RCLONE_CONFIG_GONE_URL: 'http://127.0.0.1:9', RCLONE_LOW_LEVEL_RETRIES: '1' };
  const run = await runCli(['snapshots', '--repo', 'rclone:gone:repo'], { env, timeoutMs: 60_000 });
  assert.equal(run.code, 1, run.stderr);
  assert.match(run.stderr, /rclone:gone:repo failed 3 times; last: .*connection refused/);
});

test('an rclone that never starts listening: a clear error after the start timeout, and no process left', async (t) => {
  const dir = await tempDir(t);
  const pidFile = join(dir, 'pid');
  const stuck = join(dir, 'stuck-rclone');
  await writeFile(stuck, `#!/bin/sh\necho $$ > ${pidFile}\necho "starting up" >&2\nexec sleep 600\n`, { mode: 0o755 });
  await assert.rejects(startRcloneHelper(stuck, process.env, 'rclone:stuck:repo', 1000), /repository rclone:stuck:repo: rclone did not start within 1 s: starting up/);
  const pid = Number(await readFile(pidFile, 'utf8'));
  for (let tries = 0; alive(pid) && tries < 50; tries++) await new Promise((r) => setTimeout(r, 100));
  assert.equal(alive(pid), false, 'the stuck helper was stopped');
});

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
