import type { Command } from 'commander';
import type { CliContext } from '../context.js';

export function registerConsoleCommand(program: Command, context: () => CliContext): void {
  program
    .command('console')
    .description('serve the web console for a repository without a task runner: snapshots, browsing, downloads, changes (until stopped)')
    .option('--listen <host:port>', 'where to serve it', '127.0.0.1:9181')
    .addHelpText(
      'after',
      `
Without a runner there is no job history and no "Backup now": those come with "stackvault
run", which serves the same console. Beyond loopback the console needs the runner token
(STACKVAULT_RUNNER_TOKEN, STACKVAULT_RUNNER_TOKEN_FILE), asked for on its login page.

Examples:
  stackvault console --repo /mnt/backup/acme              # then open http://127.0.0.1:9181/
  ssh -L 9181:127.0.0.1:9181 backup-host stackvault console --repo /mnt/backup/acme`,
    )
    .action(async (flags: { listen: string }) => {
      const ctx = context();
      const [{ Console }, { startStatusServer }, { readFileSync }] = await Promise.all([import('../../runner/console/console.js'), import('../../runner/http.js'), import('node:fs')]);
      const repo = await ctx.openRepository();
      const stack = ctx.config()?.config.stack ?? null;
      const fileToken = process.env.STACKVAULT_RUNNER_TOKEN_FILE ? readFileSync(process.env.STACKVAULT_RUNNER_TOKEN_FILE, 'utf8').split('\n')[0] : undefined;
      const health = { healthy: true, problems: [] as string[] };
      const server = await startStatusServer(
        flags.listen,
        { health: () => health, metrics: () => '', status: () => ({ health }) },
        {
          token: process.env.STACKVAULT_RUNNER_TOKEN ?? fileToken,
          console: (sessions) =>
            new Console({ stack, openRepository: async () => repo, status: () => ({ health, current: null, next: {} }), jobs: [], runNow: async () => 'failed' }, sessions),
        },
      );
      const address = server.address();
      const url = address && typeof address === 'object' ? `http://${address.address}:${address.port}/` : flags.listen;
      process.stderr.write(`serving the console of ${repo.backend.location} at ${url}; Ctrl-C stops\n`);
      await new Promise<void>((resolve) => {
        const stop = () => server.close(() => resolve());
        process.once('SIGINT', stop);
        process.once('SIGTERM', stop);
      });
    });
}
