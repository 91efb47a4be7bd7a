import type { Command } from 'commander';
import { openBackend } from '../../repo/backends/open.js';
import { canPrompt, promptPassword } from '../password-prompt.js';
import { Repository } from '../../repo/repository.js';
import { copySnapshot } from '../../snapshot/copy.js';
import { findSnapshot, listSnapshots, shortId } from '../../snapshot/snapshot.js';
import { formatBytes } from '../../util/format.js';
import type { CliContext } from '../context.js';
import { secretFromFile } from '../../util/secrets.js';
import { emit, interruptSignal } from '../output.js';

export function registerCopyCommand(program: Command, context: () => CliContext): void {
  program
    .command('copy')
    .description('copy snapshots from another repository into this one (re-chunked, so they deduplicate here)')
    .argument('[snapshots...]', 'snapshot ids or "latest"; every snapshot that is not forgotten when none are given')
    .requiredOption('--from-repo <location>', 'the repository to copy from')
    .option('--from-password-file <file>', 'its password (or STACKVAULT_FROM_PASSWORD)')
    .addHelpText(
      'after',
      `\nCopying a snapshot again writes nothing: the copy remembers where it came from.\n\nExamples:\n  STACKVAULT_FROM_PASSWORD=... stackvault copy --from-repo /mnt/old-backup latest\n  stackvault copy --from-repo s3://vendor-releases/cc --from-password-file vendor.pw`,
    )
    .action(async (ids: string[], flags: { fromRepo: string; fromPasswordFile?: string }) => {
      const ctx = context();
      const password = flags.fromPasswordFile ? secretFromFile(flags.fromPasswordFile, '--from-password-file') : process.env.STACKVAULT_FROM_PASSWORD;
      const fromBackend = openBackend(flags.fromRepo);
      const asked = password ?? (canPrompt() ? () => promptPassword(`enter password for repository ${fromBackend.location} (copied from): `) : undefined);
      const from = await Repository.open(fromBackend, asked, 'give its password in STACKVAULT_FROM_PASSWORD or --from-password-file');
      const to = await ctx.openRepository();
      const all = await listSnapshots(from);
      const wanted = ids.length ? ids.map((id) => findSnapshot(all, id)) : all;
      const signal = interruptSignal();
      for (const ref of wanted) {
        const copied = await copySnapshot(from, to, ref, { signal });
        emit(
          ctx,
          () =>
            copied.existing
              ? `snapshot ${shortId(ref.id)} is here already as ${shortId(copied.id)}`
              : `snapshot ${shortId(ref.id)} copied as ${shortId(copied.id)}: ${copied.files} files, ${formatBytes(copied.bytes)}, added ${formatBytes(copied.bytesAdded)}` +
                (copied.reused > 0 ? `; ${copied.reused} unchanged folders taken from an earlier copy without reading them` : ''),
          () => ({ message_type: 'copy', from: ref.id, to: copied.id, ...copied }),
        );
      }
    });
}
