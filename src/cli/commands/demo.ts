import type { Command } from 'commander';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { resolveSources } from '../../config/sources.js';
import { LocalBackend } from '../../repo/backends/local.js';
import { Repository } from '../../repo/repository.js';
import { ExclusionMatcher } from '../../sources/files/exclusions.js';
import { compareTrees, type CompareResult } from '../../sources/files/compare.js';
import { backup } from '../../snapshot/backup/backup.js';
import { check } from '../../snapshot/maintenance/check.js';
import { restore } from '../../snapshot/restore/restore.js';
import { StackvaultError } from '../../util/errors.js';
import { formatBytes } from '../../util/format.js';
import type { CliContext } from '../context.js';
import { emit } from '../output.js';

export const EXAMPLE_STACK = fileURLToPath(new URL('../../../../examples/contact-center/', import.meta.url));
/** the data folders as the example's release 1 ships them, one per files source */
const EXAMPLE_DATA = join(EXAMPLE_STACK, 'vendor', 'releases', '1', 'files');

/**
 * The main job on a built-in default: back up the bundled example stack into a new local
 * (encrypted) repository, verify it, restore it elsewhere, and prove the two trees match.
 */
export function registerDemoCommand(program: Command, context: () => CliContext): void {
  program
    .command('demo')
    .description('back up the bundled example stack\'s data to a local repository, restore it elsewhere and show that they match')
    .option('--workdir <folder>', 'where to put the repository and the restore (default: a new temporary folder)')
    .action(async (flags: { workdir?: string }) => {
      const ctx = context();
      const workdir = flags.workdir ? resolve(flags.workdir) : await mkdtemp(join(tmpdir(), 'stackvault-demo-'));
      const { loadConfig } = await import('../../config/load.js');
      const loaded = loadConfig(join(EXAMPLE_STACK, 'stackvault.yaml'));
      // The files sources, on the data release 1 ships: the stack's database needs its containers (stackvault up).
      const files = { ...loaded, config: { ...loaded.config, sources: loaded.config.sources.filter((s) => s.type === 'files') } };
      const sources = resolveSources(files).map((s) => ({ ...s, path: join(EXAMPLE_DATA, s.name) }));
      const password = randomBytes(18).toString('base64url');
      await mkdir(workdir, { recursive: true });
      await writeFile(join(workdir, 'password'), password + '\n', { mode: 0o600 });
      const repoPath = join(workdir, 'repo');
      const repo = await Repository.init(new LocalBackend(repoPath), { password, immutabilityDays: loaded.config.repository.immutability_days ?? 0 });
      const saved = await backup(repo, { sources, stack: loaded.config.stack, tags: ['demo'] });
      const checked = await check(repo, { readData: true });
      const target = join(workdir, 'restored');
      const restored = await restore(repo, { id: saved.id, snapshot: saved.snapshot }, { target });
      const comparisons: Array<CompareResult & { source: string }> = [];
      for (const source of sources) {
        if (source.kind !== 'files') continue;
        const matcher = new ExclusionMatcher({ include: source.include, exclude: source.exclude, classes: source.exclusionClasses });
        comparisons.push({
          source: source.name,
          ...(await compareTrees(source.path, join(target, source.name), { skip: (rel, isDir) => matcher.classify(rel, isDir).excluded })),
        });
      }
      const differences = comparisons.flatMap((c) => c.differences.map((d) => `${c.source}: ${d}`));
      const ok = differences.length === 0 && checked.errors.length === 0 && restored.errors.length === 0;
      emit(
        ctx,
        () =>
          [
            `example data:   ${EXAMPLE_DATA}`,
            `repository:     ${repoPath} (encrypted; password in ${join(workdir, 'password')})`,
            `snapshot:       ${saved.id.slice(0, 8)}`,
            ...saved.snapshot.sources.flatMap((s) => [
              `  source ${s.name}: ${s.stats.files} files, ${formatBytes(s.stats.bytes)} backed up`,
              ...s.excluded.map((e) => `    excluded by class ${e.class}: ${e.count} files, ${formatBytes(e.bytes)}`),
            ]),
            `check --read-data: ${checked.errors.length === 0 ? 'no errors' : checked.errors.join('; ')}`,
            `restored to:    ${target}`,
            ...comparisons.map((c) => `  ${c.source}: ${c.files} files, ${c.dirs} folders, ${formatBytes(c.bytes)} compared`),
            ok ? 'RESULT: the restored stack matches the original (content, modes, times, links)' : `RESULT: MISMATCH\n  ${differences.join('\n  ')}`,
            '',
            `try: STACKVAULT_PASSWORD_FILE=${join(workdir, 'password')} stackvault --repo ${repoPath} snapshots`,
          ].join('\n'),
        () => ({ message_type: 'demo', ok, workdir, repository: repoPath, snapshot_id: saved.id, comparisons, check_errors: checked.errors }),
      );
      if (!ok) throw new StackvaultError('the demo restore does not match the original');
    });
}
