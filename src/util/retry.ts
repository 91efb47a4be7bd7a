import { setTimeout as sleep } from 'node:timers/promises';

export interface RetryPolicy {
  /** tries in all, the first included */
  attempts: number;
  /** whether a failure may pass if tried again; others are thrown at once */
  retryable(err: unknown): boolean;
  /** the wait after the given number of failures */
  delayMs(failures: number): number;
  /** told of each failure that will be tried again (to take back what the try counted) */
  onRetry?(err: unknown, failures: number): void;
  /** a wait ends early when this aborts, with its reason */
  signal?: AbortSignal;
}

/**
 * Run work until it succeeds, it fails with what the policy does not retry, or the
 * attempts are used up: then its last error is thrown as it was.
 */
export async function retry<T>(work: (attempt: number) => Promise<T>, policy: RetryPolicy): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await work(attempt);
    } catch (err) {
      if (attempt >= policy.attempts || !policy.retryable(err)) throw err;
      policy.onRetry?.(err, attempt);
    }
    await sleep(policy.delayMs(attempt), undefined, { signal: policy.signal });
  }
}

/** Exponential backoff with full jitter (the wait doubles with each failure, up to maxMs). */
export function jitteredBackoff(baseMs: number, maxMs = Infinity): (failures: number) => number {
  return (failures) => Math.random() * Math.min(maxMs, baseMs * 2 ** (failures - 1));
}

/** A wait that grows by stepMs with each failure. */
export function linearBackoff(stepMs: number): (failures: number) => number {
  return (failures) => stepMs * failures;
}
