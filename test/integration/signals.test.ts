import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { CLI, pseudoRandom, runCli, tempDir } from '../support/helpers.js';
import { inTerminal, waitForScreen, type Terminal } from '../support/terminal.js';
import { startMariadb } from '../support/mariadb-server.js';

const ENV = { STACKVAULT_PASSWORD: 'signals' };

/** Several GB that take a while to read and restore, without the disk space (holes). */
async function slowSource(source: string): Promise<void> {
  await mkdir(source, { recursive: true });
  for (let i = 0; i < 4; i++) {
    await writeFile(join(source, `big-${i}.bin`), pseudoRandom(i + 1, 1_000_000));
    execFileSync('truncate', ['-s', '2G', join(source, `big-${i}.bin`)]);
  }
}

/** A repository with a slow source (and, if asked, a snapshot of it to restore). */
async function slowRepository(t: TestContext, withSnapshot: boolean): Promise<{ dir: string; source: string; repo: string }> {
  const dir = await tempDir(t);
  const source = join(dir, 'source');
  const repo = join(dir, 'repo');
  await slowSource(source);
  assert.equal((await runCli(['init', '--repo', repo], { env: ENV })).code, 0);
  if (withSnapshot) assert.equal((await runCli(['backup', '--repo', repo, '--quiet', source], { env: ENV, timeoutMs: 170_000 })).code, 0);
  return { dir, source, repo };
}

/** Ctrl-C once the progress bar shows: the command must end with 130 within two seconds. */
async function pressCtrlC(term: Terminal, bar: RegExp): Promise<void> {
  await waitForScreen(term, bar, 30_000);
  const pressed = Date.now();
  term.keys('C-c');
  const code = await term.exitCode(3000);
  assert.equal(code, 130, `exit code after Ctrl-C: ${code}\n${term.screen()}`);
  assert.ok(Date.now() - pressed < 2000, `took ${Date.now() - pressed} ms to stop`);
}

test('Ctrl-C on a terminal stops a backup at once: exit 130, the bar cleared, nothing committed', { timeout: 120_000 }, async (t) => {
  const { dir, source, repo } = await slowRepository(t, false);
  const term = await inTerminal(t, dir, ENV, `${process.execPath} ${CLI} backup --repo ${repo} ${source}`);
  await pressCtrlC(term, /backup \[.*\] \d+%/);
  assert.match(term.screen(), /interrupted/);
  const listed = await runCli(['snapshots', '--repo', repo, '--json'], { env: ENV });
  assert.deepEqual(JSON.parse(listed.stdout), []);
});

test('Ctrl-C on a terminal stops a restore within a second: exit 130', { timeout: 180_000 }, async (t) => {
  const { dir, repo } = await slowRepository(t, true);
  const term = await inTerminal(t, dir, ENV, `${process.execPath} ${CLI} restore latest --repo ${repo} --target ${join(dir, 'target')}`);
  await pressCtrlC(term, /restore \[.*\] \d+%/);
});

test('Ctrl-C on a terminal stops a database restore: exit 130, the bar gone and its message whole', { timeout: 180_000 }, async (t) => {
  // The bar's timer outlived the interrupted restore: the message was drawn over ("stackvault: restoe") and the command never ended.
  const server = await startMariadb(t);
  await server.client("CREATE DATABASE shop; USE shop; CREATE TABLE calls (id INT PRIMARY KEY, note VARCHAR(64), KEY k_note (note)); INSERT INTO calls SELECT seq, MD5(seq) FROM seq_1_to_1500000;");
  const dir = await tempDir(t);
  const config = join(dir, 'stackvault.yaml');
  await writeFile(config, `stack: signals\nrepository:\n  url: ./repo\n  password_env: STACKVAULT_PASSWORD\nsources:\n  - name: db\n    type: mariadb\n    socket: ${server.socket}\n    user: root\n    databases: [shop]\n`);
  for (const args of [['init'], ['backup', '--quiet']]) assert.equal((await runCli(['--config', config, ...args], { env: ENV, timeoutMs: 120_000 })).code, 0);
  const term = await inTerminal(t, dir, ENV, `${process.execPath} ${CLI} --config ${config} restore latest --source db --force`);
  await pressCtrlC(term, /restore db \[.*\] \d+%/);
  assert.match(term.screen(), /stackvault: restore interrupted; the databases being restored are incomplete/);
});

test('SIGINT stops a restore without a terminal too, within a second', { timeout: 180_000 }, async (t) => {
  const { dir, repo } = await slowRepository(t, true);
  const child = spawn(process.execPath, [CLI, 'restore', 'latest', '--repo', repo, '--json', '--target', join(dir, 'target')], { env: { ...process.env, ...ENV }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  const closed = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
  while (!out.includes('"message_type":"status"')) await sleep(50);
  const sent = Date.now();
  child.kill('SIGINT');
  const code = await closed;
  assert.equal(code, 130);
  assert.ok(Date.now() - sent < 1500, `took ${Date.now() - sent} ms to stop`);
});

test('ls and --json into a pipe that closes early end quietly, like restic and git', { timeout: 120_000 }, async (t) => {
  const dir = await tempDir(t);
  const source = join(dir, 'source');
  const repo = join(dir, 'repo');
  for (let d = 0; d < 20; d++) {
    await mkdir(join(source, `folder-${d}`), { recursive: true });
    for (let f = 0; f < 250; f++) await writeFile(join(source, `folder-${d}`, `a-file-with-a-long-name-${f}.txt`), String(f));
  }
  assert.equal((await runCli(['init', '--repo', repo], { env: ENV })).code, 0);
  assert.equal((await runCli(['backup', '--repo', repo, '--quiet', source], { env: ENV })).code, 0);
  for (const args of [['ls', 'latest'], ['ls', '--json', 'latest']]) {
    const run = spawn('bash', ['-c', `set -o pipefail; "$0" "$1" ${args.join(' ')} --repo "$2" | head -n 2; echo "status=$?" >&2`, process.execPath, CLI, repo], {
      env: { ...process.env, ...ENV },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    run.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    run.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    await new Promise((resolve) => run.on('close', resolve));
    assert.equal(stdout.trim().split('\n').length, 2);
    assert.equal(stderr.trim(), 'status=141', `${args.join(' ')} | head wrote:\n${stderr}`);
  }
});
