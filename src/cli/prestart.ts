import { opendirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { prestartRcloneHelper } from '../repo/backends/rclone-helper.js';
import { folderOfLocation } from '../repo/backends/location.js';
import { EARLY_KEYS_MOST, deriveKeysEarly } from '../repo/early-keys.js';
import { ListingThread } from '../sources/files/listing-thread.js';
import { commandInArgs } from './command-in-args.js';
import { keyCacheFolder, keyFilesIn } from '../util/key-cache.js';

/** The value of a global option in any of its spellings (--opt value, --opt=value, or a short -x value). */
function optionInArgs(argv: readonly string[], long: string, short?: string): string | undefined {
  for (let i = 2; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--') break;
    if ((arg === long || (short !== undefined && arg === short)) && i + 1 < argv.length) return argv[i + 1];
    if (arg.startsWith(`${long}=`)) return arg.slice(long.length + 1);
  }
  return undefined;
}

/**
 * The repository a command line names, found without loading the parser: --repo/-r in
 * any of its spellings, else STACKVAULT_REPOSITORY. A location from stackvault.yaml is
 * not looked for (reading it needs the config's modules).
 */
export function repositoryInArgs(argv: readonly string[], env: NodeJS.ProcessEnv): string | undefined {
  return optionInArgs(argv, '--repo', '-r') ?? (env.STACKVAULT_REPOSITORY || undefined);
}

/**
 * The password the command will use, when the command line or the environment gives it
 * (the same order as CliContext.password); a wrong guess only means no early key.
 */
function passwordInArgs(argv: readonly string[], env: NodeJS.ProcessEnv): string | undefined {
  const file = optionInArgs(argv, '--password-file') ?? env.STACKVAULT_PASSWORD_FILE;
  if (file) {
    try {
      return readFileSync(file, 'utf8').split(/\r?\n/)[0];
    } catch {
      return undefined;
    }
  }
  return env.STACKVAULT_PASSWORD;
}

/**
 * Start what the command will wait for before it is parsed: an rclone repository's
 * helper, a network repository's first reads, and the derivation of the repository's key
 * from the key files it is known to hold (a folder repository's own, a network
 * repository's kept in this machine's cache), which takes scrypt a fifth of a second on
 * another core while Node loads the rest. A guess that turns out unneeded (a --help,
 * another password) costs a helper stopped at exit and a derivation nobody takes.
 */
export async function prestartHelpers(argv: readonly string[], env: NodeJS.ProcessEnv): Promise<void> {
  const command = commandInArgs(argv);
  const location = repositoryInArgs(argv, env);
  const folder = location === undefined ? undefined : folderOfLocation(location);
  if (command === 'backup') ListingThread.prestart({ beginAtOnce: folder !== undefined && holdsSnapshots(folder) });
  if (location === undefined) return;
  const rclone = location.startsWith('rclone:');
  if (rclone) prestartRcloneHelper(env.STACKVAULT_RCLONE ?? 'rclone', env, location);
  const password = passwordInArgs(argv, env);
  if (password !== undefined) {
    const cache = argv.includes('--no-cache') ? undefined : keyCacheFolder(location, env);
    const keyFiles = folder !== undefined ? keyFilesIn(join(resolve(folder), 'keys'), EARLY_KEYS_MOST) : cache ? keyFilesIn(cache, EARLY_KEYS_MOST) : [];
    deriveKeysEarly(keyFiles, password);
  }
  if (folder === undefined && command !== undefined && OPENING_COMMANDS.has(command) && !argv.includes('--help') && !argv.includes('-h')) await startReadsOf(location, env);
}

/**
 * Whether a folder repository holds a snapshot: a backup into it most likely has a
 * previous one to compare with, so its listing thread lists ahead from the start, before
 * the key that reads the snapshots is derived. Should none fit, the backup stops the
 * thread, having spent a little of its listing.
 */
function holdsSnapshots(folder: string): boolean {
  try {
    // One entry read, not the whole folder: a repository of years holds thousands.
    const dir = opendirSync(join(resolve(folder), 'snapshots'));
    try {
      return dir.readSync() !== null;
    } finally {
      dir.closeSync();
    }
  } catch {
    return false;
  }
}

/**
 * Commands that open the repository they are given at once and list its snapshots: from a
 * network repository (rclone, S3, Azure), its config, key files, snapshots and index are
 * read while the command loads, each a round trip that would otherwise follow the load
 * (an S3 restore behind 20 ms of latency per request: 1.53-1.69 s against 1.59-1.78 s,
 * medians 1.56 and 1.63). Not for others, which would wait at exit for reads nobody takes.
 */
const OPENING_COMMANDS = new Set(['backup', 'restore', 'check', 'snapshots', 'ls', 'diff', 'dump', 'copy', 'forget', 'prune']);

let untaken: (() => boolean) | undefined;

async function startReadsOf(location: string, env: NodeJS.ProcessEnv): Promise<void> {
  const [{ prestartBackend }, { startReadsEarly, earlyReadsUntaken }] = await Promise.all([import('../repo/backends/open.js'), import('../repo/early-reads.js')]);
  try {
    startReadsEarly(prestartBackend(location, env));
    untaken = earlyReadsUntaken;
  } catch {
    /* a location the command refuses, with its own error */
  }
}

/**
 * Whether the command ended without opening the repository whose reads were started (a
 * usage error, say): those reads would keep the process until answered, and through an
 * unreachable remote rclone's own retries take minutes.
 */
export function earlyReadsLeftOver(): boolean {
  return untaken?.() ?? false;
}
