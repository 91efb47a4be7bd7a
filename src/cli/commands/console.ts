import type { Command } from 'commander';
import type { CliContext } from '../context.js';
import { canPrompt, promptPassword } from '../password-prompt.js';
import { UsageError } from '../../util/errors.js';

export function registerConsoleCommand(program: Command, context: () => CliContext): void {
  program
    .command('console')
    .description('serve the web console for a repository without a task runner: snapshots, browsing, downloads, changes (until stopped)')
    .option('--listen <host:port>', 'where to serve it', '127.0.0.1:9181')
    .option('--hash-password', 'print the hash of a console password (typed, or the first line of stdin) for runner.console_password_hash, and exit')
    .addHelpText(
      'after',
      `
Without a runner there is no job history and no "Backup now": those come with "stackvault
run", which serves the same console. Beyond loopback (and on loopback with
runner.console_login: true) the console asks, on its login page, for the runner token
(STACKVAULT_RUNNER_TOKEN, STACKVAULT_RUNNER_TOKEN_FILE, runner.token_file) or the console
password, kept in stackvault.yaml only as its hash (runner.console_password_hash, or
runner.console_password_hash_file).

Examples:
  stackvault console --repo /mnt/backup/acme              # then open http://127.0.0.1:9181/
  ssh -L 9181:127.0.0.1:9181 backup-host stackvault console --repo /mnt/backup/acme
  stackvault console --hash-password                      # type it twice; put the line it prints in stackvault.yaml`,
    )
    .action(async (flags: { listen: string; hashPassword?: boolean }) => {
      if (flags.hashPassword) {
        const { hashConsolePassword } = await import('../../runner/console/password.js');
        process.stdout.write(`${await hashConsolePassword(await readNewPassword())}\n`);
        return;
      }
      const ctx = context();
      const [{ Console }, { consoleUnservable, startStatusServer }, { consolePassword, runnerToken }] = await Promise.all([
        import('../../runner/console/console.js'),
        import('../../runner/http.js'),
        import('../../runner/credentials.js'),
      ]);
      const loaded = ctx.config();
      const login = { token: runnerToken(loaded ?? undefined), consolePasswordHash: loaded ? consolePassword(loaded) : undefined, consoleLogin: loaded?.config.runner?.console_login };
      // It serves nothing but the console: one nobody could log in to is refused before anything opens.
      const unservable = consoleUnservable(flags.listen, login);
      if (unservable) throw new UsageError(unservable);
      const repo = await ctx.openRepository();
      const stack = loaded?.config.stack ?? null;
      const health = { healthy: true, problems: [] as string[] };
      const server = await startStatusServer(
        flags.listen,
        { health: () => health, metrics: () => '', status: () => ({ health }) },
        {
          ...login,
          console: (sessions) =>
            new Console({ stack, configFile: loaded?.file, openRepository: async () => repo, status: () => ({ health, current: null, next: {} }), jobs: [], runNow: async () => 'failed' }, sessions),
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

/** A new password: typed twice on a terminal, or the first line of stdin. */
async function readNewPassword(): Promise<string> {
  if (canPrompt()) {
    const first = await promptPassword('new console password: ');
    if ((await promptPassword('the same again: ')) !== first) throw new UsageError('the two passwords differ');
    return first;
  }
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8').split(/\r?\n/)[0]!;
}
