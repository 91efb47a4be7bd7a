import { Semaphore } from '../../util/concurrency.js';
import { StackvaultError, errorMessage } from '../../util/errors.js';
import { jitteredBackoff, retry } from '../../util/retry.js';
import type { Backend, BackendExtras, BackendWrapper, ByteRange, ExtraName, ObjectInfo } from './backend.js';
import { TransientError } from './transient.js';

export interface RetryOptions {
  /** attempts per operation, the first included */
  attempts: number;
  /** first wait; each further wait doubles, up to maxDelayMs, with full jitter */
  baseDelayMs: number;
  maxDelayMs: number;
  /** requests in flight at once, across all operations */
  concurrency: number;
}

export const DEFAULT_RETRY: RetryOptions = { attempts: 8, baseDelayMs: 200, maxDelayMs: 20_000, concurrency: 8 };

/**
 * A network backend made patient: each operation runs with bounded concurrency and is
 * retried with exponential backoff and full jitter while it fails with a TransientError.
 * Retrying a put is safe: keys are content hashes and puts never replace, so a put whose
 * first attempt landed comes back as created=false.
 */
export function withRetries(backend: Backend, options: Partial<RetryOptions> = {}): BackendWrapper {
  const o = { ...DEFAULT_RETRY, ...options };
  const slots = new Semaphore(o.concurrency);
  const policy = { attempts: o.attempts, retryable: (err: unknown) => err instanceof TransientError, delayMs: jitteredBackoff(o.baseDelayMs, o.maxDelayMs) };
  const attempt = async <T>(what: string, op: () => Promise<T>): Promise<T> => {
    try {
      // A slot is held while a request runs, not while waiting to try again.
      return await retry(async () => {
        const release = await slots.acquire();
        try {
          return await op();
        } finally {
          release();
        }
      }, policy);
    } catch (err) {
      if (err instanceof TransientError) throw new StackvaultError(`${what} on ${backend.location} failed ${o.attempts} times; last: ${errorMessage(err)}`, undefined, { cause: err });
      throw err;
    }
  };
  return {
    location: backend.location,
    unwrap: async () => backend,
    prepare: () => attempt('preparing the repository', () => backend.prepare()),
    put: (key: string, data: Uint8Array) => attempt(`storing ${key}`, () => backend.put(key, data)),
    get: (key: string, range?: ByteRange) => attempt(`reading ${key}`, () => backend.get(key, range)),
    stat: (key: string) => attempt(`looking up ${key}`, () => backend.stat(key)),
    list: (prefix: string) => listWithRetries(prefix, attempt, backend),
    delete: (key: string) => attempt(`deleting ${key}`, () => backend.delete(key)),
    close: () => backend.close(),
    wrapExtra: <N extends ExtraName>(name: N, extra: BackendExtras[N]): BackendExtras[N] => {
      // A local file's name, or a file written on this machine, is no request; every other extra is retried like the core.
      if (name === 'localFile' || name === 'createObjectFile') return extra;
      const call = extra as (...args: unknown[]) => Promise<unknown>;
      return ((...args: unknown[]) => attempt(describeExtra(name, args), () => call(...args))) as BackendExtras[N];
    },
  } satisfies BackendWrapper;
}

function describeExtra(name: ExtraName, args: unknown[]): string {
  switch (name) {
    case 'useImmutability':
      return 'checking immutability';
    case 'extendRetention':
      return `extending the lock of ${String(args[0])}`;
    case 'staleUploads':
      return 'listing stale uploads';
    case 'deleteStaleUpload':
      return `deleting ${String(args[0])}`;
    case 'downloadToFile':
      return `copying ${String(args[0])} to ${String(args[1])}`;
    default:
      return name;
  }
}

/** A listing is retried whole: it is gathered first, so a retry never yields an entry twice. */
async function* listWithRetries(prefix: string, attempt: <T>(what: string, op: () => Promise<T>) => Promise<T>, backend: Backend): AsyncIterable<ObjectInfo> {
  const all = await attempt(`listing ${prefix}`, async () => {
    const out: ObjectInfo[] = [];
    for await (const info of backend.list(prefix)) out.push(info);
    return out;
  });
  yield* all;
}
