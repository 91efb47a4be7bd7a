/** Run async work with at most `limit` tasks in flight; rejects on the first failure once in-flight work settles. */
export class TaskLimiter {
  private running = 0;
  private readonly waiting: Array<() => void> = [];
  private readonly inFlight = new Set<Promise<unknown>>();
  private firstError: unknown;

  constructor(private readonly limit: number) {}

  /** Resolves when the task has started (not finished), so callers get back-pressure. */
  async submit(task: () => Promise<unknown>): Promise<void> {
    this.throwIfFailed();
    while (this.running >= this.limit) {
      await new Promise<void>((resolve) => this.waiting.push(resolve));
      this.throwIfFailed();
    }
    this.running++;
    const p = task()
      .catch((err) => {
        if (this.firstError === undefined) this.firstError = err ?? new Error('task failed');
        // Every submit waiting for a slot is refused now: woken one per finished task, the
        // later ones waited for good once no task was left to finish.
        for (const wake of this.waiting.splice(0)) wake();
      })
      .finally(() => {
        this.running--;
        this.inFlight.delete(p);
        this.waiting.shift()?.();
      });
    this.inFlight.add(p);
  }

  /** Wait for every submitted task; throws the first error any of them raised. */
  async drain(): Promise<void> {
    while (this.inFlight.size > 0) await Promise.all([...this.inFlight]);
    this.throwIfFailed();
  }

  private throwIfFailed(): void {
    if (this.firstError !== undefined) throw this.firstError;
  }
}

/** A counting semaphore: at most `permits` holders at once. */
export class Semaphore {
  private readonly waiting: Array<() => void> = [];

  constructor(private permits: number) {}

  async acquire(): Promise<() => void> {
    if (this.permits > 0) this.permits--;
    else await new Promise<void>((resolve) => this.waiting.push(resolve));
    return this.releaser();
  }

  /** A permit if one is free now, else undefined (nothing waits). */
  tryAcquire(): (() => void) | undefined {
    if (this.permits === 0) return undefined;
    this.permits--;
    return this.releaser();
  }

  private releaser(): () => void {
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const next = this.waiting.shift();
      if (next) next();
      else this.permits++;
    };
  }
}

/**
 * Waiting until a condition on some state holds: whoever changes that state calls
 * changed(), and every waiter checks the condition again.
 */
export class Condition {
  private waiters: Array<() => void> = [];

  constructor(private readonly holds: () => boolean) {}

  /** Whether it holds now: a caller that finds it does need no promise to wait on. */
  get met(): boolean {
    return this.holds();
  }

  async wait(): Promise<void> {
    while (!this.holds()) await new Promise<void>((resolve) => this.waiters.push(resolve));
  }

  changed(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const wake of waiters) wake();
  }
}

/** map() with at most `limit` calls in flight; results keep the input order. */
export async function mapConcurrent<T, R>(items: readonly T[], limit: number, fn: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      results[i] = await fn(items[i]!, i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}
