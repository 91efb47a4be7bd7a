import type { Command } from 'commander';
import { stackHistory } from '../../stack/stack-repository.js';
import { UsageError } from '../../util/errors.js';
import type { CliContext } from '../context.js';
import { emit } from '../output.js';

export function registerStackCommands(program: Command, context: () => CliContext): void {
  program
    .command('history')
    .description("list the stack's incarnations: the commits of its stack repository, with what each changed")
    .option('-n, --limit <n>', 'at most this many, newest first', '50')
    .addHelpText('after', `\nExamples:\n  stackvault history\n  stackvault history --json | jq '.[] | select(.versionChangedFrom != null)'`)
    .action(async (flags: { limit: string }) => {
      const ctx = context();
      const loaded = ctx.requireConfig('history');
      const limit = Number(flags.limit);
      if (!Number.isInteger(limit) || limit < 1) throw new UsageError(`--limit: expected a whole number of at least 1, found "${flags.limit}"`);
      const incarnations = await stackHistory(loaded.file, { limit });
      emit(
        ctx,
        () =>
          incarnations.length === 0
            ? 'no commits yet: commit stackvault.yaml to make the first incarnation'
            : incarnations
                .map((i) => {
                  const version = i.versionChangedFrom !== undefined ? `version ${i.versionChangedFrom ?? '-'} -> ${i.version ?? '-'}` : `version ${i.version ?? '-'}`;
                  const files = i.files.map((f) => `${f.status} ${f.path}`).join(', ');
                  return `${i.commit.slice(0, 8)}  ${i.date.slice(0, 16).replace('T', ' ')}  ${i.author}\n    ${i.subject}\n    ${version}; ${files}`;
                })
                .join('\n'),
        () => incarnations,
      );
    });
}
