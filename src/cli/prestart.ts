import { prestartRcloneHelper } from '../repo/backends/rclone-helper.js';

/**
 * The repository a command line names, found without loading the parser: --repo/-r in
 * any of its spellings, else STACKVAULT_REPOSITORY. A location from stackvault.yaml is
 * not looked for (reading it needs the config's modules).
 */
export function repositoryInArgs(argv: readonly string[], env: NodeJS.ProcessEnv): string | undefined {
  for (let i = 2; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--') break;
    if ((arg === '--repo' || arg === '-r') && i + 1 < argv.length) return argv[i + 1];
    if (arg.startsWith('--repo=')) return arg.slice('--repo='.length);
  }
  return env.STACKVAULT_REPOSITORY || undefined;
}

/**
 * Start what the command will wait for before it is parsed: an rclone repository's
 * helper. A guess that turns out unneeded (a --help) costs a helper stopped at exit.
 */
export function prestartHelpers(argv: readonly string[], env: NodeJS.ProcessEnv): void {
  const location = repositoryInArgs(argv, env);
  if (location?.startsWith('rclone:')) prestartRcloneHelper(env.STACKVAULT_RCLONE ?? 'rclone', env, location);
}
