import { readFileSync } from 'node:fs';
import { UsageError } from './errors.js';

/**
 * Reading secrets, one way everywhere: a file whose first line is the secret (password
 * files written with echo end in a newline that is not part of it), or an environment
 * variable that must be set when it is named. `what` names where the secret was asked for
 * (a flag, a field of stackvault.yaml), so an error says what to fix.
 */
export function secretFromFile(path: string, what: string): string {
  return readSecretFile(path, what).split(/\r?\n/)[0]!;
}

/** A whole file (a TLS key or certificate), with the same errors as secretFromFile. */
export function readSecretFile(path: string, what: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new UsageError(`${what}: cannot read ${path}: ${code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : code === 'EISDIR' ? 'a folder, not a file' : String(err)}`);
  }
}

export function secretFromEnv(name: string, what: string): string {
  const value = process.env[name];
  if (value === undefined) throw new UsageError(`${what} names ${name}, but that variable is not set`);
  return value;
}
