import { execFile } from 'node:child_process';
import { basename, dirname } from 'node:path';
import { UsageError } from '../util/errors.js';

/** One commit of the stack repository: an incarnation of the stack, and what it changed. */
export interface Incarnation {
  commit: string;
  date: string;
  author: string;
  subject: string;
  /** files of the stack folder the commit changed, with git's status letter (A, M, D, R...) */
  files: Array<{ status: string; path: string }>;
  /** application.version in stackvault.yaml at this commit */
  version: string | null;
  /** the version at the incarnation before, when it differs */
  versionChangedFrom?: string | null;
}

function git(dir: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile('git', ['-C', dir, ...args], { maxBuffer: 64 * 1024 * 1024, timeout: 60_000 }, (err, stdout, stderr) => {
      if (err) reject(new Error((err as NodeJS.ErrnoException).code === 'ENOENT' ? 'git is not installed' : stderr.trim() || err.message));
      else resolve(stdout);
    });
  });
}

/**
 * The incarnations of a stack, newest first: the commits of its stack repository that
 * touch the folder holding stackvault.yaml, each with the files it changed and the
 * application version it configures.
 */
export async function stackHistory(configFile: string, options: { limit?: number } = {}): Promise<Incarnation[]> {
  const dir = dirname(configFile);
  try {
    await git(dir, ['rev-parse', '--show-toplevel']);
  } catch (err) {
    throw new UsageError(`${dir} is not in a git repository (${(err as Error).message}): a stack repository is a git repository holding stackvault.yaml; "git init" and commit it`);
  }
  // "./name" is relative to the folder git runs in, whatever links lead there.
  const configPath = `./${basename(configFile)}`;
  const log = await git(dir, ['log', `--max-count=${options.limit ?? 50}`, '--format=%x1e%H%x1f%aI%x1f%an <%ae>%x1f%s', '--name-status', '--', '.']).catch((err: Error) => {
    if (/does not have any commits/.test(err.message)) return '';
    throw err;
  });
  const incarnations: Incarnation[] = [];
  for (const record of log.split('\x1e').slice(1)) {
    const [header, ...rest] = record.split('\n');
    const [commit, date, author, subject] = header!.split('\x1f') as [string, string, string, string];
    const files = rest
      .filter((l) => l.trim())
      .map((l) => {
        const [status, ...paths] = l.split('\t');
        return { status: status!.charAt(0), path: paths[paths.length - 1]! };
      });
    incarnations.push({ commit, date, author, subject, files, version: await versionAt(dir, commit, configPath) });
  }
  for (let i = 0; i < incarnations.length; i++) {
    const older = incarnations[i + 1];
    const before = older ? older.version : await versionAt(dir, `${incarnations[i]!.commit}^`, configPath).catch(() => null);
    if (before !== incarnations[i]!.version) incarnations[i]!.versionChangedFrom = before;
  }
  return incarnations;
}

async function versionAt(dir: string, commit: string, configPath: string): Promise<string | null> {
  let text: string;
  try {
    text = await git(dir, ['show', `${commit}:${configPath}`]);
  } catch {
    return null;
  }
  // Loaded here: the backup that asks for HEAD should not pay for the YAML parser.
  const { parse } = await import('yaml');
  try {
    const version = (parse(text) as { application?: { version?: unknown } } | null)?.application?.version;
    return version === undefined || version === null ? null : String(version);
  } catch {
    return null;
  }
}

/** The commit the stack folder's repository is at: the incarnation being deployed. */
export async function headCommit(dir: string): Promise<string> {
  try {
    return (await git(dir, ['rev-parse', 'HEAD'])).trim();
  } catch (err) {
    throw new UsageError(`${dir} is not a committed stack repository (${(err as Error).message}): "git init", add stackvault.yaml and the compose files, and commit`);
  }
}

/** A commit (full hash) named by a hash, a prefix, a tag or a branch of the stack repository. */
export async function resolveCommit(dir: string, ref: string): Promise<string | undefined> {
  return git(dir, ['rev-parse', '--verify', '--quiet', `${ref}^{commit}`]).then(
    (out) => out.trim(),
    () => undefined,
  );
}

/** Files of the stack folder that differ from the last commit (what `up` would deploy but no incarnation holds). */
export async function uncommittedChanges(dir: string): Promise<string[]> {
  const out = await git(dir, ['status', '--porcelain', '--untracked-files=no', '--', '.']);
  return out.split('\n').filter((l) => l.trim()).map((l) => l.slice(3));
}

/**
 * Commit the stack folder as it now is. Someone with no git identity of their own (a fresh
 * host, CI) still gets a commit, authored by stackvault.
 */
export async function commitStack(dir: string, message: string): Promise<string> {
  const identity = await git(dir, ['config', 'user.email']).then(
    () => [],
    () => ['-c', 'user.name=stackvault', '-c', 'user.email=stackvault@localhost'],
  );
  // Tracked files only: data folders and secrets next to the config never go into git.
  await git(dir, ['add', '--update', '--', '.']);
  const staged = await git(dir, ['diff', '--cached', '--name-only', '--', '.']);
  if (staged.trim()) await git(dir, [...identity, 'commit', '--quiet', '-m', message, '--', '.']);
  return headCommit(dir);
}

/** Put the stack folder's tracked files back as they were at an incarnation, as a new commit. */
export async function returnToIncarnation(dir: string, commit: string, message: string): Promise<string> {
  // Files added since go too: the folder becomes exactly what the incarnation held.
  const now = (await git(dir, ['ls-files', '--', '.'])).split('\n').filter(Boolean);
  const then = new Set((await git(dir, ['ls-tree', '-r', '--name-only', '--full-name', commit, '--', '.'])).split('\n').filter(Boolean));
  const prefix = (await git(dir, ['rev-parse', '--show-prefix'])).trim();
  const added = now.filter((f) => !then.has(prefix + f));
  if (added.length > 0) await git(dir, ['rm', '--quiet', '--', ...added]);
  await git(dir, ['checkout', commit, '--', '.']);
  return commitStack(dir, message);
}
