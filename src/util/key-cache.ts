import { createHash } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const MAX_KEY_FILE_BYTES = 64 * 1024;

/** A key file's stored bytes, under its id (the SHA-256 of those bytes, as a repository names every object). */
export interface KeyFileBytes {
  id: string;
  bytes: Buffer;
}

/**
 * This machine's cache, as restic keeps one: STACKVAULT_CACHE_DIR, else
 * $XDG_CACHE_HOME/stackvault or ~/.cache/stackvault. None without a home.
 */
export function cacheDir(env: NodeJS.ProcessEnv): string | undefined {
  if (env.STACKVAULT_CACHE_DIR) return env.STACKVAULT_CACHE_DIR;
  const base = env.XDG_CACHE_HOME || (env.HOME ? join(env.HOME, '.cache') : undefined);
  return base ? join(base, 'stackvault') : undefined;
}

/**
 * Where the key files of one network repository are kept: a folder per location as the
 * command line gives it. Kept so that the next command starts deriving its key (scrypt,
 * a fifth of a second) while it loads, not after the listing and the read of a key file
 * (two round trips). A kept key file opens nothing by itself: Repository.open uses one
 * only when the repository lists its id, and the id is the hash of its bytes, so a key
 * removed from the repository, or a repository made anew at the same location, is never
 * opened with a key kept before. The bytes are those the repository stores, sealed by the
 * password; the folder is the user's alone (0700), as restic's cache is. The command
 * keeps the key file that opened its repository (CliContext), not the repository layer,
 * which writes no files of its own.
 */
export function keyCacheFolder(location: string, env: NodeJS.ProcessEnv): string | undefined {
  const dir = cacheDir(env);
  if (!dir) return undefined;
  return join(dir, 'keys', createHash('sha256').update(location).digest('hex').slice(0, 32));
}

/**
 * The key files in a folder (kept ones, or a folder repository's keys/), each checked
 * against its name; an unreadable folder holds none. Read at once, not in turns of the
 * event loop: they are a few hundred bytes, and the derivation that waits for them
 * should start before the command's modules load.
 */
export function keyFilesIn(folder: string, most: number): KeyFileBytes[] {
  let names: string[];
  try {
    names = readdirSync(folder);
  } catch {
    return [];
  }
  const out: KeyFileBytes[] = [];
  for (const id of names.filter((name) => /^[0-9a-f]{64}$/.test(name)).sort()) {
    if (out.length >= most) break;
    let bytes: Buffer;
    try {
      // A key file is a few hundred bytes: anything much larger is not read whole.
      if (statSync(join(folder, id)).size > MAX_KEY_FILE_BYTES) continue;
      bytes = readFileSync(join(folder, id));
    } catch {
      continue;
    }
    if (createHash('sha256').update(bytes).digest('hex') === id) out.push({ id, bytes });
  }
  return out;
}

/**
 * Keep the key file that opened the repository and forget kept ones it no longer lists
 * (removed keys). Best effort: a cache that cannot be written (a read-only home) only
 * means the next command derives its key later.
 */
export function keepKeyFile(folder: string, kept: KeyFileBytes, listedIds: ReadonlySet<string>): void {
  try {
    mkdirSync(folder, { recursive: true, mode: 0o700 });
    const names = readdirSync(folder);
    for (const name of names) {
      if (name !== kept.id && !listedIds.has(name)) rmSync(join(folder, name), { force: true });
    }
    if (names.includes(kept.id)) return;
    // Whole or not at all: a reader that finds a half-written file drops it by its hash anyway.
    const tmp = join(folder, `.${kept.id}.${process.pid}.tmp`);
    writeFileSync(tmp, kept.bytes, { mode: 0o600 });
    renameSync(tmp, join(folder, kept.id));
  } catch {
    // The cache is an optimization; the repository is opened either way.
  }
}
