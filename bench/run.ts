/**
 * npm run bench: stackvault side by side with restic and Borg (files) and with
 * mariadb-dump and mydumper/myloader (database), on the same generated data in one run.
 * Prints tables with times and ratios, and writes bench-results.json.
 *
 *   npm run bench                            # everything
 *   BENCH_ONLY=database npm run bench        # or files
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { cpus, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { benchDatabase } from './database.js';
import { benchFiles } from './files.js';

const only = process.env.BENCH_ONLY;
if (only && only !== 'files' && only !== 'database') throw new Error(`BENCH_ONLY=${only}: expected files or database`);

const work = await mkdtemp(join(tmpdir(), 'sv-bench-'));
try {
  const lines = [`machine: ${cpus().length} cores (${cpus()[0]?.model}), ${Math.round(totalmem() / 2 ** 30)} GiB; node ${process.version}`, ''];
  const results: Record<string, unknown> = { date: new Date().toISOString(), node: process.version, cores: cpus().length };
  if (only !== 'database') {
    const files = await benchFiles(join(work, 'files'));
    lines.push(...files.lines, '');
    results.files = files.results;
  }
  if (only !== 'files') {
    const database = await benchDatabase(join(work, 'database'));
    lines.push(...database.lines, '');
    results.database = database.results;
  }
  process.stdout.write(lines.join('\n'));
  const out = join(process.cwd(), 'bench-results.json');
  await writeFile(out, JSON.stringify(results, null, 2));
  process.stderr.write(`results written to ${out}\n`);
} finally {
  await rm(work, { recursive: true, force: true });
}
