import { resolve } from 'node:path';
import { UsageError } from '../../util/errors.js';
import type { AzureOptions } from './azure.js';
import type { Backend } from './backend.js';
import { lazyBackend } from './lazy.js';
import { redact } from './transient.js';
import { LocalBackend } from './local.js';
import { folderOfLocation, schemeOf } from './location.js';
import type { RcloneOptions } from './rclone.js';
import { withRetries, type RetryOptions } from './retry.js';
import type { S3Options } from './s3.js';

export interface OpenOptions {
  /** relative folder paths are taken from here */
  baseDir?: string;
  /** per-request time limit of network backends */
  timeoutMs?: number;
  retry?: Partial<RetryOptions>;
  /** environment to read credentials from */
  env?: NodeJS.ProcessEnv;
}

export const DEFAULT_TIMEOUT_MS = 120_000;

/**
 * rclone retries every request itself (--low-level-retries, 10 by default) before it
 * answers, so ours come on top of its own: with eight, a WebDAV server that refused every
 * connection took 2 min 40 s to be reported (each answer took rclone 4.6 s), with three
 * 42 s; restic said so after 4.7 s.
 */
const RCLONE_RETRY = { attempts: 3 };

const USAGE = 'a folder path, local:/path, s3://bucket/path, azure://container/path or rclone:remote:path';

/**
 * A backend from a repository location:
 * - a folder (local disk or a mounted SMB/NFS share): `/mnt/backup/acme` or `local:/mnt/backup/acme`
 * - `s3://bucket/path?endpoint=https://...&region=eu-central-1&path_style=true&lock_mode=COMPLIANCE`
 * - `azure://container/path?lock_mode=locked` (account from AZURE_STORAGE_* variables)
 * - `rclone:remote:path` (any remote of rclone's config)
 * Network backends come wrapped in retries with backoff. Secrets never go into the location.
 */
export function openBackend(location: string, options: OpenOptions = {}): Backend {
  const early = prestarted;
  if (early && early.location === location && early.env === (options.env ?? process.env) && options.baseDir === undefined && options.timeoutMs === undefined && options.retry === undefined) {
    prestarted = undefined;
    return early.backend;
  }
  if (!location) throw new UsageError('no repository given (use --repo, STACKVAULT_REPOSITORY or repository.url in stackvault.yaml)');
  const env = options.env ?? process.env;
  const timeoutMs = options.timeoutMs ?? (Number(env.STACKVAULT_BACKEND_TIMEOUT_MS) || DEFAULT_TIMEOUT_MS);
  const folder = folderOfLocation(location);
  if (folder !== undefined) return new LocalBackend(resolve(options.baseDir ?? process.cwd(), folder));
  const scheme = schemeOf(location);
  if (scheme === 'rclone') {
    const rclone: RcloneOptions = { remote: location.slice('rclone:'.length), binary: env.STACKVAULT_RCLONE ?? 'rclone', timeoutMs, env };
    if (!/^[^:/]*:/.test(rclone.remote)) throw new UsageError(`repository ${location}: expected rclone:REMOTE:PATH, e.g. rclone:backup:acme`);
    const load = async () => new (await import('./rclone.js')).RcloneBackend(rclone);
    return withRetries(lazyBackend(redact(location), load), { ...RCLONE_RETRY, ...options.retry });
  }
  if (scheme === 's3' || scheme === 'azure') {
    const url = parseUrl(location);
    const params = url.searchParams;
    const known = scheme === 's3' ? ['endpoint', 'region', 'path_style', 'lock_mode'] : ['lock_mode'];
    for (const name of params.keys()) {
      if (!known.includes(name)) throw new UsageError(`repository ${url.origin}${url.pathname}: unknown option "${name}" (known: ${known.join(', ')})`);
    }
    const container = url.hostname;
    const prefix = decodeURIComponent(url.pathname).replace(/^\/+|\/+$/g, '');
    if (!container) throw new UsageError(`repository ${location}: no ${scheme === 's3' ? 'bucket' : 'container'} named (${scheme}://NAME/path)`);
    if (scheme === 's3') {
      const lockMode = (params.get('lock_mode') ?? 'GOVERNANCE').toUpperCase();
      if (lockMode !== 'GOVERNANCE' && lockMode !== 'COMPLIANCE') throw new UsageError(`repository ${location}: lock_mode is GOVERNANCE or COMPLIANCE, not "${lockMode}"`);
      const endpoint = params.get('endpoint') ?? env.AWS_ENDPOINT_URL_S3 ?? env.AWS_ENDPOINT_URL;
      const s3: S3Options = {
        bucket: container,
        prefix,
        endpoint,
        region: params.get('region') ?? env.AWS_REGION ?? env.AWS_DEFAULT_REGION ?? 'us-east-1',
        pathStyle: (params.get('path_style') ?? (endpoint ? 'true' : 'false')) === 'true',
        lockMode,
        timeoutMs,
        credentials:
          env.AWS_ACCESS_KEY_ID && env.AWS_SECRET_ACCESS_KEY
            ? { accessKeyId: env.AWS_ACCESS_KEY_ID, secretAccessKey: env.AWS_SECRET_ACCESS_KEY, sessionToken: env.AWS_SESSION_TOKEN }
            : undefined,
      };
      const load = async () => new (await import('./s3.js')).S3Backend(s3);
      return withRetries(lazyBackend(`s3://${container}/${prefix}`.replace(/\/$/, ''), load), options.retry);
    }
    const lockMode = (params.get('lock_mode') ?? 'unlocked').toLowerCase();
    if (lockMode !== 'unlocked' && lockMode !== 'locked') throw new UsageError(`repository ${location}: lock_mode is unlocked or locked, not "${lockMode}"`);
    const azure: AzureOptions = {
      container,
      prefix,
      connectionString: env.AZURE_STORAGE_CONNECTION_STRING,
      account: env.AZURE_STORAGE_ACCOUNT,
      accountKey: env.AZURE_STORAGE_KEY,
      sasToken: env.AZURE_STORAGE_SAS_TOKEN,
      policyMode: lockMode === 'locked' ? 'Locked' : 'Unlocked',
      timeoutMs,
    };
    const load = async () => new (await import('./azure.js')).AzureBackend(azure);
    return withRetries(lazyBackend(`azure://${container}/${prefix}`.replace(/\/$/, ''), load), options.retry);
  }
  throw new UsageError(`repository ${location}: unknown backend "${scheme}" (supported: ${USAGE})`);
}

/** A backend made before the command loaded, for its first openBackend of the same location. */
let prestarted: { location: string; env: NodeJS.ProcessEnv; backend: Backend } | undefined;

/**
 * The backend of `location`, made before the command has loaded so that reads can start
 * on it (cli/prestart.ts). The command's first openBackend of the same location and
 * environment, with no other options, gets this one.
 */
export function prestartBackend(location: string, env: NodeJS.ProcessEnv): Backend {
  const backend = openBackend(location, { env });
  prestarted = { location, env, backend };
  return backend;
}

function parseUrl(location: string): URL {
  try {
    return new URL(location);
  } catch {
    throw new UsageError(`repository ${location}: not a valid location (expected ${USAGE})`);
  }
}
