import { Semaphore } from '../../util/concurrency.js';
import { StackvaultError, errorMessage } from '../../util/errors.js';
import type { Backend, ByteRange, ObjectInfo } from './backend.js';
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
export function withRetries(backend: Backend, options: Partial<RetryOptions> = {}): Backend {
  const o = { ...DEFAULT_RETRY, ...options };
  const slots = new Semaphore(o.concurrency);
  const attempt = async <T>(what: string, op: () => Promise<T>): Promise<T> => {
    for (let n = 1; ; n++) {
      const release = await slots.acquire();
      try {
        return await op();
      } catch (err) {
        if (!(err instanceof TransientError)) throw err;
        if (n >= o.attempts) throw new StackvaultError(`${what} on ${backend.location} failed ${n} times; last: ${errorMessage(err)}`, undefined, { cause: err });
      } finally {
        release();
      }
      const ceiling = Math.min(o.maxDelayMs, o.baseDelayMs * 2 ** (n - 1));
      await new Promise((resolve) => setTimeout(resolve, Math.random() * ceiling));
    }
  };
  const wrapped: Backend = {
    location: backend.location,
    prepare: () => attempt('preparing the repository', () => backend.prepare()),
    put: (key: string, data: Uint8Array) => attempt(`storing ${key}`, () => backend.put(key, data)),
    get: (key: string, range?: ByteRange) => attempt(`reading ${key}`, () => backend.get(key, range)),
    stat: (key: string) => attempt(`looking up ${key}`, () => backend.stat(key)),
    list: (prefix: string) => listWithRetries(prefix, attempt, backend),
    delete: (key: string) => attempt(`deleting ${key}`, () => backend.delete(key)),
  };
  if (backend.useImmutability) wrapped.useImmutability = (days) => attempt('checking immutability', () => backend.useImmutability!(days));
  if (backend.extendRetention) wrapped.extendRetention = (key, until) => attempt(`extending the lock of ${key}`, () => backend.extendRetention!(key, until));
  if (backend.close) wrapped.close = () => backend.close!();
  if (backend.staleUploads) wrapped.staleUploads = (age, now) => attempt('listing stale uploads', () => backend.staleUploads!(age, now));
  if (backend.deleteStaleUpload) wrapped.deleteStaleUpload = (key) => attempt(`deleting ${key}`, () => backend.deleteStaleUpload!(key));
  return wrapped;
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
