import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { link, mkdir, mkdtemp, readdir, rm, symlink, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { createProgress, itemsText } from '../../src/cli/progress.js';
import { compareTrees } from '../../src/sources/files/compare.js';
import { CLI, makeRichTree, pseudoRandom, runCli, tempDir } from '../support/helpers.js';
import { inTerminal, waitForScreen } from '../support/terminal.js';

/** What users of restic, borg and git expect of a command line (issue 21). */

const ENV = { STACKVAULT_PASSWORD: 'first password' };

async function repoWithSource(t: Parameters<typeof tempDir>[0]): Promise<{ dir: string; repo: string; source: string }> {
  const dir = await tempDir(t);
  const repo = join(dir, 'repo');
  const source = join(dir, 'source');
  await mkdir(join(source, 'logs'), { recursive: true });
  await writeFile(join(source, 'app.log'), 'a log line\n');
  await writeFile(join(source, 'logs', 'today.txt'), 'more log\n');
  await writeFile(join(source, 'notes.txt'), 'notes\n');
  assert.equal((await runCli(['init', '--repo', repo], { env: ENV })).code, 0);
  return { dir, repo, source };
}

const json = <T>(stdout: string): T => JSON.parse(stdout) as T;

test('key list, add, passwd and remove: never the last key, never the one in use', { timeout: 120_000 }, async (t) => {
  const { repo } = await repoWithSource(t);
  const list = async (env: Record<string, string>) => json<Array<{ id: string; current: boolean }>>((await runCli(['key', 'list', '--repo', repo, '--json'], { env })).stdout);
  const [only] = await list(ENV);
  assert.equal(only!.current, true);
  const last = await runCli(['key', 'remove', '--repo', repo, only!.id.slice(0, 8)], { env: ENV });
  assert.equal(last.code, 2);
  assert.match(last.stderr, /is the repository's only key/);

  assert.equal((await runCli(['key', 'add', '--repo', repo], { env: { ...ENV, STACKVAULT_NEW_PASSWORD: 'second password' } })).code, 0);
  const inUse = await runCli(['key', 'remove', '--repo', repo, only!.id.slice(0, 8)], { env: ENV });
  assert.equal(inUse.code, 2);
  assert.match(inUse.stderr, /is the one this password opens/);

  const changed = await runCli(['key', 'passwd', '--repo', repo], { env: { ...ENV, STACKVAULT_NEW_PASSWORD: 'third password' } });
  assert.equal(changed.code, 0, changed.stderr);
  assert.match(changed.stdout, /removed key/);
  assert.equal((await runCli(['snapshots', '--repo', repo], { env: ENV })).code, 12);
  const keys = await list({ STACKVAULT_PASSWORD: 'third password' });
  assert.equal(keys.length, 2);
  const second = keys.find((k) => !k.current)!;
  const removed = await runCli(['key', 'remove', '--repo', repo, second.id.slice(0, 8)], { env: { STACKVAULT_PASSWORD: 'third password' } });
  assert.equal(removed.code, 0, removed.stderr);
  assert.equal((await runCli(['snapshots', '--repo', repo], { env: { STACKVAULT_PASSWORD: 'second password' } })).code, 12);
  assert.equal((await list({ STACKVAULT_PASSWORD: 'third password' })).length, 1);
});

test('a key on an immutable repository is removed only once its period has passed', { timeout: 120_000 }, async (t) => {
  const dir = await tempDir(t);
  const repo = join(dir, 'repo');
  assert.equal((await runCli(['init', '--repo', repo, '--immutability', '30d'], { env: ENV })).code, 0);
  assert.equal((await runCli(['key', 'add', '--repo', repo], { env: { ...ENV, STACKVAULT_NEW_PASSWORD: 'second' } })).code, 0);
  const other = json<Array<{ id: string; current: boolean }>>((await runCli(['key', 'list', '--repo', repo, '--json'], { env: ENV })).stdout).find((k) => !k.current)!;
  const refused = await runCli(['key', 'remove', '--repo', repo, other.id], { env: ENV });
  assert.equal(refused.code, 2);
  assert.match(refused.stderr, /is immutable until 20\d\d-/);
  assert.equal((await readdir(join(repo, 'keys'))).length, 2);
});

test('forget --undo keeps a forgotten snapshot again; snapshots --forgotten lists what prune has not deleted', { timeout: 120_000 }, async (t) => {
  const { repo, source } = await repoWithSource(t);
  for (let i = 0; i < 2; i++) {
    await writeFile(join(source, 'notes.txt'), `notes ${i}\n`);
    assert.equal((await runCli(['backup', '--repo', repo, '--quiet', source], { env: ENV })).code, 0);
  }
  const all = json<Array<{ id: string }>>((await runCli(['snapshots', '--repo', repo, '--json'], { env: ENV })).stdout);
  const old = all[0]!.id;
  assert.equal((await runCli(['forget', '--repo', repo, old.slice(0, 8)], { env: ENV })).code, 0);
  const forgotten = await runCli(['snapshots', '--repo', repo, '--forgotten'], { env: ENV });
  assert.match(forgotten.stdout, new RegExp(`^${old.slice(0, 8)} `, 'm'));
  assert.match(forgotten.stdout, /^1 forgotten snapshot$/m);
  assert.match((await runCli(['snapshots', '--repo', repo], { env: ENV })).stdout, /^1 snapshot$/m);

  const undone = await runCli(['forget', '--repo', repo, '--undo', old.slice(0, 8)], { env: ENV });
  assert.equal(undone.code, 0, undone.stderr);
  assert.match((await runCli(['snapshots', '--repo', repo], { env: ENV })).stdout, /^2 snapshots$/m);
  // Kept again: prune leaves it, and it can be forgotten once more.
  assert.equal((await runCli(['prune', '--repo', repo, '--yes'], { env: ENV })).code, 0);
  assert.equal(json<unknown[]>((await runCli(['snapshots', '--repo', repo, '--json'], { env: ENV })).stdout).length, 2);
  const notForgotten = await runCli(['forget', '--repo', repo, '--undo', old.slice(0, 8)], { env: ENV });
  assert.equal(notForgotten.code, 2);
  assert.match(notForgotten.stderr, /not a forgotten snapshot still in the repository/);
});

test('backup of folders given on the command line leaves nothing out unless --exclusion-classes asks', { timeout: 120_000 }, async (t) => {
  const { repo, source } = await repoWithSource(t);
  const plain = await runCli(['backup', '--repo', repo, source], { env: ENV });
  assert.equal(plain.code, 0, plain.stderr);
  assert.match(plain.stdout, /3 files stored/);
  assert.doesNotMatch(plain.stdout, /excluded by/);
  const classes = await runCli(['backup', '--repo', repo, '--exclusion-classes', source], { env: ENV });
  assert.equal(classes.code, 0, classes.stderr);
  assert.match(classes.stdout, /1 file stored/);
  assert.match(classes.stdout, /excluded by logs: 2 files/);
});

test('small habits: help and exit codes, singular counts, a bad duration, the right password variable', { timeout: 120_000 }, async (t) => {
  const { dir, repo, source } = await repoWithSource(t);
  for (const args of [[], ['key']]) {
    const bare = await runCli(args);
    assert.equal(bare.code, 2, `stackvault ${args.join(' ')}`);
    assert.match(bare.stdout + bare.stderr, /Usage: stackvault/);
  }
  const help = await runCli(['--help']);
  assert.equal(help.code, 0);
  assert.match(help.stdout, /^Usage: stackvault/);
  assert.match(help.stdout, /stackvault \d+\.\d+\.\d+/);
  const duration = await runCli(['forget', '--repo', repo, '--keep-within', '2x'], { env: {} });
  assert.equal(duration.code, 2);
  assert.match(duration.stderr, /--keep-within: "2x" is not a duration/);

  assert.equal((await runCli(['backup', '--repo', repo, '--quiet', source], { env: ENV })).code, 0);
  const listed = await runCli(['snapshots', '--repo', repo], { env: ENV });
  assert.match(listed.stdout, /^1 snapshot$/m);
  assert.match(listed.stdout, new RegExp(`source \\(${source.replace(/[/.]/g, '\\$&')}\\)`));

  const other = join(dir, 'other');
  assert.equal((await runCli(['init', '--repo', other], { env: { STACKVAULT_PASSWORD: 'other' } })).code, 0);
  const copy = await runCli(['copy', '--repo', repo, '--from-repo', other], { env: ENV });
  assert.equal(copy.code, 2);
  assert.match(copy.stderr, /give its password in STACKVAULT_FROM_PASSWORD or --from-password-file/);
  const release = await runCli(['release', 'list', '--from-repo', other], { env: ENV });
  assert.equal(release.code, 2);
  assert.match(release.stderr, /STACKVAULT_RELEASE_PASSWORD/);

  // Secrets are read one way everywhere: a missing file or an unset variable is named as such.
  const missingFile = await runCli(['key', 'add', '--repo', repo, '--new-password-file', join(dir, 'nope')], { env: ENV });
  assert.equal(missingFile.code, 2, missingFile.stderr);
  assert.match(missingFile.stderr, /--new-password-file: cannot read .*nope: no such file/);
  await writeFile(join(dir, 'stackvault.yaml'), `stack: acme\nrepository: { url: ${repo} }\nrelease_store: { url: ${other}, password_env: VENDOR_PW }\nsources: [{ name: data, type: files, path: ./source }]\n`);
  const unset = await runCli(['release', 'list'], { env: ENV, cwd: dir });
  assert.equal(unset.code, 2, unset.stderr);
  assert.match(unset.stderr, /release_store\.password_env names VENDOR_PW, but that variable is not set/);
});

test('on a terminal, a password that is not configured is asked for without echo', { timeout: 120_000 }, async (t) => {
  const { dir, repo, source } = await repoWithSource(t);
  assert.equal((await runCli(['backup', '--repo', repo, '--quiet', source], { env: ENV })).code, 0);
  const term = await inTerminal(t, dir, {}, `${process.execPath} ${CLI} snapshots --repo ${repo}`);
  await waitForScreen(term, /enter password for repository .*repo:/, 20_000);
  term.keys('first');
  term.keys(' password');
  term.keys('Enter');
  assert.equal(await term.exitCode(30_000), 0, term.screen());
  assert.match(term.screen(), /^1 snapshot$/m);
  assert.doesNotMatch(term.screen(), /first password/);

  const wrong = await inTerminal(t, join(dir, 'source'), {}, `${process.execPath} ${CLI} snapshots --repo ${repo}`);
  await waitForScreen(wrong, /enter password/, 20_000);
  wrong.keys('nope');
  wrong.keys('Enter');
  assert.equal(await wrong.exitCode(30_000), 12, wrong.screen());
  // Without a terminal nothing is asked: the error names where a password goes.
  const piped = await runCli(['snapshots', '--repo', repo], { env: {} });
  assert.equal(piped.code, 2);
  assert.match(piped.stderr, /give its password in STACKVAULT_PASSWORD/);
});

test('init --immutability on a folder says plainly that nothing enforces it', { timeout: 60_000 }, async (t) => {
  const dir = await tempDir(t);
  const made = await runCli(['init', '--repo', join(dir, 'repo'), '--immutability', '30d'], { env: ENV });
  assert.equal(made.code, 0, made.stderr);
  assert.match(made.stdout, /immutability: 30 days \(not enforced\)/);
  assert.match(made.stdout, /cannot refuse a deletion, so stackvault's prune keeps every object for 30 days, but anyone .* can delete or change objects/);
  const json = await runCli(['init', '--repo', join(dir, 'repo2'), '--immutability', '30d', '--json'], { env: ENV });
  assert.equal((JSON.parse(json.stdout) as { immutability_enforced: boolean }).immutability_enforced, false);
});

test('progress never shows a total below what is done while the scan still counts', () => {
  const lines: string[] = [];
  const write = process.stdout.write.bind(process.stdout);
  process.stdout.write = ((chunk: string) => (lines.push(String(chunk)), true)) as typeof process.stdout.write;
  try {
    const sink = createProgress('backup', { json: true, quiet: false, enabled: true });
    sink.update({ bytesDone: 5000, bytesTotal: 3000, itemsDone: 12, itemsTotal: 9, totalsFinal: false });
    sink.stop();
  } finally {
    process.stdout.write = write;
  }
  const status = JSON.parse(lines.at(-1)!) as { bytes_done: number; total_bytes: number; files_done: number; total_files: number };
  assert.ok(status.total_bytes >= status.bytes_done && status.total_files >= status.files_done, JSON.stringify(status));
});

test("the bar counts a database restore's rows as rows, out of the dump's total, and files as files", () => {
  // A database restore showed "924288/924288 files": its rows, under the files' label, with no total.
  assert.equal(itemsText({ bytesDone: 1, bytesTotal: 2, itemsDone: 924_288, itemsTotal: 2_200_000, totalsFinal: true, itemUnit: 'rows' }), '924288/2200000 rows');
  assert.equal(itemsText({ bytesDone: 1, bytesTotal: 2, itemsDone: 12, itemsTotal: 40, totalsFinal: false }), '12/40+ files');
});

test('dump of a folder writes a tar archive that tar extracts to the same tree', { timeout: 120_000 }, async (t) => {
  const { dir, repo, source } = await repoWithSource(t);
  await mkdir(join(source, 'deep', 'er'), { recursive: true });
  await writeFile(join(source, 'deep', 'er', 'big.bin'), pseudoRandom(7, 3_000_000));
  await writeFile(join(source, 'deep', 'er', `a-name-longer-than-a-tar-header-holds-${'x'.repeat(120)}.txt`), 'long\n');
  await symlink('deep/er/big.bin', join(source, 'to-big'));
  await link(join(source, 'notes.txt'), join(source, 'notes-again.txt'));
  execFileSync('mkfifo', [join(source, 'pipe')]);
  assert.equal((await runCli(['backup', '--repo', repo, '--quiet', source], { env: ENV })).code, 0);
  const tarFile = join(dir, 'source.tar');
  execFileSync('sh', ['-c', `"${process.execPath}" "${CLI}" dump --repo "${repo}" latest /source > "${tarFile}"`], { env: { ...process.env, ...ENV } });
  const listing = execFileSync('tar', ['-tvf', tarFile], { encoding: 'utf8' });
  assert.match(listing, /^h.* source\/notes(-again)?\.txt link to source\/notes(-again)?\.txt$/m);
  assert.match(listing, /^l.* source\/to-big -> deep\/er\/big\.bin$/m);
  assert.match(listing, /^p.* source\/pipe$/m);
  const out = join(dir, 'extracted');
  await mkdir(out);
  execFileSync('tar', ['-C', out, '-xf', tarFile]);
  assert.deepEqual((await compareTrees(source, join(out, 'source'), { owners: process.getuid?.() === 0 })).differences, []);
});

test('init --immutable-flag: as root, every object of a folder repository carries chattr +i, and prune lifts it to delete', { timeout: 120_000, skip: process.getuid?.() !== 0 && 'needs root' }, async (t) => {
  // Its own folder: flagged files would stop the usual clean-up, so the flags go first.
  const dir = await mkdtemp(join(tmpdir(), 'sv-flag-'));
  t.after(async () => {
    execFileSync('chattr', ['-R', '-i', dir]);
    await rm(dir, { recursive: true, force: true });
  });
  const repo = join(dir, 'repo');
  const source = join(dir, 'source');
  await mkdir(source);
  await writeFile(join(source, 'notes.txt'), 'first\n');
  const made = await runCli(['init', '--repo', repo, '--immutability', '0d', '--immutable-flag'], { env: ENV });
  if (made.code !== 0 && /cannot mark files immutable/.test(made.stderr)) return t.skip(`this file system has no immutable flag: ${made.stderr}`);
  assert.equal(made.code, 0, made.stderr);
  assert.equal((await runCli(['backup', '--repo', repo, '--quiet', source], { env: ENV })).code, 0);
  const [pack] = execFileSync('find', [join(repo, 'data'), '-type', 'f'], { encoding: 'utf8' }).trim().split('\n');
  assert.match(execFileSync('lsattr', [pack!], { encoding: 'utf8' }), /^\S*i\S* /);
  await assert.rejects(unlink(pack!), { code: 'EPERM' });
  // Prune deletes a forgotten snapshot (past its period of 0 days): it lifts the flag first.
  await writeFile(join(source, 'notes.txt'), 'second\n');
  assert.equal((await runCli(['backup', '--repo', repo, '--quiet', source], { env: ENV })).code, 0);
  assert.equal((await runCli(['forget', '--repo', repo, '--keep-last', '1'], { env: ENV })).code, 0);
  const pruned = await runCli(['prune', '--repo', repo, '--yes'], { env: ENV });
  assert.equal(pruned.code, 0, pruned.stderr);
  assert.equal((await readdir(join(repo, 'snapshots'))).length, 1);
  assert.equal((await runCli(['check', '--repo', repo, '--read-data'], { env: ENV })).code, 0);
});

test('drill: the newest snapshot of the stack restored into a scratch folder, verified, and removed; --json gives the recovery time', async (t) => {
  const dir = await tempDir(t);
  const repo = join(dir, 'repo');
  await makeRichTree(join(dir, 'source'));
  await writeFile(join(dir, 'stackvault.yaml'), `stack: acme\nrepository: { url: ${repo} }\nsources: [{ name: data, type: files, path: ./source }]\ndrill: { target: ./scratch }\n`);
  const env = { STACKVAULT_PASSWORD: 'pw' };
  assert.equal((await runCli(['init'], { env, cwd: dir })).code, 0);
  const saved = await runCli(['backup', '--json'], { env, cwd: dir });
  assert.equal(saved.code, 0, saved.stderr);
  const summary = JSON.parse(saved.stdout.trim().split('\n').pop()!) as { snapshot_id: string; host: string; sources: Array<{ stats: { files: number } }> };
  assert.equal(summary.host, 'acme', "a stack's snapshot carries the stack's host name");

  const drilled = await runCli(['drill', '--json'], { env, cwd: dir });
  assert.equal(drilled.code, 0, drilled.stderr);
  const report = JSON.parse(drilled.stdout.trim().split('\n').pop()!) as { snapshot: string; rtoMs: number; filesVerified: number; problem: string | null };
  assert.equal(report.snapshot, summary.snapshot_id);
  assert.equal(report.filesVerified, summary.sources[0]!.stats.files);
  assert.ok(report.rtoMs > 0);
  assert.equal(report.problem, null);
  assert.deepEqual(await readdir(join(dir, 'scratch')), ['.stackvault-drill'], 'the scratch folder is emptied after the drill');
  const text = await runCli(['drill'], { env, cwd: dir });
  assert.match(text.stdout, /drill of snapshot [0-9a-f]{8}: restored and verified \d+ files .* \(the recovery time\)/);
});

test('extend-retention keeps its former name extend-locks as an alias', async () => {
  for (const name of ['extend-retention', 'extend-locks']) {
    const help = await runCli([name, '--help']);
    assert.equal(help.code, 0, help.stderr);
    assert.match(help.stdout, /Usage: stackvault extend-retention\|extend-locks/);
  }
});
