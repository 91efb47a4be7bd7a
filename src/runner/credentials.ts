import { resolve } from 'node:path';
import type { LoadedConfig } from '../config/load.js';
import { UsageError } from '../util/errors.js';
import { secretFromFile } from '../util/secrets.js';
import { checkConsolePasswordHash } from './console/password.js';

// What logs in to the runner's endpoints and console, for "stackvault run" and "stackvault console" alike.

/**
 * The bearer token of /metrics and /api/status: STACKVAULT_RUNNER_TOKEN, or the first line
 * of STACKVAULT_RUNNER_TOKEN_FILE or runner.token_file.
 */
export function runnerToken(loaded?: LoadedConfig): string | undefined {
  if (process.env.STACKVAULT_RUNNER_TOKEN) return process.env.STACKVAULT_RUNNER_TOKEN;
  const file = process.env.STACKVAULT_RUNNER_TOKEN_FILE ?? loaded?.config.runner?.token_file;
  if (!file) return undefined;
  const path = resolve(loaded?.baseDir ?? process.cwd(), file);
  const token = secretFromFile(path, "the runner's token file");
  if (!token) throw new UsageError(`the runner's token file ${path} is empty`);
  return token;
}

/** The console password's hash: runner.console_password_hash, or the first line of runner.console_password_hash_file. */
export function consolePassword(loaded: LoadedConfig): string | undefined {
  const runner = loaded.config.runner;
  if (runner?.console_password_hash !== undefined) return checkConsolePasswordHash(runner.console_password_hash, `${loaded.file}: runner.console_password_hash`);
  if (runner?.console_password_hash_file === undefined) return undefined;
  const path = resolve(loaded.baseDir, runner.console_password_hash_file);
  return checkConsolePasswordHash(secretFromFile(path, "the console's password file"), path);
}
