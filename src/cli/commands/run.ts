import type { Command } from 'commander';
import type { Log } from '../../runner/daemon.js';
import { ExitCode } from '../../util/errors.js';
import type { CliContext } from '../context.js';

export function registerRunCommand(program: Command, context: () => CliContext): void {
  program
    .command('run')
    .description('the task runner: nightly backup, retention and check, restore drills, health and metrics over HTTP, notifications')
    .option('--once <job>', 'run one job (backup or drill) now and exit; exit code 1 if it failed')
    .option('--listen <host:port>', 'serve /healthz, /metrics and /api/status here (default: runner.listen, 127.0.0.1:9180)')
    .option('--no-listen', 'serve no HTTP')
    .addHelpText(
      'after',
      `
The jobs and their times come from stackvault.yaml (schedule:, runner:, drill:, notify:).
Logs are JSON lines on standard output. SIGTERM or Ctrl-C abandons the current job safely
(a backup commits nothing before its snapshot) and stops.

Examples:
  stackvault run                          # run on schedule until stopped
  stackvault run --once backup            # backup, retention and check now
  stackvault run --once drill --no-listen # a restore drill now
  curl -s localhost:9180/metrics`,
    )
    .action(async (flags: { once?: string; listen?: string | boolean }) => {
      const ctx = context();
      const loaded = ctx.requireConfig('run');
      // Loaded here, not at start-up: logging and the runner's database are the run command's alone.
      const [{ default: pino }, { startTaskRunner }] = await Promise.all([import('pino'), import('../../runner/service.js')]);
      const logger = pino({ base: { stack: loaded.config.stack }, timestamp: pino.stdTimeFunctions.isoTime });
      const log: Log = (level, message, fields) => logger[level](fields ?? {}, message);
      const runner = await startTaskRunner({
        loaded,
        repository: ctx.options.repo ?? process.env.STACKVAULT_REPOSITORY,
        password: ctx.password(),
        listen: flags.listen === false ? false : typeof flags.listen === 'string' ? flags.listen : flags.once ? false : undefined,
        log,
      });
      if (runner.url) log('info', 'serving /healthz, /metrics and /api/status', { url: runner.url });
      const stop = () => {
        log('info', 'stopping: the current job is abandoned safely');
        void runner.stop();
      };
      process.once('SIGTERM', stop);
      process.once('SIGINT', stop);
      if (flags.once) {
        const status = await runner.runNow(flags.once);
        await runner.stop();
        if (status !== 'success') process.exitCode = status === 'interrupted' ? ExitCode.interrupted : ExitCode.error;
        return;
      }
      // Planned before the log line, so that it says when every job runs next.
      runner.runner.plan();
      log('info', 'task runner started', { next: Object.fromEntries([...runner.runner.next].map(([job, n]) => [job, n.at.toISOString()])) });
      await runner.serve();
      await runner.stop();
    });
}
