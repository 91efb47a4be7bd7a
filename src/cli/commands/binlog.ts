import type { Command } from 'commander';
import { UsageError } from '../../util/errors.js';
import { formatBytes } from '../../util/format.js';
import type { CliContext } from '../context.js';
import { emit } from '../output.js';

export function registerBinlogCommands(program: Command, context: () => CliContext): void {
  const binlog = program.command('binlog').description("the database server's binary log, archived for point-in-time recovery");

  binlog
    .command('archive')
    .description('archive a database source\'s binary log into the repository until stopped (what "stackvault run" does for sources with binlog: true)')
    .requiredOption('-s, --source <name>', 'the database source (stackvault.yaml)')
    .addHelpText(
      'after',
      `
Reads the log as a replica does (the user needs REPLICATION SLAVE and BINLOG MONITOR) and
commits a segment at least every binlog_segment_seconds (default 60): a host that dies loses
at most that much. After an interruption it continues where the last segment ended.
SIGTERM or Ctrl-C commits what was read and stops.

Examples:
  stackvault binlog archive --source db
  stackvault binlog status`,
    )
    .action(async (flags: { source: string }) => {
      const ctx = context();
      const loaded = ctx.requireConfig('binlog archive');
      const { binlogArchivers } = await import('../../stack/binlog-archivers.js');
      const controller = new AbortController();
      const stop = () => controller.abort();
      process.once('SIGTERM', stop);
      process.once('SIGINT', stop);
      const log = (level: string, message: string) => process.stderr.write(`${level === 'info' ? '' : `${level}: `}${message}\n`);
      const [archiver] = binlogArchivers(loaded, () => ctx.openRepository(), controller.signal, log, flags.source);
      const { advice } = await archiver!.preflight();
      if (advice) log('warn', advice);
      if (!ctx.options.quiet) process.stderr.write(`archiving the binary log of ${flags.source}; Ctrl-C stops\n`);
      await archiver!.run();
      emit(
        ctx,
        () => `stopped: ${archiver!.status.segments} segments, ${formatBytes(archiver!.status.bytes)} archived`,
        () => ({ message_type: 'summary', source: flags.source, segments: archiver!.status.segments, bytes: archiver!.status.bytes }),
      );
    });

  binlog
    .command('status')
    .description('what the archive holds: per source, the stretches of log it covers')
    .option('-s, --source <name>', 'only this source')
    .option('--stack <name>', 'the stack (default: the one of stackvault.yaml)')
    .addHelpText('after', `\nExamples:\n  stackvault binlog status\n  stackvault binlog status --source db --json`)
    .action(async (flags: { source?: string; stack?: string }) => {
      const ctx = context();
      const repo = await ctx.openRepository();
      const { chainsOf, coveredUntil, listAllSegments } = await import('../../snapshot/binlog-segments.js');
      const stack = flags.stack ?? ctx.config()?.config.stack ?? null;
      const mine = (await listAllSegments(repo)).filter((s) => (stack === null || s.segment.stack === stack) && (!flags.source || s.segment.source === flags.source));
      if (flags.source && mine.length === 0) throw new UsageError(`nothing is archived for source ${flags.source}${stack ? ` of stack ${stack}` : ''}`);
      const sources = [...new Set(mine.map((s) => `${s.segment.stack ?? ''}\u0000${s.segment.source}`))];
      const report = sources.map((key) => {
        const [stackName, source] = key.split('\u0000') as [string, string];
        const chains = chainsOf(mine.filter((s) => s.segment.source === source && (s.segment.stack ?? '') === stackName));
        return {
          stack: stackName || null,
          source,
          chains: chains.map((chain) => ({
            from: chain[0]!.segment.start,
            to: chain[chain.length - 1]!.segment.end,
            first_event: chain.find((s) => s.segment.firstTime)?.segment.firstTime ? new Date(chain.find((s) => s.segment.firstTime)!.segment.firstTime! * 1000).toISOString() : null,
            covered_until: new Date(coveredUntil(chain)).toISOString(),
            segments: chain.length,
            events: chain.reduce((n, s) => n + s.segment.events, 0),
            bytes: chain.reduce((n, s) => n + s.segment.bytes, 0),
            last_gtid: [...chain].reverse().find((s) => s.segment.lastGtid)?.segment.lastGtid ?? null,
          })),
        };
      });
      emit(
        ctx,
        () =>
          report.length === 0
            ? 'no binary log is archived in this repository'
            : report
                .flatMap((r) => [
                  `${r.stack ? `${r.stack}/` : ''}${r.source}:`,
                  ...r.chains.map(
                    (c) =>
                      `  ${c.from.file}:${c.from.position} .. ${c.to.file}:${c.to.position}  events from ${c.first_event ?? '-'}, complete to ${c.covered_until}  ` +
                      `(${c.segments} segments, ${c.events} events, ${formatBytes(c.bytes)}${c.last_gtid ? `, last GTID ${c.last_gtid}` : ''})`,
                  ),
                ])
                .join('\n'),
        () => ({ message_type: 'binlog_status', sources: report }),
      );
    });
}
