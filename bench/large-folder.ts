/**
 * One folder of many small files (issue 25: trees that stream for huge folders), as a
 * contact center's recordings folder can hold: BENCH_FOLDER_FILES files (300,000 by
 * default, 20-260 bytes each) in one folder, backed up, backed up again with nothing
 * changed, and restored, by stackvault and restic side by side: time and peak RSS.
 *
 *   BENCH_ONLY=folder npm run bench
 *   BENCH_FOLDER_FILES=100000 BENCH_ONLY=folder npm run bench
 */
import { mkdir, open, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { mapConcurrent } from '../src/util/concurrency.js';
import { STACKVAULT, has, run, type Step } from './common.js';

const password = 'benchmark password';

export async function benchLargeFolder(work: string, restores: string): Promise<{ lines: string[]; results: unknown }> {
  const files = Number(process.env.BENCH_FOLDER_FILES ?? 300_000);
  const source = join(work, 'recordings');
  await mkdir(source, { recursive: true });
  await mapConcurrent(
    Array.from({ length: Math.ceil(files / 1000) }, (_, k) => k),
    4,
    async (k) => {
      for (let i = k * 1000; i < Math.min(files, (k + 1) * 1000); i++) {
        const file = await open(join(source, `call-${String(i).padStart(7, '0')}.txt`), 'w');
        await file.write(`call ${i} `.repeat((i % 13) + 1) + '\n');
        await file.close();
      }
    },
  );
  const env = { STACKVAULT_PASSWORD: password, RESTIC_PASSWORD: password };
  const tools: Array<{ tool: string; steps: Record<string, Step> }> = [];
  const svRepo = join(work, 'sv-repo');
  const sv = (args: string[]) => run(STACKVAULT, ['--quiet', '--no-progress', '--repo', svRepo, ...args], env);
  sv(['init']);
  tools.push({ tool: 'stackvault', steps: { backup: sv(['backup', source]), 'no-change': sv(['backup', source]), restore: sv(['restore', 'latest', '--target', join(restores, 'sv-out')]) } });
  await rm(join(restores, 'sv-out'), { recursive: true, force: true });
  if (has('restic')) {
    const resticRepo = join(work, 'restic-repo');
    const restic = (args: string[]) => run('restic', ['--quiet', '--repo', resticRepo, ...args], env);
    restic(['init']);
    tools.push({ tool: 'restic', steps: { backup: restic(['backup', source]), 'no-change': restic(['backup', source]), restore: restic(['restore', 'latest', '--target', join(restores, 'restic-out')]) } });
    await rm(join(restores, 'restic-out'), { recursive: true, force: true });
  }
  const lines = [`one folder of ${files.toLocaleString('en')} small files (one run each)`, ['step'.padEnd(12), ...tools.map((t) => t.tool.padStart(24))].join('')];
  for (const step of ['backup', 'no-change', 'restore']) {
    lines.push([step.padEnd(12), ...tools.map((t) => `${t.steps[step]!.seconds.toFixed(2)} s ${(t.steps[step]!.peakRssMb ?? 0).toFixed(0)} MiB`.padStart(24))].join(''));
  }
  return { lines, results: { files, tools } };
}
