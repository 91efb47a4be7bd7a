import { resolve } from 'node:path';
import { UsageError } from '../../util/errors.js';
import type { Backend } from './backend.js';
import { LocalBackend } from './local.js';

/**
 * A backend from a repository location: a plain path or "local:/path" for a folder
 * (local disk or a mounted SMB/NFS share). Remote schemes come with their backends.
 */
export function openBackend(location: string, baseDir = process.cwd()): Backend {
  if (!location) throw new UsageError('no repository given (use --repo, STACKVAULT_REPOSITORY or repository.url in stackvault.yaml)');
  const scheme = /^([a-z][a-z0-9+]*):(?!\\)/i.exec(location)?.[1];
  if (scheme && scheme !== 'local' && !/^[a-z]$/i.test(scheme)) {
    throw new UsageError(`repository ${location}: unknown backend "${scheme}" (supported: a folder path or local:/path)`);
  }
  const path = scheme === 'local' ? location.slice('local:'.length) : location;
  return new LocalBackend(resolve(baseDir, path));
}
