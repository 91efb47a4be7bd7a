import type { Command } from 'commander';
import { basename, resolve } from 'node:path';
import { resolveExclusionClasses } from '../../sources/files/exclusion-classes.js';
import { backup, changedWhileReadWarning, type BackupProgress } from '../../snapshot/backup/backup.js';
import type { FilesSource } from '../../sources/files/driver.js';
import { startReadingFolders } from '../../sources/files/read-ahead.js';
import type { Snapshot } from '../../snapshot/snapshot.js';
import { ExitCode, UsageError } from '../../util/errors.js';
import { formatBytes, formatDuration, plural } from '../../util/format.js';
import type { CliContext } from '../context.js';
import { collect, emit, interruptSignal } from '../output.js';
import { createProgress } from '../progress.js';

interface BackupFlags {
  tag: string[];
  host?: string;
  stack?: string;
  exclude: string[];
  include: string[];
  /** folders given on the command line are backed up whole unless asked */
  exclusionClasses?: boolean;
  parent?: string;
  force?: boolean;
  oneFileSystem?: boolean;
}

function sourcesFromPaths(paths: string[], flags: BackupFlags): FilesSource[] {
  const used = new Set<string>();
  return paths.map((p) => {
    const base = basename(resolve(p)).replace(/[^A-Za-z0-9._-]/g, '_') || 'root';
    let name = base;
    for (let i = 2; used.has(name); i++) name = `${base}-${i}`;
    used.add(name);
    return {
      name,
      path: resolve(p),
      include: flags.include.length ? flags.include : undefined,
      exclude: flags.exclude,
      exclusionClasses: flags.exclusionClasses ? resolveExclusionClasses() : {},
      oneFileSystem: flags.oneFileSystem,
    };
  });
}

export function describeSnapshotSummary(id: string, s: Snapshot): string {
  const lines = [`snapshot ${id.slice(0, 8)} saved (${formatDuration(s.durationMs / 1000)})`];
  for (const src of s.sources) {
    const st = src.stats;
    lines.push(
      `  ${src.name} (${src.path}): ${plural(st.files, 'file')} stored (${st.newFiles} new, ${st.changedFiles} changed, ${st.unchangedFiles} unchanged), ${plural(st.dirs, 'folder')}, ${formatBytes(st.bytes)}; read ${formatBytes(st.bytesRead)}, added ${formatBytes(st.bytesAdded)}` +
        (src.errors.length > 0 ? `; ${plural(src.errors.length, 'entry', 'entries')} unreadable` : '') +
        (src.changedWhileRead?.length ? `; ${plural(src.changedWhileRead.length, 'file')} changed while read` : ''),
    );
    for (const ex of src.excluded) lines.push(`    excluded by ${ex.class}: ${plural(ex.count, 'file')}, ${formatBytes(ex.bytes)}`);
    for (const err of src.errors.slice(0, 20)) lines.push(`    could not read ${err.path}: ${err.message}`);
    if (src.errors.length > 20) lines.push(`    ... and ${src.errors.length - 20} more unreadable entries`);
    const changed = src.changedWhileRead ?? [];
    for (const path of changed.slice(0, 20)) lines.push(`    changed while it was read: ${path}`);
    if (changed.length > 20) lines.push(`    ... and ${changed.length - 20} more files changed while they were read`);
  }
  return lines.join('\n');
}

export function registerBackupCommand(program: Command, context: () => CliContext): void {
  program
    .command('backup')
    .description('back up folders (or the sources in stackvault.yaml) into a new snapshot')
    .argument('[paths...]', 'folders to back up; the sources of stackvault.yaml when none are given')
    .option('--tag <tag>', 'add a tag (repeatable)', collect, [])
    .option('--host <name>', 'record this host name instead of the machine\'s')
    .option('--stack <name>', 'record the stack name (default: stack in stackvault.yaml)')
    .option('--exclude <pattern>', 'leave out paths matching the pattern (repeatable)', collect, [])
    .option('--include <pattern>', 'keep only paths matching the pattern (repeatable)', collect, [])
    .option('--exclusion-classes', 'apply the default exclusion classes (recordings, logs) to the folders given too; configured sources always apply their own')
    .option('--parent <snapshot>', 'compare with this snapshot to skip unchanged files (default: the latest of the same host, stack and sources)')
    .option('--force', 'read every file, even those unchanged since the parent snapshot')
    .option('-x, --one-file-system', 'stay on each folder\'s file system: other mounts below it are kept as empty folders')
    .addHelpText(
      'after',
      `
Exit codes: 0 done; 3 snapshot saved but some files could not be read (they are listed); 1 failed, nothing saved.

Examples:
  stackvault backup                                   # the sources in ./stackvault.yaml
  stackvault backup --repo /mnt/backup/acme /srv/acme/data --tag nightly
  stackvault backup --json /srv/data | jq 'select(.message_type=="summary")'`,
    )
    .action(async (paths: string[], flags: BackupFlags) => {
      const ctx = context();
      if (paths.length === 0 && (flags.exclude.length || flags.include.length || flags.exclusionClasses)) {
        throw new UsageError('--exclude, --include and --exclusion-classes go with folders given on the command line; configured sources take theirs from stackvault.yaml');
      }
      // Nothing is drawn before the first update, which comes after the repository opened (and its password prompt).
      const sink = createProgress('backup', { json: ctx.json, quiet: ctx.options.quiet ?? false, enabled: ctx.options.progress !== false });
      const openRepository = () => ctx.openRepository();
      // Without a display, no progress: the totals walk it needs would cost a stat per file for nothing.
      const progress =
        sink.active === false
          ? undefined
          : (p: BackupProgress) =>
              sink.update({ bytesDone: p.bytesDone, bytesTotal: p.bytesTotal, itemsDone: p.filesDone, itemsTotal: p.filesTotal, totalsFinal: p.scanDone, errors: p.errors, current: p.currentPath });
      const common = { parent: flags.force ? null : flags.parent, signal: interruptSignal({ hardStopMs: 1000 }), progress };
      let result;
      try {
        if (paths.length === 0) {
          // Loaded only here: the stack's modules (containers, compose, Node's HTTP) were 13 of the 124 a folder
          // backup loaded, about 10 ms of its start.
          const { backupStack } = await import('../../stack/backup-stack.js');
          result = await backupStack(ctx.requireConfig('backup without paths'), { ...common, repository: openRepository, tags: flags.tag, host: flags.host, stack: flags.stack, oneFileSystem: flags.oneFileSystem });
        } else {
          const loaded = ctx.config();
          const sources = sourcesFromPaths(paths, flags);
          // The walk starts reading folders while the repository's key is derived.
          const { prefetched, listingThread } = startReadingFolders(sources);
          try {
            const repo = await openRepository().finally(() => prefetched.stop());
            // Folders given here carry the machine's host name, not the stack's (see stackHost).
            result = await backup(repo, { ...common, sources, host: flags.host ?? loaded?.config.host, stack: flags.stack ?? loaded?.config.stack ?? null, tags: [...(loaded?.config.tags ?? []), ...flags.tag], prefetched, listingThread });
          } finally {
            await listingThread?.close();
          }
        }
      } finally {
        sink.stop();
      }
      emit(
        ctx,
        () => describeSnapshotSummary(result.id, result.snapshot),
        () => ({ message_type: 'summary', snapshot_id: result.id, ...result.snapshot, error_count: result.errorCount, changed_while_read_count: result.changedCount }),
      );
      if (result.errorCount > 0 && !ctx.json) process.stderr.write(`warning: ${result.errorCount} entries could not be read; the snapshot holds everything else\n`);
      if (result.changedCount > 0 && !ctx.json) process.stderr.write(`warning: ${changedWhileReadWarning(result.changedCount)}\n`);
      if (result.errorCount > 0 || result.changedCount > 0) process.exitCode = ExitCode.partial;
    });
}
