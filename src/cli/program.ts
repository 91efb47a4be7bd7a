import { Command, CommanderError, Option } from 'commander';
import { ExitCode, StackvaultError, errorMessage } from '../util/errors.js';
import { VERSION } from '../util/version.js';
import { commandInArgs } from './command-in-args.js';
import { CliContext, type GlobalOptions } from './context.js';
import { stopProgressBars } from './progress.js';

type Registrar = (program: Command, context: () => CliContext) => void;

/**
 * The commands, each group loaded from its own module only when a command line names one
 * of them: a restore loaded 141 modules, most for other commands (the database, the stack,
 * backup, maintenance), and that load is on every command's way to its first request:
 * 0.07 s of a 1.4 s restore through rclone. In the order `--help` lists them.
 */
const COMMAND_GROUPS: Array<{ commands: string[]; load: () => Promise<Registrar> }> = [
  { commands: ['demo'], load: async () => (await import('./commands/demo.js')).registerDemoCommand },
  { commands: ['init', 'check', 'repair', 'key'], load: async () => (await import('./commands/repository.js')).registerRepositoryCommands },
  { commands: ['backup'], load: async () => (await import('./commands/backup.js')).registerBackupCommand },
  { commands: ['snapshots', 'ls', 'diff', 'dump'], load: async () => (await import('./commands/browse.js')).registerBrowseCommands },
  { commands: ['restore'], load: async () => (await import('./commands/restore.js')).registerRestoreCommand },
  { commands: ['copy'], load: async () => (await import('./commands/copy.js')).registerCopyCommand },
  { commands: ['release'], load: async () => (await import('./commands/release.js')).registerReleaseCommands },
  { commands: ['forget', 'prune', 'extend-retention', 'extend-locks'], load: async () => (await import('./commands/retention.js')).registerRetentionCommands },
  { commands: ['run'], load: async () => (await import('./commands/run.js')).registerRunCommand },
  { commands: ['binlog'], load: async () => (await import('./commands/binlog.js')).registerBinlogCommands },
  { commands: ['console'], load: async () => (await import('./commands/console.js')).registerConsoleCommand },
  { commands: ['drill'], load: async () => (await import('./commands/drill.js')).registerDrillCommand },
  { commands: ['up', 'update', 'rollback', 'history'], load: async () => (await import('./commands/stack.js')).registerStackCommands },
];

/**
 * The command groups a command line needs: the one holding its command, or all of them
 * (no command, `help`, an unknown command: the help and the error list them all).
 */
export function commandGroupsFor(argv: readonly string[]): typeof COMMAND_GROUPS {
  const command = commandInArgs(argv);
  const group = COMMAND_GROUPS.find((g) => command !== undefined && g.commands.includes(command));
  return group ? [group] : COMMAND_GROUPS;
}

const EXIT_CODES = `
Exit codes:
  0    success
  1    error (nothing half-done is left visible; check found damage; a file failed to restore)
  2    bad usage or configuration (the message names the flag, file, line or field)
  3    backup saved a snapshot, but some source files could not be read (they are listed)
  10   no repository at the given location
  12   wrong password
  130  interrupted

Environment:
  STACKVAULT_REPOSITORY      repository location (like --repo)
  STACKVAULT_PASSWORD        repository password
  STACKVAULT_PASSWORD_FILE   file holding the password (like --password-file)
  STACKVAULT_CONFIG          stackvault.yaml to use (like --config)
  AZURE_STORAGE_CONNECTION_STRING, or AZURE_STORAGE_ACCOUNT with AZURE_STORAGE_KEY / AZURE_STORAGE_SAS_TOKEN
                             Azure credentials for azure:// repositories
  AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_PROFILE, AWS_ENDPOINT_URL
                             S3 credentials and endpoint for s3:// repositories
  RCLONE_CONFIG, RCLONE_CONFIG_<REMOTE>_*   rclone's own configuration for rclone: repositories
  NODE_EXTRA_CA_CERTS        PEM file of certificate authorities trusted beside the usual ones
                             (S3 or Azure behind a private CA; read on the first TLS connection)

Examples:
  stackvault demo                                   # back up the example stack, restore it, compare
  stackvault init --repo /mnt/backup/acme --immutability 30d
  stackvault init --repo 's3://acme-backups/stack?region=eu-central-1' --immutability 30d
  stackvault backup                                 # sources from ./stackvault.yaml
  stackvault snapshots --json
  stackvault restore latest --target /tmp/restore
  stackvault check --read-data-subset 10%
  stackvault forget --keep-daily 7 --keep-weekly 4 --prune --yes`;

// Not commander's .version(): it would take every --version, also "release publish --version 2".
const VERSION_LINE = `\nstackvault ${VERSION} (stackvault --version prints only the version)`;

/** The program with the commands `argv` needs (see commandGroupsFor); every command without `argv`. */
export async function buildProgram(argv?: readonly string[]): Promise<Command> {
  const registrars = await Promise.all((argv ? commandGroupsFor(argv) : COMMAND_GROUPS).map((g) => g.load()));
  const program = new Command();
  let context: CliContext | undefined;
  program
    .name('stackvault')
    .description('Back up, restore and move docker-compose stacks: every deployment is a restore.')
    .option('-r, --repo <location>', 'repository location: a folder, s3://bucket/path, azure://container/path or rclone:remote:path')
    .option('-c, --config <file>', 'stackvault.yaml to use (default: ./stackvault.yaml if present)')
    .option('--password-file <file>', 'read the repository password from this file')
    .option('--json', 'machine-readable output (JSON, or JSON lines for progress)')
    .option('-q, --quiet', 'print nothing but errors')
    .addOption(new Option('--no-progress', 'no progress bar'))
    .addOption(new Option('--no-cache', 'keep no key files of network repositories on this machine (STACKVAULT_CACHE_DIR, default ~/.cache/stackvault)'))
    .addHelpText('after', EXIT_CODES + VERSION_LINE)
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride()
    .configureOutput({ outputError: (str, write) => write(str) });
  const ctx = () => (context ??= new CliContext(program.opts<GlobalOptions>()));
  program.hook('preAction', () => ctx().prepare());
  for (const register of registrars) register(program, ctx);
  const overrideExits = (cmd: Command): void => {
    for (const sub of cmd.commands) {
      sub.exitOverride();
      overrideExits(sub);
    }
  };
  overrideExits(program);
  return program;
}

/**
 * Output into a pipe whose reader went away (`stackvault ls | head`) ends the process
 * quietly, as SIGPIPE ends restic or git: exit 141 (128 + SIGPIPE), no stack trace.
 */
function exitQuietlyOnBrokenPipe(): void {
  for (const stream of [process.stdout, process.stderr]) {
    stream.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'EPIPE') process.exit(141);
      throw err;
    });
  }
}

export async function main(argv: string[]): Promise<number> {
  exitQuietlyOnBrokenPipe();
  if (argv.length === 3 && (argv[2] === '--version' || argv[2] === '-V')) {
    process.stdout.write(`${VERSION}\n`);
    return ExitCode.ok;
  }
  const program = await buildProgram(argv);
  try {
    await program.parseAsync(argv);
    return typeof process.exitCode === 'number' ? process.exitCode : ExitCode.ok;
  } catch (err) {
    if (err instanceof CommanderError) {
      // --help and "help" asked for it; a command group without its subcommand
      // ("stackvault", "stackvault key") printed help instead of doing anything: a usage error.
      if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version') return ExitCode.ok;
      if (err.code === 'commander.help') return err.exitCode === 0 ? ExitCode.ok : ExitCode.usage;
      return ExitCode.usage;
    }
    // A bar the failed command left running would draw over the message and keep the process alive with its timer.
    stopProgressBars();
    const json = process.argv.includes('--json');
    const exitCode = err instanceof StackvaultError ? err.exitCode : ExitCode.error;
    const message = err instanceof StackvaultError ? err.message : `unexpected error: ${errorMessage(err)}`;
    if (json) process.stdout.write(JSON.stringify({ message_type: 'error', code: exitCode, message }) + '\n');
    process.stderr.write(`stackvault: ${message}\n`);
    if (!(err instanceof StackvaultError) && process.env.STACKVAULT_DEBUG) console.error(err);
    return exitCode;
  }
}

