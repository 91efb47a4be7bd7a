import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { mkdir, readdir, rm, truncate, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { LocalBackend } from '../../src/repo/backends/local.js';
import { Repository } from '../../src/repo/repository.js';
import { backup } from '../../src/snapshot/backup/backup.js';
import { executePrune, planPrune } from '../../src/snapshot/maintenance/prune.js';
import { forgetSnapshots, listSnapshots } from '../../src/snapshot/snapshot.js';
import { compareTrees } from '../../src/sources/files/compare.js';
import { CLI, pseudoRandom, runCli, tempDir } from '../support/helpers.js';

const ENV = { STACKVAULT_PASSWORD: 'race' };

/** Make every object of a folder repository look `ms` older, as if written that long ago. */
async function backdate(repoDir: string, ms: number): Promise<void> {
  const when = new Date(Date.now() - ms);
  const walk = async (dir: string): Promise<void> => {
    for (const entry of await readdir(dir, { withFileTypes: true })) {
      const full = join(dir, entry.name);
      if (entry.isDirectory()) await walk(full);
      else await utimes(full, when, when);
    }
  };
  await walk(repoDir);
}

async function writeSource(source: string, generation: number, files = 24): Promise<void> {
  await mkdir(join(source, 'a'), { recursive: true });
  // Most files stay, a few change: a backup deduplicates against the older packs.
  for (let i = 0; i < files; i++) await writeFile(join(source, 'a', `f${i}.bin`), pseudoRandom(i + 1000 * (i % 6 === 0 ? generation : 0), 200_000));
}

/** Seconds of reading and hashing for a backup, without the disk space: a hole of 3 GB. */
async function largeSparseFile(path: string): Promise<void> {
  await writeFile(path, 'start');
  await truncate(path, 3_000_000_000);
}

interface Running {
  child: ReturnType<typeof spawn>;
  done: Promise<{ code: number | null; stdout: string; stderr: string }>;
  /** resolves at the first progress line reporting `files` files done */
  reached: (files: number) => Promise<void>;
}

function startBackup(args: string[]): Running {
  const child = spawn(process.execPath, [CLI, 'backup', '--json', ...args], { env: { ...process.env, ...ENV }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  let filesDone = 0;
  const waiters: Array<{ files: number; resolve: () => void }> = [];
  child.stdout!.on('data', (d: Buffer) => {
    stdout += d.toString();
    for (const line of stdout.split('\n')) {
      if (line.startsWith('{"message_type":"status"')) filesDone = Math.max(filesDone, (JSON.parse(line) as { files_done: number }).files_done);
    }
    for (const w of [...waiters]) {
      if (filesDone >= w.files) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve();
      }
    }
  });
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const done = new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => child.on('close', (code) => resolve({ code, stdout, stderr })));
  return {
    child,
    done,
    reached: (files) => new Promise((resolve, reject) => {
      waiters.push({ files, resolve });
      void done.then(() => reject(new Error(`the backup ended before ${files} files were done:\n${stdout}\n${stderr}`)));
    }),
  };
}

async function snapshotIds(repo: string): Promise<string[]> {
  const listed = await runCli(['snapshots', '--repo', repo, '--json'], { env: ENV });
  assert.equal(listed.code, 0, listed.stderr);
  return (JSON.parse(listed.stdout) as Array<{ id: string }>).map((s) => s.id);
}

async function restoresEqual(repo: string, id: string, expected: string, scratch: string): Promise<void> {
  const target = join(scratch, `restore-${id.slice(0, 8)}`);
  const restored = await runCli(['restore', id, '--repo', repo, '--target', target], { env: ENV });
  assert.equal(restored.code, 0, `snapshot ${id.slice(0, 8)} does not restore:\n${restored.stdout}\n${restored.stderr}`);
  const cmp = await compareTrees(expected, join(target, 'source'));
  assert.deepEqual(cmp.differences, [], `snapshot ${id.slice(0, 8)} restores different content`);
  await rm(target, { recursive: true, force: true });
}

/**
 * A repository whose only snapshot is forgotten, its objects two days old, and a backup of
 * the same files plus a large new one, held (SIGSTOP) once it deduplicated the small files
 * against the forgotten snapshot's packs: `whileHeld` runs, then the backup goes on.
 */
async function heldBackup(t: TestContext, whileHeld: (repo: string) => Promise<void>): Promise<{ dir: string; source: string; repo: string; result: Awaited<Running['done']> }> {
  const dir = await tempDir(t);
  const source = join(dir, 'source');
  const repo = join(dir, 'repo');
  await writeSource(source, 0);
  assert.equal((await runCli(['init', '--repo', repo, '--immutability', '0d', '--pack-size', '1MiB'], { env: ENV })).code, 0);
  assert.equal((await runCli(['backup', '--repo', repo, source], { env: ENV })).code, 0);
  const [first] = await snapshotIds(repo);
  assert.equal((await runCli(['forget', '--repo', repo, first!], { env: ENV })).code, 0);
  await backdate(repo, 2 * 86_400_000);
  await largeSparseFile(join(source, 'zz-large.bin'));
  const running = startBackup(['--repo', repo, source]);
  await running.reached(24);
  running.child.kill('SIGSTOP');
  try {
    await whileHeld(repo);
  } finally {
    running.child.kill('SIGCONT');
  }
  return { dir, source, repo, result: await running.done };
}

async function pruneYes(repo: string): Promise<void> {
  const pruned = await runCli(['prune', '--repo', repo, '--yes'], { env: ENV });
  assert.equal(pruned.code, 0, pruned.stdout + pruned.stderr);
}

test('prune while a backup holds deduplicated blobs: the backup writes them again, its snapshot restores', { timeout: 300_000 }, async (t) => {
  const { dir, source, repo, result } = await heldBackup(t, async (repo) => {
    await pruneYes(repo);
    // Long enough later for the prune's second phase too, while the backup is still held.
    await backdate(repo, 2 * 86_400_000);
    await pruneYes(repo);
  });
  // Either the backup saved a snapshot that restores, or it refused to save one: never a broken snapshot.
  const checked = await runCli(['check', '--repo', repo, '--read-data'], { env: ENV });
  assert.equal(checked.code, 0, `check after the race:\n${checked.stdout}\n${checked.stderr}\nbackup said:\n${result.stderr}`);
  const ids = await snapshotIds(repo);
  if (result.code === 0) {
    assert.equal(ids.length, 1);
    await restoresEqual(repo, ids[0]!, source, dir);
  } else {
    assert.equal(ids.length, 0, 'a failed backup saved no snapshot');
    assert.match(result.stderr, /prune/);
  }
  // Either way the next backup works and restores.
  const next = await runCli(['backup', '--repo', repo, source], { env: ENV });
  assert.equal(next.code, 0, next.stderr);
  await restoresEqual(repo, (await snapshotIds(repo)).at(-1)!, source, dir);
});

test('prune marks first: a backup held across one prune writes the marked blobs again and its snapshot restores', { timeout: 300_000 }, async (t) => {
  const { dir, source, repo, result } = await heldBackup(t, pruneYes);
  assert.equal(result.code, 0, result.stderr);
  // The prune that runs once the marks are old deletes the forgotten snapshot's packs.
  await backdate(repo, 2 * 86_400_000);
  await pruneYes(repo);
  const checked = await runCli(['check', '--repo', repo, '--read-data'], { env: ENV });
  assert.equal(checked.code, 0, checked.stdout + checked.stderr);
  const ids = await snapshotIds(repo);
  assert.equal(ids.length, 1);
  await restoresEqual(repo, ids[0]!, source, dir);
});

for (const [where, memoryBlobs] of [['', undefined], [', the index past 8 blobs in a scratch file', '8']] as const) {
  test(`backups and prune --yes racing in a loop, objects back-dated: every saved snapshot restores byte-equal${where}`, { timeout: 600_000 }, async (t) => {
    // Every command of the test inherits it (runCli and startBackup pass the environment on).
    if (memoryBlobs) {
      process.env.STACKVAULT_INDEX_MEMORY_BLOBS = memoryBlobs;
      t.after(() => delete process.env.STACKVAULT_INDEX_MEMORY_BLOBS);
    }
    await racingLoop(t);
  });
}

async function racingLoop(t: TestContext): Promise<void> {
  const dir = await tempDir(t);
  const source = join(dir, 'source');
  const repo = join(dir, 'repo');
  const copies = join(dir, 'copies');
  await mkdir(copies);
  await writeSource(source, 0, 40);
  assert.equal((await runCli(['init', '--repo', repo, '--immutability', '0d', '--pack-size', '1MiB'], { env: ENV })).code, 0);
  /** snapshot id -> the source as it was backed up */
  const expected = new Map<string, string>();
  let saved = 0;
  for (let round = 1; round <= 8; round++) {
    await writeSource(source, round, 40);
    const copy = join(copies, String(round));
    // cp -a keeps times to the nanosecond, as the backup recorded them.
    execFileSync('cp', ['-a', source, copy]);
    const before = new Set(await snapshotIds(repo));
    // Keep only the newest snapshot, so each round's prune has packs to mark and delete.
    if (before.size > 1) assert.equal((await runCli(['forget', '--repo', repo, '--keep-last', '1'], { env: ENV })).code, 0);
    await backdate(repo, 2 * 86_400_000);
    const delay = (round * 37) % 400;
    const [backedUp, pruned] = await Promise.all([
      runCli(['backup', '--repo', repo, '--quiet', source], { env: ENV }),
      new Promise((r) => setTimeout(r, delay)).then(() => runCli(['prune', '--repo', repo, '--yes'], { env: ENV })),
    ]);
    assert.equal(pruned.code, 0, pruned.stdout + pruned.stderr);
    assert.ok(backedUp.code === 0 || /prune/.test(backedUp.stderr), `round ${round}: backup failed for another reason:\n${backedUp.stderr}`);
    if (backedUp.code !== 0) t.diagnostic(`round ${round}: ${backedUp.stderr.trim()}`);
    for (const id of await snapshotIds(repo)) {
      if (!before.has(id)) {
        expected.set(id, copy);
        saved++;
      }
    }
  }
  t.diagnostic(`saved ${saved} of 8`);
  assert.ok(saved >= 4, `only ${saved} of 8 racing backups saved a snapshot`);
  const checked = await runCli(['check', '--repo', repo, '--read-data'], { env: ENV });
  assert.equal(checked.code, 0, checked.stdout + checked.stderr);
  for (const id of await snapshotIds(repo)) await restoresEqual(repo, id, expected.get(id)!, dir);
}

test('prune deletes only forgotten snapshots: one committed after prune listed the snapshots stays', { timeout: 120_000 }, async (t) => {
  const dir = await tempDir(t);
  const source = join(dir, 'source');
  await writeSource(source, 0, 8);
  const backend = new LocalBackend(join(dir, 'repo'));
  await Repository.init(backend, { password: 'pw', immutabilityDays: 0 });
  const spec = { sources: [{ name: 'data', path: source, exclusionClasses: {} }] };
  const first = await backup(await Repository.open(backend, 'pw'), spec);
  await forgetSnapshots(await Repository.open(backend, 'pw'), [first.id]);
  // Prune's repository lists the snapshots when it opens; a backup commits after that.
  const pruning = await Repository.open(backend, 'pw');
  await writeSource(source, 1, 8);
  const second = await backup(await Repository.open(backend, 'pw'), spec);
  const plan = await planPrune(pruning);
  assert.deepEqual(plan.delete.snapshots.map((c) => c.key), [`snapshots/${first.id}`]);
  await executePrune(pruning, plan);
  const left = await listSnapshots(await Repository.open(backend, 'pw'));
  assert.deepEqual(left.map((r) => r.id), [second.id]);
});
