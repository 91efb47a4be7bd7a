import type { Command } from 'commander';
import { openBackend } from '../../repo/backends/open.js';
import { Repository } from '../../repo/repository.js';
import { check } from '../../snapshot/check.js';
import { rebuildIndex } from '../../snapshot/repair.js';
import { StackvaultError, UsageError } from '../../util/errors.js';
import { formatBytes, parseDuration, parseSize } from '../../util/format.js';
import type { CliContext } from '../context.js';
import { emit } from '../output.js';
import { createProgress } from '../progress.js';

export function registerRepositoryCommands(program: Command, context: () => CliContext): void {
  program
    .command('init')
    .description('create a new repository')
    .option('--no-encryption', 'store data unencrypted (integrity is still verified)')
    .option('--immutability <duration>', 'how long every object must stay untouched, e.g. 30d; prune never deletes younger objects')
    .option('--pack-size <size>', 'target pack size', '16MiB')
    .addHelpText(
      'after',
      `
Examples:
  STACKVAULT_PASSWORD=... stackvault init --repo /mnt/backup/acme --immutability 30d
  stackvault init --repo ./repo --no-encryption`,
    )
    .action(async (opts: { encryption: boolean; immutability?: string; packSize: string }) => {
      const ctx = context();
      const cfg = ctx.config();
      const backend = ctx.options.repo || process.env.STACKVAULT_REPOSITORY || !cfg ? ctx.backend() : openBackend(cfg.config.repository.url, { baseDir: cfg.baseDir });
      let password: string | null = null;
      if (opts.encryption) {
        const given = ctx.password();
        if (given === undefined) {
          throw new UsageError('init needs a password for encryption: set STACKVAULT_PASSWORD or STACKVAULT_PASSWORD_FILE (or --password-file), or use --no-encryption');
        }
        password = given;
      }
      let immutabilityDays = cfg?.config.repository.immutability_days ?? 0;
      if (opts.immutability !== undefined) {
        try {
          immutabilityDays = parseDuration(opts.immutability) / 86_400_000;
        } catch (err) {
          throw new UsageError(`--immutability: ${(err as Error).message}`);
        }
      }
      let packSize: number;
      try {
        packSize = parseSize(opts.packSize);
      } catch (err) {
        throw new UsageError(`--pack-size: ${(err as Error).message}`);
      }
      const repo = await Repository.init(backend, { password, immutabilityDays, packSize });
      emit(
        ctx,
        () =>
          `created repository ${repo.config.id} at ${backend.location}\n` +
          `  encryption: ${repo.config.encryption}, immutability: ${immutabilityDays} days, pack size: ${formatBytes(packSize)}\n` +
          (password ? '  keep the password safe: without it the data cannot be read' : ''),
        () => ({ message_type: 'init', id: repo.config.id, location: backend.location, encryption: repo.config.encryption, immutability_days: immutabilityDays }),
      );
    });

  program
    .command('check')
    .description('verify the repository structure; with --read-data also every byte of content')
    .option('--read-data', 'read and verify all data')
    .option('--read-data-subset <subset>', 'read and verify a subset: n/t (e.g. 1/7) or a percentage (e.g. 5%)')
    .addHelpText(
      'after',
      `
Examples:
  stackvault check
  stackvault check --read-data
  stackvault check --read-data-subset 1/7     # a different seventh each day of the week`,
    )
    .action(async (opts: { readData?: boolean; readDataSubset?: string }) => {
      const ctx = context();
      const repo = await ctx.openRepository();
      const sink = createProgress('check', { json: ctx.json, quiet: ctx.options.quiet ?? false, enabled: ctx.options.progress !== false });
      const result = await check(repo, {
        readData: opts.readData || opts.readDataSubset !== undefined,
        readDataSubset: opts.readDataSubset,
        progress: (p) =>
          p.phase === 'data' &&
          sink.update({ bytesDone: p.bytesDone, bytesTotal: p.bytesTotal, itemsDone: p.packsDone, itemsTotal: p.packsTotal, totalsFinal: true }),
      });
      sink.stop();
      emit(
        ctx,
        () =>
          [
            ...result.warnings.map((w) => `warning: ${w}`),
            ...result.errors.map((e) => `error: ${e}`),
            `checked ${result.snapshots} snapshots, ${result.packs} packs` +
              (result.packsRead ? `, read ${result.packsRead} packs (${formatBytes(result.bytesRead)})` : '') +
              (result.errors.length ? `: ${result.errors.length} errors` : ': no errors'),
          ].join('\n'),
        () => ({ message_type: 'check', ...result }),
      );
      if (result.errors.length > 0) {
        throw new StackvaultError(`check found ${result.errors.length} errors${result.affected.length ? `; ${result.affected.length} paths in snapshots are affected` : ''}`);
      }
    });

  const repair = program.command('repair').description('repair repository metadata');
  repair
    .command('index')
    .description('write a new index from the pack headers alone (the old index files are superseded, not deleted)')
    .action(async () => {
      const ctx = context();
      const repo = await ctx.openRepository();
      const result = await rebuildIndex(repo);
      emit(
        ctx,
        () => `read ${result.packs} packs (${result.blobs} blobs); new index ${result.indexId.slice(0, 8)}` + (result.damaged.length ? `\n${result.damaged.map((d) => `damaged: ${d}`).join('\n')}` : ''),
        () => ({ message_type: 'repair_index', ...result }),
      );
    });

  const key = program.command('key').description('manage the passwords that open the repository');
  key
    .command('add')
    .description('add a password (read from STACKVAULT_NEW_PASSWORD or --new-password-file)')
    .option('--new-password-file <file>', 'file holding the new password')
    .action(async (opts: { newPasswordFile?: string }) => {
      const ctx = context();
      const repo = await ctx.openRepository();
      const { readFileSync } = await import('node:fs');
      const pw = opts.newPasswordFile ? readFileSync(opts.newPasswordFile, 'utf8').split(/\r?\n/)[0] : process.env.STACKVAULT_NEW_PASSWORD;
      if (!pw) throw new UsageError('give the new password in STACKVAULT_NEW_PASSWORD or --new-password-file');
      const id = await repo.addKey(pw);
      emit(ctx, () => `added key ${id.slice(0, 8)}`, () => ({ message_type: 'key_add', id }));
    });
}
