import type { Command } from 'commander';
import { resolve } from 'node:path';
import { restore } from '../../snapshot/restore.js';
import { shortId } from '../../snapshot/snapshot.js';
import { StackvaultError, UsageError } from '../../util/errors.js';
import { formatBytes } from '../../util/format.js';
import type { CliContext } from '../context.js';
import { collect, emit, interruptSignal } from '../output.js';
import { createProgress } from '../progress.js';
import { addFilterOptions, filterFrom, resolveSnapshot } from './browse.js';

export function registerRestoreCommand(program: Command, context: () => CliContext): void {
  addFilterOptions(
    program
      .command('restore')
      .description('restore a snapshot into a folder')
      .argument('<snapshot>', 'snapshot id or "latest"')
      .requiredOption('-t, --target <folder>', 'where to restore; must be empty unless --force')
      .option('-i, --include <path>', 'restore only this snapshot path, e.g. /data/prompts (repeatable)', collect, [])
      .option('--force', 'restore into a folder that is not empty, replacing files with the same names'),
  )
    .addHelpText(
      'after',
      `
Each source of the snapshot becomes a folder in the target (e.g. <target>/data).
A file whose data fails verification is not written; it is reported and the exit code is 1.

Examples:
  stackvault restore latest --target /tmp/restore
  stackvault restore 1a2b3c4d --target /srv/acme --include /data/prompts --force`,
    )
    .action(async (snapshot: string, flags: { target: string; include: string[]; force?: boolean; host?: string; stack?: string; tag: string[] }) => {
      const ctx = context();
      if (!flags.target) throw new UsageError('--target is required');
      const repo = await ctx.openRepository();
      const ref = await resolveSnapshot(repo, snapshot, filterFrom(flags));
      const sink = createProgress('restore', { json: ctx.json, quiet: ctx.options.quiet ?? false, enabled: ctx.options.progress !== false });
      const target = resolve(flags.target);
      const result = await restore(repo, ref, {
        target,
        include: flags.include,
        force: flags.force,
        signal: interruptSignal(),
        progress: (p) =>
          sink.update({ bytesDone: p.bytesDone, bytesTotal: p.bytesTotal, itemsDone: p.filesDone, itemsTotal: p.filesTotal, totalsFinal: true, errors: p.errors, current: p.currentPath }),
      });
      sink.stop();
      emit(
        ctx,
        () =>
          [
            ...result.errors.map((e) => `error: ${e.path}: ${e.message}`),
            `restored snapshot ${shortId(ref.id)} to ${target}: ${result.files} files, ${result.dirs} folders, ${formatBytes(result.bytes)}` +
              (result.errors.length ? `; ${result.errors.length} FAILED` : ''),
          ].join('\n'),
        () => ({ message_type: 'summary', snapshot_id: ref.id, target, files: result.files, dirs: result.dirs, bytes: result.bytes, errors: result.errors }),
      );
      if (result.errors.length > 0) {
        throw new StackvaultError(`${result.errors.length} entries could not be restored (first: ${result.errors[0]!.path}: ${result.errors[0]!.message})`);
      }
    });
}
