import { unwrapMasterKey, type KeyFile, type MasterKey } from './format/crypto.js';
import type { KeyFileBytes } from '../util/key-cache.js';

interface EarlyKey {
  password: string;
  keyFile: KeyFileBytes;
  master: Promise<MasterKey | null>;
}

/** Key derivations started before the repository was opened, by key file id. */
const started = new Map<string, EarlyKey>();

/** At most this many: a repository has one key file or a few, and each costs 32 MiB and a core for a fifth of a second. */
export const EARLY_KEYS_MOST = 2;
/** scrypt's cost parameter at most (2^15 is what init chooses): 2^20 is a GiB of memory. */
const MAX_N = 1 << 20;

/**
 * Start unwrapping the master key from key files read before the repository is opened
 * (kept in this machine's cache, or from a local repository's folder), with the password
 * the command will use: scrypt runs on libuv's pool while Node loads the rest of the
 * command. Repository.open takes a result only for a key file the repository lists and
 * the same password (takeEarlyKey); the others are never used.
 */
export function deriveKeysEarly(keyFiles: readonly KeyFileBytes[], password: string): void {
  for (const keyFile of keyFiles) {
    if (started.size >= EARLY_KEYS_MOST) return;
    if (started.has(keyFile.id)) continue;
    let parsed: KeyFile;
    try {
      parsed = JSON.parse(keyFile.bytes.toString('utf8')) as KeyFile;
    } catch {
      continue;
    }
    // A guess costs what its parameters say: one made with parameters stackvault would
    // never choose (a planted file asking for gigabytes) waits for the repository's word.
    if (!(parsed.N <= MAX_N && parsed.r <= 32 && parsed.p <= 16)) continue;
    const master = unwrapMasterKey(parsed, password).catch(() => null);
    started.set(keyFile.id, { password, keyFile, master });
  }
}

/** Whether a derivation was started and not yet taken: the key file it is for need not be read again. */
export function earlyKeysWaiting(): boolean {
  return started.size > 0;
}

/** The early derivation for this key file and password, once; undefined if none was started. */
export function takeEarlyKey(id: string, password: string): { keyFile: KeyFileBytes; master: Promise<MasterKey | null> } | undefined {
  const early = started.get(id);
  if (!early || early.password !== password) return undefined;
  started.delete(id);
  return { keyFile: early.keyFile, master: early.master };
}
