import { resolve } from 'node:path';
import type { LoadedConfig } from '../config/load.js';
import type { Repository } from '../repo/repository.js';
import { UsageError } from '../util/errors.js';
import type { Compose, ComposeProject } from './compose.js';

/** A stack as its stackvault.yaml describes it: its containers, its data, its repository. */
export interface StackContext {
  /** stackvault.yaml as it is now; `reload` reads it again after the stack repository changed */
  loaded: LoadedConfig;
  reload(): LoadedConfig;
  repo: Repository;
  compose: Compose;
  /** the vendor's release store, opened when a release is not in the stack's repository yet */
  openReleaseStore?: () => Promise<Repository>;
  log(message: string): void;
  signal?: AbortSignal;
}

export function stackDir(ctx: StackContext): string {
  return ctx.loaded.baseDir;
}

/** The application version stackvault.yaml asks for. */
export function wantedVersion(loaded: LoadedConfig): string {
  const version = loaded.config.application?.version;
  if (version === undefined) throw new UsageError(`${loaded.file}: application.version is missing: which version of the application does this stack run?`);
  return version;
}

export function applicationName(loaded: LoadedConfig): string {
  return loaded.config.application?.name ?? loaded.config.stack;
}

/** The compose project of the stack, with the image variables of a version when one is given. */
export function composeProject(loaded: LoadedConfig, version?: string): ComposeProject {
  const compose = loaded.config.compose;
  const images = loaded.config.application?.images;
  if (version !== undefined && images && !images[version]) {
    throw new UsageError(`${loaded.file}: application.images has no entry for version ${version} (it has ${Object.keys(images).join(', ')}): add the images that version runs`);
  }
  return {
    name: compose?.project ?? loaded.config.stack.replace(/[^a-z0-9_-]/g, '-'),
    files: (compose?.files ?? ['docker-compose.yml']).map((f) => resolve(loaded.baseDir, f)),
    directory: loaded.baseDir,
    env: (version !== undefined ? images?.[version] : undefined) ?? {},
  };
}

export const healthTimeoutMs = (loaded: LoadedConfig) => (loaded.config.compose?.health_timeout ?? 300) * 1000;

/**
 * The host name a stack's snapshots carry: host in stackvault.yaml, else the stack's name.
 * The machine's name would change with every runner container (its id) and every move to
 * a new host, and retention, which groups by host, would never see one lineage.
 */
export function stackHost(config: LoadedConfig['config']): string {
  return config.host ?? config.stack;
}
