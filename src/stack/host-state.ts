import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { StackvaultError } from '../util/errors.js';

/**
 * What this host runs, kept next to stackvault.yaml (in .stackvault/, which the stack
 * repository ignores): the data's version and the incarnation deployed. No file means an
 * empty host, where `up` begins with a restore.
 */
export interface HostState {
  /** the application version the data on this host is at */
  version: string;
  /** the commit of the stack repository that runs */
  incarnation: string;
  time: string;
  /** migrations applied here, for stacks without a database to keep that history in */
  migrations?: string[];
}

export const hostStateFile = (stackDir: string) => join(stackDir, '.stackvault', 'state.json');

export async function readHostState(stackDir: string): Promise<HostState | undefined> {
  const file = hostStateFile(stackDir);
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new StackvaultError(`cannot read ${file}: ${(err as Error).message}`);
  }
  try {
    const state = JSON.parse(text) as HostState;
    if (typeof state.version !== 'string' || typeof state.incarnation !== 'string') throw new Error('version or incarnation missing');
    return state;
  } catch (err) {
    throw new StackvaultError(`${file} is damaged (${(err as Error).message}); if this host's stack is gone, remove it and run "stackvault up" to restore`);
  }
}

/** Written to a temporary name and renamed, so a crash leaves the old state or the new, never half of one. */
export async function writeHostState(stackDir: string, state: HostState): Promise<void> {
  const file = hostStateFile(stackDir);
  await mkdir(dirname(file), { recursive: true });
  await writeFile(`${file}.tmp`, JSON.stringify(state, null, 2) + '\n');
  await rename(`${file}.tmp`, file);
}
