/** The global options that take a value: the word after them is not the command. */
const GLOBAL_OPTIONS_WITH_VALUES = new Set(['-r', '--repo', '-c', '--config', '--password-file']);

/** The command a command line names (its first word that is not a global option or its value), if any. */
export function commandInArgs(argv: readonly string[]): string | undefined {
  for (let i = 2; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--') return argv[i + 1];
    if (GLOBAL_OPTIONS_WITH_VALUES.has(arg)) i++;
    else if (!arg.startsWith('-')) return arg;
  }
  return undefined;
}
