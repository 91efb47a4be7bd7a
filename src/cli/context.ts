import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import type { LoadedConfig } from '../config/load.js';
import type { Backend } from '../repo/backends/backend.js';
import { openBackend } from '../repo/backends/open.js';
import { folderOfLocation } from '../repo/backends/location.js';
import { keepKeyFile, keyCacheFolder } from '../util/key-cache.js';
import { checkDirectIoSetting } from '../util/direct-io.js';
import { Repository } from '../repo/repository.js';
import { canPrompt, promptPassword } from './password-prompt.js';
import { secretFromEnv, secretFromFile } from '../util/secrets.js';
import { UsageError } from '../util/errors.js';

/** Options every command takes. */
export interface GlobalOptions {
  repo?: string;
  config?: string;
  passwordFile?: string;
  json?: boolean;
  quiet?: boolean;
  progress?: boolean;
  /** false with --no-cache: no key files kept on this machine */
  cache?: boolean;
}

/**
 * Where settings come from, most specific first: command-line flag, environment,
 * stackvault.yaml (./stackvault.yaml when present, or --config / STACKVAULT_CONFIG).
 */
export class CliContext {
  private loaded: LoadedConfig | null | undefined;
  private loadConfig: ((file: string) => LoadedConfig) | undefined;

  constructor(readonly options: GlobalOptions) {}

  /**
   * Loads the config reader only when there is a config to read: the schema and YAML
   * libraries are a third of a command's start-up time, which a backup of given paths
   * (or a no-change backup that takes a second) should not pay. Reading stays lazy, so a
   * broken stackvault.yaml only fails the commands that use it.
   */
  async prepare(): Promise<void> {
    checkDirectIoSetting();
    if (this.configFile() !== undefined) this.loadConfig = (await import('../config/load.js')).loadConfig;
  }

  private configFile(): string | undefined {
    return this.options.config || process.env.STACKVAULT_CONFIG || (existsSync('stackvault.yaml') ? 'stackvault.yaml' : undefined);
  }

  get json(): boolean {
    return this.options.json ?? false;
  }

  config(): LoadedConfig | null {
    if (this.loaded !== undefined) return this.loaded;
    const file = this.configFile();
    if (file === undefined) return (this.loaded = null);
    if (!this.loadConfig) throw new Error('CliContext.prepare() was not awaited before reading the config');
    return (this.loaded = this.loadConfig(file));
  }

  requireConfig(what: string): LoadedConfig {
    const c = this.config();
    if (!c) throw new UsageError(`${what} needs a stackvault.yaml (in this folder, or given with --config / STACKVAULT_CONFIG)`);
    return c;
  }

  backend(): Backend {
    if (this.options.repo) return openBackend(this.options.repo);
    if (process.env.STACKVAULT_REPOSITORY) return openBackend(process.env.STACKVAULT_REPOSITORY);
    const c = this.config();
    if (c) return openBackend(c.config.repository.url, { baseDir: c.baseDir });
    throw new UsageError('no repository given: use --repo, STACKVAULT_REPOSITORY, or repository.url in stackvault.yaml');
  }

  /** The password, or undefined when none is configured anywhere. */
  password(): string | undefined {
    const file = this.options.passwordFile ?? process.env.STACKVAULT_PASSWORD_FILE;
    if (file) return secretFromFile(file, this.options.passwordFile ? '--password-file' : 'STACKVAULT_PASSWORD_FILE');
    if (process.env.STACKVAULT_PASSWORD !== undefined) return process.env.STACKVAULT_PASSWORD;
    const c = this.config();
    const repo = c?.config.repository;
    if (repo?.password_file) return secretFromFile(resolve(c!.baseDir, repo.password_file), `${c!.file}: repository.password_file`);
    if (repo?.password_env) return secretFromEnv(repo.password_env, `${c!.file}: repository.password_env`);
    return undefined;
  }

  /**
   * Where the key file of a network repository named on the command line (or in
   * STACKVAULT_REPOSITORY) is kept, for the next command's prestart to derive its key
   * early (see prestart.ts). A folder repository needs none: prestart reads it there.
   */
  private keyCache(): string | undefined {
    const location = this.options.repo ?? (process.env.STACKVAULT_REPOSITORY || undefined);
    if (this.options.cache === false || location === undefined || folderOfLocation(location) !== undefined) return undefined;
    return keyCacheFolder(location, process.env);
  }

  /**
   * Keep the key file that opened (or created) a network repository in this machine's
   * cache, so that the next command derives its key while it loads (see keyCacheFolder):
   * the first backup after init too.
   */
  keepKey(repo: Repository): void {
    const cache = this.keyCache();
    if (cache && repo.openedWith) keepKeyFile(cache, repo.openedWith.keyFile, repo.openedWith.listed);
  }

  async openRepository(): Promise<Repository> {
    const backend = this.backend();
    const configured = this.password();
    // No password anywhere: someone at a terminal types it, as with restic and borg.
    const password = configured ?? (canPrompt() ? () => promptPassword(`enter password for repository ${backend.location}: `) : undefined);
    const repo = await Repository.open(backend, password);
    this.keepKey(repo);
    // Damage is skipped, not fatal: say so once per object, on stderr, so that --json output stays clean.
    repo.onDamage = (key, message) => process.stderr.write(`warning: ${key} is damaged and skipped: ${message} (run "stackvault check")\n`);
    return repo;
  }
}

