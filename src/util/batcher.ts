/**
 * Gathers requests made in the same turn of the event loop (or until a batch is full) and
 * sends them together: one message to a worker thread per batch instead of one per item,
 * which costs more than a small item's work. Each caller gets its own item's result.
 */
export class Batcher<T, R> {
  private items: Array<{ item: T; settle: (result: R | Error) => void }> = [];
  private bytes = 0;

  /** `send` answers with one result (or the Error for that item) per item, in order. */
  constructor(
    private readonly limits: { items: number; bytes: number },
    private readonly send: (items: T[], bytes: number) => Promise<Array<R | Error>>,
  ) {}

  /** Queue an item of `bytes` bytes; resolves with its result, rejects with its error. */
  async add(item: T, bytes: number): Promise<R> {
    const result = await new Promise<R | Error>((settle) => {
      if (this.items.length === 0) setImmediate(() => this.flush());
      this.items.push({ item, settle });
      this.bytes += bytes;
      if (this.items.length >= this.limits.items || this.bytes >= this.limits.bytes) this.flush();
    });
    if (result instanceof Error) throw result;
    return result;
  }

  private flush(): void {
    if (this.items.length === 0) return;
    const batch = this.items;
    const bytes = this.bytes;
    this.items = [];
    this.bytes = 0;
    let sent: Promise<Array<R | Error>>;
    try {
      sent = this.send(
        batch.map((b) => b.item),
        bytes,
      );
    } catch (err) {
      sent = Promise.reject(err);
    }
    sent.then(
      (results) => batch.forEach((b, i) => b.settle(results[i] ?? new Error('internal error: no result for a batched item'))),
      (err: unknown) => batch.forEach((b) => b.settle(err instanceof Error ? err : new Error(String(err)))),
    );
  }
}
