/**
 * Memory as a repository grows (issue 25): a synthetic repository whose index lists
 * BENCH_SCALE_BLOBS blobs (10 million by default) in index files of 50,000, as many
 * backups would have written them, then the peak memory of opening it and backing up a
 * small change, and of prune's plan. The packs the index names are empty files (a backup
 * of new files reads none of them; prune judges them by the index, and keeps them: they
 * are younger than a backup may run); the index files are real: encrypted, compressed,
 * read and verified.
 *
 *   BENCH_ONLY=scale npm run bench
 *   BENCH_SCALE_BLOBS=1000000 BENCH_ONLY=scale npm run bench
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { LocalBackend } from '../src/repo/backends/local.js';
import type { PackedBlob } from '../src/repo/format/pack.js';
import { MAX_BLOBS_PER_INDEX_FILE, encodeIndexFile } from '../src/repo/master-index.js';
import { Repository } from '../src/repo/repository.js';
import { mapConcurrent } from '../src/util/concurrency.js';
import { STACKVAULT, run } from './common.js';

const password = 'benchmark password';
const BLOBS_PER_PACK = 400;

export async function benchIndexScale(work: string): Promise<{ lines: string[]; results: unknown }> {
  const blobs = Number(process.env.BENCH_SCALE_BLOBS ?? 10_000_000);
  const repoDir = join(work, 'repo');
  const repo = await Repository.init(new LocalBackend(repoDir), { password, immutabilityDays: 0 });
  const started = Date.now();
  const files = Math.ceil(blobs / MAX_BLOBS_PER_INDEX_FILE);
  const seed = randomBytes(16);
  await mapConcurrent(
    Array.from({ length: files }, (_, f) => f),
    2,
    async (f) => {
      const packs: Array<[string, PackedBlob[]]> = [];
      const first = f * MAX_BLOBS_PER_INDEX_FILE;
      const last = Math.min(blobs, first + MAX_BLOBS_PER_INDEX_FILE);
      for (let b = first; b < last; b += BLOBS_PER_PACK) {
        const packId = createHash('sha256').update(seed).update(`pack ${b}`).digest('hex');
        const packBlobs: PackedBlob[] = [];
        for (let i = b; i < Math.min(last, b + BLOBS_PER_PACK); i++) {
          const id = createHash('sha256').update(seed).update(`blob ${i}`).digest('hex');
          packBlobs.push({ id, type: 'data', offset: (i - b) * 65_000, length: 65_000, rawLength: 100_000, compressed: true });
        }
        packs.push([packId, packBlobs]);
        await mkdir(join(repoDir, 'data', packId.slice(0, 2)), { recursive: true });
        await writeFile(join(repoDir, 'data', packId.slice(0, 2), packId), '');
      }
      await repo.saveObject('index', encodeIndexFile(packs));
    },
  );
  const generated = (Date.now() - started) / 1000;
  const source = join(work, 'small-change');
  await mkdir(source, { recursive: true });
  for (let i = 0; i < 20; i++) await writeFile(join(source, `file-${i}`), randomBytes(50_000 + i * 1000));
  const sv = (args: string[]) => run(STACKVAULT, ['--quiet', '--repo', repoDir, ...args], { STACKVAULT_PASSWORD: password });
  const backup = sv(['backup', source]);
  const snapshots = sv(['snapshots']);
  const prune = sv(['prune']);
  const lines = [
    `index scale: ${blobs.toLocaleString('en')} blobs in ${files} index files (generated in ${generated.toFixed(0)} s)`,
    `  backup of a small change (20 new files, 1.4 MB): ${backup.seconds.toFixed(2)} s, peak RSS ${backup.peakRssMb?.toFixed(0)} MiB`,
    `  snapshots (the index is not read):                ${snapshots.seconds.toFixed(2)} s, peak RSS ${snapshots.peakRssMb?.toFixed(0)} MiB`,
    `  prune's plan (every pack judged):                 ${prune.seconds.toFixed(2)} s, peak RSS ${prune.peakRssMb?.toFixed(0)} MiB`,
  ];
  return { lines, results: { blobs, indexFiles: files, backup, snapshots, prune } };
}
