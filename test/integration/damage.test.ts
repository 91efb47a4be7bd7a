import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdir, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { LocalBackend } from '../../src/repo/backends/local.js';
import { Repository } from '../../src/repo/repository.js';
import { compareTrees } from '../../src/sources/files/compare.js';
import { check } from '../../src/snapshot/maintenance/check.js';
import { listSnapshots } from '../../src/snapshot/snapshot.js';
import { TreeLoader } from '../../src/snapshot/tree.js';
import { CLI, flipBlob, flipByte, pseudoRandom, pseudoText, runCli, tempDir } from '../support/helpers.js';
import { inTerminal } from '../support/terminal.js';

const ENV = { STACKVAULT_PASSWORD: 'damage' };


async function ids(dir: string): Promise<string[]> {
  return (await readdir(dir)).sort();
}

async function writeTree(root: string, generation: number): Promise<void> {
  for (const folder of ['a', 'b', 'c']) {
    await mkdir(join(root, folder, 'x'), { recursive: true });
    await writeFile(join(root, folder, 'small.txt'), pseudoText(generation * 10 + folder.charCodeAt(0), 3000));
    await writeFile(join(root, folder, 'x', 'large.bin'), pseudoRandom(generation * 100 + folder.charCodeAt(0), 700_000));
  }
}

async function snapshotsJson(repo: string): Promise<{ code: number | null; ids: string[]; stderr: string }> {
  const r = await runCli(['snapshots', '--repo', repo, '--json'], { env: ENV });
  return { code: r.code, ids: r.code === 0 ? (JSON.parse(r.stdout) as Array<{ id: string }>).map((s) => s.id) : [], stderr: r.stderr };
}

async function setUp(t: import('node:test').TestContext, backups: number): Promise<{ dir: string; source: string; repo: string; snapshots: string[] }> {
  const dir = await tempDir(t);
  const source = join(dir, 'source');
  const repo = join(dir, 'repo');
  assert.equal((await runCli(['init', '--repo', repo], { env: ENV })).code, 0);
  const snapshots: string[] = [];
  for (let i = 0; i < backups; i++) {
    await writeTree(source, i);
    const r = await runCli(['backup', '--repo', repo, '--json', '--no-progress', source], { env: ENV });
    assert.equal(r.code, 0, r.stderr);
    snapshots.push((JSON.parse(r.stdout.trim().split('\n').at(-1)!) as { snapshot_id: string }).snapshot_id);
  }
  return { dir, source, repo, snapshots };
}

test('one damaged snapshot is reported and skipped: every other snapshot, backup, forget and restore still work', async (t) => {
  const { dir, source, repo, snapshots } = await setUp(t, 3);
  const damaged = snapshots[1]!;
  await flipByte(join(repo, 'snapshots', damaged));

  const listed = await snapshotsJson(repo);
  assert.equal(listed.code, 0, listed.stderr);
  assert.deepEqual(listed.ids.sort(), [snapshots[0]!, snapshots[2]!].sort());
  assert.match(listed.stderr, new RegExp(`warning: snapshots/${damaged} is damaged`));
  assert.equal(listed.stderr.match(/warning/g)?.length, 1, 'warned once');

  const ls = await runCli(['ls', '--repo', repo, 'latest', '/source/a'], { env: ENV });
  assert.equal(ls.code, 0, ls.stderr);
  const target = join(dir, 'target');
  const restored = await runCli(['restore', 'latest', '--repo', repo, '--target', target], { env: ENV });
  assert.equal(restored.code, 0, restored.stderr);
  assert.deepEqual((await compareTrees(source, join(target, 'source'))).differences, []);
  const backedUp = await runCli(['backup', '--repo', repo, source], { env: ENV });
  assert.equal(backedUp.code, 0, backedUp.stderr);
  const forgot = await runCli(['forget', '--repo', repo, '--keep-last', '2'], { env: ENV });
  assert.equal(forgot.code, 0, forgot.stderr);

  const checked = await runCli(['check', '--repo', repo], { env: ENV });
  assert.equal(checked.code, 1);
  assert.match(checked.stdout + checked.stderr, new RegExp(`snapshots/${damaged} is damaged`));

  // Prune lets nothing new go while a damaged snapshot might need it, until it is forgotten.
  const held = await runCli(['prune', '--repo', repo], { env: ENV });
  assert.equal(held.code, 0, held.stderr);
  assert.match(held.stdout, /held back: damaged snapshots/);
  assert.equal((await runCli(['forget', '--repo', repo, damaged.slice(0, 8)], { env: ENV })).code, 0);
  const free = await runCli(['prune', '--repo', repo], { env: ENV });
  assert.doesNotMatch(free.stdout, /held back/);
});

test('one damaged forget record is reported and skipped: the snapshots it forgot come back, nothing fails', async (t) => {
  const { repo, snapshots } = await setUp(t, 2);
  assert.equal((await runCli(['forget', '--repo', repo, snapshots[0]!], { env: ENV })).code, 0);
  assert.deepEqual((await snapshotsJson(repo)).ids, [snapshots[1]!]);
  const [record] = await ids(join(repo, 'forget'));
  await flipByte(join(repo, 'forget', record!));

  const listed = await snapshotsJson(repo);
  assert.equal(listed.code, 0, listed.stderr);
  assert.deepEqual(listed.ids.sort(), [...snapshots].sort());
  assert.match(listed.stderr, /warning: forget\/[0-9a-f]{64} is damaged/);
  const checked = await runCli(['check', '--repo', repo], { env: ENV });
  assert.equal(checked.code, 1);
  assert.match(checked.stdout + checked.stderr, new RegExp(`forget/${record} is damaged`));
});

test('one damaged index file: backup still works, repair index supersedes it, and check, restore and prune work again', async (t) => {
  const { dir, source, repo } = await setUp(t, 1);
  const [indexFile] = await ids(join(repo, 'index'));
  await flipByte(join(repo, 'index', indexFile!));

  const before = await runCli(['check', '--repo', repo], { env: ENV });
  assert.equal(before.code, 1);
  assert.match(before.stdout + before.stderr, new RegExp(`index/${indexFile} is damaged`));
  const backedUp = await runCli(['backup', '--repo', repo, source], { env: ENV });
  assert.equal(backedUp.code, 0, backedUp.stderr);
  assert.match(backedUp.stderr, /warning: index\/[0-9a-f]+ is damaged/);

  const repaired = await runCli(['repair', 'index', '--repo', repo], { env: ENV });
  assert.equal(repaired.code, 0, repaired.stderr);
  // Repair deletes nothing: the damaged file stays (immutable), superseded.
  assert.ok((await ids(join(repo, 'index'))).includes(indexFile!));
  const checked = await runCli(['check', '--repo', repo, '--read-data'], { env: ENV });
  assert.equal(checked.code, 0, checked.stdout + checked.stderr);
  assert.doesNotMatch(checked.stderr, /warning/);
  for (const id of (await snapshotsJson(repo)).ids) {
    const target = join(dir, `target-${id.slice(0, 8)}`);
    const restored = await runCli(['restore', id, '--repo', repo, '--target', target], { env: ENV });
    assert.equal(restored.code, 0, restored.stderr);
    assert.deepEqual((await compareTrees(source, join(target, 'source'))).differences, []);
  }
  const pruned = await runCli(['prune', '--repo', repo, '--yes'], { env: ENV });
  assert.equal(pruned.code, 0, pruned.stderr);
});

/** Damage the stored tree blob of one folder of the latest snapshot. */
async function damageTree(repoDir: string, path: string[]): Promise<void> {
  const repo = await Repository.open(new LocalBackend(repoDir), ENV.STACKVAULT_PASSWORD);
  await repo.loadIndex();
  const [ref] = (await listSnapshots(repo)).slice(-1);
  const loader = new TreeLoader(repo);
  let treeId = ref!.snapshot.tree;
  for (const name of path) treeId = (await loader.load(treeId)).nodes.find((n) => n.name === name)!.subtree!;
  const entry = repo.index.get(treeId)!;
  await flipBlob(repoDir, entry);
}

test('restore of a snapshot with one damaged folder tree restores everything else and names what it could not, with progress, on a terminal and with --include', async (t) => {
  const { dir, source, repo } = await setUp(t, 1);
  await damageTree(repo, ['source', 'b']);

  // --json shows progress, which needs the totals of a first walk over the trees.
  const target = join(dir, 'target');
  const restored = await runCli(['restore', 'latest', '--repo', repo, '--json', '--target', target], { env: ENV });
  assert.equal(restored.code, 1, restored.stdout + restored.stderr);
  assert.match(restored.stdout + restored.stderr, /\/source\/b\b.*damaged/);
  for (const folder of ['a', 'c']) {
    assert.deepEqual((await compareTrees(join(source, folder), join(target, 'source', folder))).differences, [], `${folder} is restored whole`);
  }

  // On a real terminal, with its progress bar.
  const onTerminal = join(dir, 'on-terminal');
  const term = await inTerminal(t, dir, ENV, `${process.execPath} ${CLI} restore latest --repo ${repo} --target ${onTerminal}`);
  assert.equal(await term.exitCode(60_000), 1, term.screen());
  assert.match(term.screen(), /\/source\/b\b.*damaged/);
  assert.deepEqual((await compareTrees(join(source, 'c'), join(onTerminal, 'source', 'c'))).differences, []);

  const partial = join(dir, 'partial');
  const included = await runCli(['restore', 'latest', '--repo', repo, '--target', partial, '--include', '/source/a', '--include', '/source/b/x'], { env: ENV });
  assert.equal(included.code, 1, included.stdout + included.stderr);
  assert.match(included.stdout + included.stderr, /\/source\/b\b.*damaged/);
  assert.deepEqual((await compareTrees(join(source, 'a'), join(partial, 'source', 'a'))).differences, []);
  assert.deepEqual(await readdir(join(partial, 'source')), ['a', 'b']);
});

test('check gives a consistent view while a backup runs: a snapshot committed during the check is not reported as damaged', async (t) => {
  const { source, repo } = await setUp(t, 1);
  await writeTree(source, 7);
  const opened = await Repository.open(new LocalBackend(repo), ENV.STACKVAULT_PASSWORD);
  let backedUp = false;
  const result = await check(opened, {
    progress: (p) => {
      if (backedUp || p.phase !== 'snapshots') return;
      backedUp = true;
      // A whole backup commits while the check is held at this point.
      execFileSync(process.execPath, [CLI, 'backup', '--repo', repo, '--quiet', source], { env: { ...process.env, ...ENV } });
    },
  });
  assert.ok(backedUp);
  assert.deepEqual(result.errors, []);
  assert.ok(result.snapshots >= 1);
});
