/**
 * npm run bench: stackvault side by side with restic and Borg (files: a generated tree, and
 * real: a copy of system folders) and with mariadb-dump and mydumper/myloader (database),
 * on the same data in one run, and restores from network backends (remote: rclone WebDAV
 * and SFTP against restic, S3 against a local folder) on a copy of real trees, and memory
 * with an index of 10 million blobs (scale) and with one folder of 300,000 files (folder).
 * Prints tables with times and ratios, and writes bench-results.json.
 *
 *   npm run bench                            # everything
 *   BENCH_ONLY=database npm run bench        # or files, real, pitr, remote, scale, or folder
 */
import { mkdirSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { cpus, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { benchDatabase } from './database.js';
import { benchFiles } from './files.js';
import { benchPitr } from './pitr.js';
import { benchIndexScale } from './index-scale.js';
import { benchLargeFolder } from './large-folder.js';
import { benchRemote } from './remote.js';
import { describeSpeed, probeMachineSpeed } from './machine-speed.js';
import { restoreFileSystem } from './restore-fs.js';

const only = process.env.BENCH_ONLY;
const parts = ['files', 'real', 'database', 'pitr', 'remote', 'scale', 'folder'];
if (only && !parts.includes(only)) throw new Error(`BENCH_ONLY=${only}: expected one of ${parts.join(', ')}`);
const wanted = (part: string) => !only || only === part;

const work = await mkdtemp(join(tmpdir(), 'sv-bench-'));
const restoreFs = restoreFileSystem(work);
/** Where a mode restores: a folder of its own on the restores' file system. */
const restores = (mode: string) => {
  const dir = join(restoreFs.root, mode);
  mkdirSync(dir, { recursive: true });
  return dir;
};
try {
  const lines = [`machine: ${cpus().length} cores (${cpus()[0]?.model}), ${Math.round(totalmem() / 2 ** 30)} GiB; node ${process.version}; ${restoreFs.description}`, ''];
  const results: Record<string, unknown> = { date: new Date().toISOString(), node: process.version, cores: cpus().length, restoreFileSystem: restoreFs.description };
  const speedAtStart = probeMachineSpeed(work);
  if (wanted('files')) {
    const files = await benchFiles(join(work, 'files'), restores('files'));
    lines.push(...files.lines, '');
    results.files = files.results;
  }
  if (wanted('real')) {
    const real = await benchFiles(join(work, 'real'), restores('real'), 'real');
    lines.push(...real.lines, '');
    results.real = real.results;
  }
  if (wanted('database')) {
    const database = await benchDatabase(join(work, 'database'));
    lines.push(...database.lines, '');
    results.database = database.results;
  }
  if (wanted('pitr')) {
    const pitr = await benchPitr(join(work, 'pitr'));
    lines.push(...pitr.lines, '');
    results.pitr = pitr.results;
  }
  if (wanted('remote')) {
    const remote = await benchRemote(join(work, 'remote'), restores('remote'));
    lines.push(...remote.lines, '');
    results.remote = remote.results;
  }
  if (wanted('scale')) {
    const scale = await benchIndexScale(join(work, 'scale'));
    lines.push(...scale.lines, '');
    results.scale = scale.results;
  }
  if (wanted('folder')) {
    const folder = await benchLargeFolder(join(work, 'folder'), restores('folder'));
    lines.push(...folder.lines, '');
    results.folder = folder.results;
  }
  const speedAtEnd = probeMachineSpeed(work);
  lines.splice(1, 0, describeSpeed(speedAtStart, speedAtEnd));
  results.machineSpeed = { start: speedAtStart, end: speedAtEnd };
  process.stdout.write(lines.join('\n'));
  const out = join(process.cwd(), 'bench-results.json');
  await writeFile(out, JSON.stringify(results, null, 2));
  process.stderr.write(`results written to ${out}\n`);
} finally {
  restoreFs.close();
  await rm(work, { recursive: true, force: true });
}
