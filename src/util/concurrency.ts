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
