import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { mkdir, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { compareTrees } from '../../src/sources/files/compare.js';
import { CLI, pseudoRandom, pseudoText, runCli, tempDir } from '../support/helpers.js';

const RUNS = 22;

function killAfter(args: string[], env: Record<string, string>, delayMs: number): Promise<{ code: number | null; ms: number }> {
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], { env: { ...process.env, ...env }, stdio: 'ignore' });
    const timer = setTimeout(() => child.kill('SIGKILL'), delayMs);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, ms: Date.now() - started });
    });
  });
}

test(`a backup killed with SIGKILL at random moments (${RUNS} runs) never leaves a snapshot that fails check`, { timeout: 600_000 }, async (t) => {
  const dir = await tempDir(t);
  const source = join(dir, 'source');
  const repo = join(dir, 'repo');
  const env = { STACKVAULT_PASSWORD: 'crash-test' };
  for (let d = 0; d < 8; d++) await mkdir(join(source, `d${d}`), { recursive: true });
  const fileCount = 240;
  const write = async (i: number, generation: number) => {
    const size = i % 10 === 0 ? 2_000_000 : 150_000;
    const content = i % 2 ? pseudoRandom(i * 7919 + generation * 104729, size) : pseudoText(i * 31 + generation, size);
    await writeFile(join(source, `d${i % 8}`, `f${i}.dat`), content);
  };
  for (let i = 0; i < fileCount; i++) await write(i, 0);
  assert.equal((await runCli(['init', '--repo', repo, '--pack-size', '4MiB'], { env })).code, 0);

  let seed = 12345;
  const random = () => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32);
  let killed = 0;
  // The kill moment is drawn from the whole length of a backup, measured as the runs go.
  let backupMs = 3000;
  for (let run = 0; run < RUNS; run++) {
    // New content every run so every backup has packs to write when it is killed.
    for (let i = 0; i < fileCount; i++) if (random() < 0.3) await write(i, run + 1);
    const delay = 20 + Math.floor(random() * backupMs);
    const { code, ms } = await killAfter(['backup', '--repo', repo, '--quiet', source], env, delay);
    if (code !== 0) killed++;
    else backupMs = ms;
    const checked = await runCli(['check', '--repo', repo], { env });
    assert.equal(checked.code, 0, `run ${run} (killed after ${delay} ms): check failed:\n${checked.stdout}\n${checked.stderr}`);
  }
  assert.ok(killed >= RUNS / 2, `only ${killed} of ${RUNS} backups were interrupted; the kill timing no longer covers the backup`);

  const finished = await runCli(['backup', '--repo', repo, source], { env });
  assert.equal(finished.code, 0, finished.stderr);
  const readData = await runCli(['check', '--repo', repo, '--read-data'], { env });
  assert.equal(readData.code, 0, readData.stdout + readData.stderr);
  const target = join(dir, 'target');
  const restored = await runCli(['restore', 'latest', '--repo', repo, '--target', target], { env });
  assert.equal(restored.code, 0, restored.stderr);
  const cmp = await compareTrees(source, join(target, 'source'));
  assert.deepEqual(cmp.differences, []);
  assert.equal(cmp.files, fileCount);
  // Interrupted uploads leave only temporary files, never a visible partial object.
  const leftovers = await readdir(join(repo, 'tmp'));
  t.diagnostic(`${killed} of ${RUNS} backups killed; ${leftovers.length} temporary uploads left for prune`);
});

test('prune killed with SIGKILL at random moments never leaves a snapshot that does not restore', { timeout: 600_000 }, async (t) => {
  const dir = await tempDir(t);
  const source = join(dir, 'source');
  const repo = join(dir, 'repo');
  const env = { STACKVAULT_PASSWORD: 'crash-test' };
  await mkdir(source, { recursive: true });
  assert.equal((await runCli(['init', '--repo', repo, '--pack-size', '1MiB', '--immutability', '0d'], { env })).code, 0);
  /** snapshot id -> a copy of the source as it was backed up */
  const copies = new Map<string, string>();
  const snapshotIds = async () => (JSON.parse((await runCli(['snapshots', '--repo', repo, '--json'], { env })).stdout) as Array<{ id: string }>).map((s) => s.id);
  let seed = 777;
  const random = () => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32);
  let killed = 0;
  for (let round = 0; round < 12; round++) {
    for (let i = 0; i < 30; i++) if (round === 0 || random() < 0.3) await writeFile(join(source, `f${i}.dat`), pseudoRandom(round * 1000 + i, 150_000));
    const before = new Set(await snapshotIds());
    assert.equal((await runCli(['backup', '--repo', repo, '--quiet', source], { env })).code, 0);
    const id = (await snapshotIds()).find((s) => !before.has(s))!;
    const copy = join(dir, 'copies', id);
    await mkdir(join(dir, 'copies'), { recursive: true });
    execFileSync('cp', ['-a', source, copy]);
    copies.set(id, copy);
    if (round >= 2) assert.equal((await runCli(['forget', '--repo', repo, '--keep-last', '3'], { env })).code, 0);
    // Everything a day older, so that prune has packs to record and, from the second round on, to delete.
    execFileSync('find', [repo, '-type', 'f', '-exec', 'touch', '-h', '-d', '2 days ago', '{}', '+']);
    const { code } = await killAfter(['prune', '--repo', repo, '--yes', '--quiet'], env, 20 + Math.floor(random() * 600));
    if (code !== 0) killed++;
    const checked = await runCli(['check', '--repo', repo], { env });
    assert.equal(checked.code, 0, `round ${round}: check after a killed prune:\n${checked.stdout}\n${checked.stderr}`);
  }
  assert.ok(killed >= 3, `only ${killed} of 12 prunes were killed`);
  // Finish whatever the killed prunes left half-done, then every snapshot still restores byte for byte.
  execFileSync('find', [repo, '-type', 'f', '-exec', 'touch', '-h', '-d', '2 days ago', '{}', '+']);
  assert.equal((await runCli(['prune', '--repo', repo, '--yes', '--quiet'], { env })).code, 0);
  const readData = await runCli(['check', '--repo', repo, '--read-data'], { env });
  assert.equal(readData.code, 0, readData.stdout + readData.stderr);
  const remaining = await snapshotIds();
  assert.equal(remaining.length, 3);
  for (const id of remaining) {
    const target = join(dir, 'restored', id);
    const restored = await runCli(['restore', id, '--repo', repo, '--target', target], { env });
    assert.equal(restored.code, 0, restored.stderr);
    assert.deepEqual((await compareTrees(copies.get(id)!, join(target, 'source'))).differences, []);
  }
  t.diagnostic(`${killed} of 12 prunes killed`);
});
