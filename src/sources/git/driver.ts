import { execFile, spawn } from 'node:child_process';
import { once } from 'node:events';
import { createWriteStream } from 'node:fs';
import { mkdir, mkdtemp, readdir, rm, rmdir } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { StackvaultError, UsageError, errorMessage } from '../../util/errors.js';
import type { SourceDriver } from '../driver.js';
import { readWhole } from '../dump-sink.js';

/** The stack's own git repository (stackvault.yaml, compose files, .env and their history). */
export interface GitSource {
  kind: 'git';
  name: string;
  /** a folder inside the repository: the stack's folder */
  path: string;
}

/** The name the stack repository's bundle has in every stack snapshot. */
export const STACK_REPOSITORY_SOURCE = 'stack-repository';

const BUNDLE = 'repository.bundle';
const HEAD = 'head';
const STACK_FOLDER = 'stack-folder';

function git(cwd: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile('git', args, { cwd, maxBuffer: 16 * 1024 * 1024, timeout: 120_000 }, (err, stdout, stderr) => {
      if (err) reject(new StackvaultError(`git ${args[0]} in ${cwd}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'git is not installed' : stderr.trim() || err.message}`));
      else resolve(stdout.trim());
    });
  });
}

/** Whether a folder is in a git repository with at least one commit. */
export async function isCommittedRepository(folder: string): Promise<boolean> {
  return git(folder, ['rev-parse', '--verify', '--quiet', 'HEAD']).then(
    () => true,
    () => false,
  );
}

/** `git bundle create - --all`, its output streamed; the bundle is every branch and tag with its whole history. */
async function* bundle(toplevel: string): AsyncIterable<Buffer> {
  const child = spawn('git', ['bundle', 'create', '--quiet', '-', '--all'], { cwd: toplevel, stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = once(child, 'close') as Promise<[number | null]>;
  let whole = false;
  try {
    yield* child.stdout as AsyncIterable<Buffer>;
    whole = true;
  } finally {
    // Only a reader that stopped early stops git: after the last byte it may still be exiting.
    if (!whole) child.kill();
  }
  const [code] = await exited;
  if (code !== 0) throw new StackvaultError(`git bundle in ${toplevel} failed (exit ${code}): ${stderr.trim()}`);
}

/**
 * The stack repository as a source: its git bundle goes into every stack snapshot, so that
 * a snapshot alone can bring back the configuration (and its history) with the data. It is
 * restored by cloning into an empty folder.
 */
export const gitDriver: SourceDriver<GitSource> = {
  kind: 'git',
  configTypes: ['git'],
  fromConfig: (entry: { name: string; path: string }, context) => ({ kind: 'git', name: entry.name, path: resolve(context.baseDir, entry.path) }),

  async backup(spec, sink, options) {
    const toplevel = await git(spec.path, ['rev-parse', '--show-toplevel']);
    const [head, prefix] = await Promise.all([git(spec.path, ['rev-parse', 'HEAD']), git(spec.path, ['rev-parse', '--show-prefix'])]);
    options.progress?.({ bytesDone: 0, bytesEstimate: 0, current: BUNDLE });
    const { size } = await sink.writeFile(BUNDLE, bundle(toplevel));
    await sink.writeFile(HEAD, Buffer.from(`${head}\n`));
    await sink.writeFile(STACK_FOLDER, Buffer.from(`${prefix}\n`));
    options.progress?.({ bytesDone: size, bytesEstimate: size, current: BUNDLE });
    return { path: `git:${toplevel}@${head.slice(0, 12)}` };
  },

  /** A clone of the bundle into spec.path, which must be absent or empty; HEAD is checked against the recorded one. */
  async restore(reader, spec) {
    let entries: string[] | undefined;
    try {
      entries = await readdir(spec.path);
    } catch (err) {
      // Only a place that does not exist yet is free: a file there is someone's, never removed.
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw new UsageError(`${spec.path}: ${errorMessage(err)}: the stack repository is cloned into a new or empty folder`);
    }
    if (entries && entries.length > 0) throw new UsageError(`${spec.path} is not empty: the stack repository is cloned into a new or empty folder`);
    await mkdir(dirname(spec.path), { recursive: true });
    const scratch = await mkdtemp(join(dirname(spec.path), '.stackvault-bundle-'));
    try {
      const file = join(scratch, BUNDLE);
      await pipeline(reader.read(BUNDLE), createWriteStream(file));
      if (entries) await rmdir(spec.path);
      await git(dirname(spec.path), ['clone', '--quiet', file, spec.path]);
      // The bundle was a temporary file: the clone keeps no remote pointing at it.
      await git(spec.path, ['remote', 'remove', 'origin']);
    } finally {
      await rm(scratch, { recursive: true, force: true });
    }
    const recorded = (await readWhole(reader, HEAD)).toString().trim();
    const head = await git(spec.path, ['rev-parse', 'HEAD']);
    if (head !== recorded) throw new StackvaultError(`the restored stack repository is at ${head}, the snapshot recorded ${recorded}`);
  },

  /** Cloned into the scratch folder and checked: every object of the bundle is there, HEAD is the recorded commit. */
  async drill(reader, source, _record, scratch) {
    const folder = join(scratch.folder, `.drill-${source}`);
    try {
      await gitDriver.restore!(reader, { kind: 'git', name: source, path: folder }, { force: true });
      await git(folder, ['fsck', '--no-progress', '--no-dangling']);
      const commits = Number(await git(folder, ['rev-list', '--all', '--count']));
      return { source, commits, head: await git(folder, ['rev-parse', 'HEAD']), verified: true };
    } finally {
      await rm(folder, { recursive: true, force: true });
    }
  },
};
