import type { Command } from 'commander';
import { backendExtra } from '../../repo/backends/backend.js';
import { openBackend } from '../../repo/backends/open.js';
import { Repository } from '../../repo/repository.js';
import { check } from '../../snapshot/maintenance/check.js';
import { rebuildIndex } from '../../repo/maintenance/repair-index.js';
import { StackvaultError, UsageError } from '../../util/errors.js';
import { formatBytes, parseDuration, parseSize, plural } from '../../util/format.js';
import { canPrompt, promptNewPassword } from '../password-prompt.js';
import { secretFromFile } from '../../util/secrets.js';
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
    .option('--immutable-flag', "a folder repository: give every object the file system's immutable flag (chattr +i; root only)")
    .addHelpText(
      'after',
      `
Examples:
  STACKVAULT_PASSWORD=... stackvault init --repo /mnt/backup/acme --immutability 30d
  stackvault init --repo ./repo --no-encryption
  stackvault init --repo /srv/backups/acme --immutability 30d --immutable-flag   # as root, on ext4/XFS/Btrfs`,
    )
    .action(async (opts: { encryption: boolean; immutability?: string; packSize: string; immutableFlag?: boolean }) => {
      const ctx = context();
      const cfg = ctx.config();
      const backend = ctx.options.repo || process.env.STACKVAULT_REPOSITORY || !cfg ? ctx.backend() : openBackend(cfg.config.repository.url, { baseDir: cfg.baseDir });
      let password: string | null = null;
      if (opts.encryption) {
        const given = ctx.password() ?? (canPrompt() ? await promptNewPassword('a password for the new repository') : undefined);
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
      const repo = await Repository.init(backend, { password, immutabilityDays, packSize, immutableFlag: opts.immutableFlag });
      ctx.keepKey(repo);
      // Storage that cannot enforce it (a folder, an rclone remote) gets only prune's promise: said plainly.
      const enforced = immutabilityDays === 0 || (await backendExtra(backend, 'useImmutability')) !== undefined;
      const notEnforced = opts.immutableFlag
        ? `  every object carries the immutable flag (chattr +i): nobody can change or delete it without first lifting the flag, which only root can; ` +
          'prune lifts it once an object is past the period. It does not stop root (or ransomware running as root): for that, use S3 Object Lock, Azure immutability policies, or a WORM share'
        : `  immutability is not enforced: ${backend.location} cannot refuse a deletion, so stackvault's prune keeps every object for ${immutabilityDays} days, ` +
          'but anyone (or any ransomware) that can write there can delete or change objects. As root on ext4, XFS or Btrfs, --immutable-flag marks every object immutable; ' +
          'for protection also against root, use S3 Object Lock, Azure immutability policies, or a write-once (WORM) share';
      emit(
        ctx,
        () =>
          `created repository ${repo.config.id} at ${backend.location}\n` +
          `  encryption: ${repo.config.encryption}, immutability: ${immutabilityDays} days${enforced ? '' : opts.immutableFlag ? ' (immutable flag on every object)' : ' (not enforced)'}, pack size: ${formatBytes(packSize)}\n` +
          (enforced ? '' : `${notEnforced}\n`) +
          (password ? '  keep the password safe: without it the data cannot be read' : ''),
        () => ({ message_type: 'init', id: repo.config.id, location: backend.location, encryption: repo.config.encryption, immutability_days: immutabilityDays, immutability_enforced: enforced, immutable_flag: opts.immutableFlag ?? false }),
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

  const key = program
    .command('key')
    .description('manage the passwords that open the repository')
    .addHelpText(
      'after',
      `
Every key file holds the repository's one master key, sealed with one password. Removing
a key stops its password from opening the repository, but it cannot take back what a
leaked password already gave: whoever had it and a copy of the key file (or of the
repository) can read every snapshot made with that master key, and on immutable storage
a key file stays until its immutability period has passed. After a leak, make a new
repository with a new password and copy the snapshots you keep into it
(stackvault copy --from-repo OLD), then retire the old one.

Examples:
  stackvault key list
  STACKVAULT_NEW_PASSWORD=... stackvault key add
  stackvault key passwd                  # a new password for this key (asked on the terminal)
  stackvault key remove 3f2a91c0`,
    );

  /** The new password: from STACKVAULT_NEW_PASSWORD or a file, else typed twice on a terminal. */
  const newPassword = async (file?: string): Promise<string> => {
    const pw = file ? secretFromFile(file, '--new-password-file') : process.env.STACKVAULT_NEW_PASSWORD;
    if (pw) return pw;
    if (canPrompt()) return promptNewPassword('the new password');
    throw new UsageError('give the new password in STACKVAULT_NEW_PASSWORD or --new-password-file (or type it on a terminal)');
  };

  key
    .command('add')
    .description('add a password (from STACKVAULT_NEW_PASSWORD, --new-password-file, or typed on a terminal)')
    .option('--new-password-file <file>', 'file holding the new password')
    .action(async (opts: { newPasswordFile?: string }) => {
      const ctx = context();
      const repo = await ctx.openRepository();
      const id = await repo.addKey(await newPassword(opts.newPasswordFile));
      emit(ctx, () => `added key ${id.slice(0, 8)}`, () => ({ message_type: 'key_add', id }));
    });

  key
    .command('list')
    .description('list the key files: who made each and when; * marks the one this password opens')
    .action(async () => {
      const ctx = context();
      const repo = await ctx.openRepository();
      const keys = await repo.listKeys();
      emit(
        ctx,
        () =>
          [
            ' ID        Created (UTC)        Host / user',
            ...keys.map((k) => `${k.current ? '*' : ' '}${k.id.slice(0, 8)}  ${k.created.replace('T', ' ').slice(0, 19)}  ${k.host} / ${k.username}`),
            plural(keys.length, 'key'),
          ].join('\n'),
        () => keys.map((k) => ({ id: k.id, created: k.created, host: k.host, username: k.username, current: k.current })),
      );
    });

  key
    .command('remove')
    .description('remove a key file: never the last one, nor the one this password opens')
    .argument('<id>', 'the key id or a unique prefix (see key list)')
    .action(async (id: string) => {
      const ctx = context();
      const repo = await ctx.openRepository();
      const removed = await repo.removeKey(id);
      emit(ctx, () => `removed key ${removed.slice(0, 8)}`, () => ({ message_type: 'key_remove', id: removed }));
    });

  key
    .command('passwd')
    .description("change this password: add a key with the new one, then remove this password's key")
    .option('--new-password-file <file>', 'file holding the new password')
    .action(async (opts: { newPasswordFile?: string }) => {
      const ctx = context();
      const repo = await ctx.openRepository();
      const old = repo.openedWithKey;
      if (!old) throw new UsageError('the repository is not encrypted: it has no password to change');
      const added = await repo.addKey(await newPassword(opts.newPasswordFile));
      let removed = true;
      try {
        await repo.removeKey(old, { evenCurrent: true });
      } catch (err) {
        // An immutable key stays until its period passes: the new password works at once all the same.
        if (!(err instanceof UsageError)) throw err;
        removed = false;
        process.stderr.write(`warning: the old password's key stays: ${err.message}\n`);
      }
      emit(
        ctx,
        () => `added key ${added.slice(0, 8)} for the new password` + (removed ? `; removed key ${old.slice(0, 8)}` : ''),
        () => ({ message_type: 'key_passwd', added, removed: removed ? old : null }),
      );
    });
}
