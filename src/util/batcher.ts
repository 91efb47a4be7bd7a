/**
 * Gathers requests made in the same turn of the event loop (or until a batch is full) and
 * sends them together: one message to a worker thread per batch instead of one per item,
 * which costs more than a small item's work. Each caller gets its own item's result.
 *
 * With `gather`, items are held longer: until the gathered ones reach its limits, or a
 * turn of the event loop passes without a new one (whoever adds items is waiting for
 * results, so holding them longer would only stall). Then they are put in `gather.order`
 * and cut into batches. That lets items that are close together somewhere else (blobs in
 * a pack file) travel, and be read, together, though they arrive far apart.
 */
export class Batcher<T, R> {
  private items: Array<{ item: T; bytes: number; settle: (result: R | Error) => void }> = [];
  private bytes = 0;
  private addedThisTurn = false;
  /** one check for a quiet turn at a time: a second one would take the first's reset flag for a quiet turn */
  private idleCheckPending = false;
  /** the share of gather's limits the next gathering holds: growing from `gather.first` to 1 */
  private gatherShare: number;

  /** `send` answers with one result (or the Error for that item) per item, in order. */
  constructor(
    private readonly limits: { items: number; bytes: number },
    private readonly send: (items: T[], bytes: number) => Promise<Array<R | Error>>,
    private readonly gather?: {
      items: number;
      bytes: number;
      order: (a: T, b: T) => number;
      /** the share of the limits the first gathering holds, doubled at each one after: work starts sooner */
      first?: number;
    },
  ) {
    this.gatherShare = gather?.first ?? 1;
  }

  /** Queue an item of `bytes` bytes; resolves with its result, rejects with its error. */
  async add(item: T, bytes: number): Promise<R> {
    const result = await new Promise<R | Error>((settle) => this.addWith(item, bytes, settle));
    if (result instanceof Error) throw result;
    return result;
  }

  /** add() for callers with many items, where a promise per item costs: `settle` gets the item's result or its Error. */
  addWith(item: T, bytes: number, settle: (result: R | Error) => void): void {
    if (!this.idleCheckPending) {
      this.idleCheckPending = true;
      setImmediate(() => this.flushWhenIdle());
    }
    this.items.push({ item, bytes, settle });
    this.bytes += bytes;
    this.addedThisTurn = true;
    const full = this.gather ? { items: this.gather.items * this.gatherShare, bytes: this.gather.bytes * this.gatherShare } : this.limits;
    if (this.items.length >= full.items || this.bytes >= full.bytes) this.flush();
  }

  private flushWhenIdle(): void {
    if (this.gather && this.addedThisTurn && this.items.length > 0) {
      this.addedThisTurn = false;
      setImmediate(() => this.flushWhenIdle());
      return;
    }
    this.idleCheckPending = false;
    this.flush();
  }

  private flush(): void {
    if (this.items.length === 0) return;
    const items = this.items;
    this.items = [];
    this.bytes = 0;
    if (!this.gather) {
      this.sendBatch(items);
      return;
    }
    const order = this.gather.order;
    this.gatherShare = Math.min(1, this.gatherShare * 2);
    items.sort((a, b) => order(a.item, b.item));
    let start = 0;
    let bytes = 0;
    for (let i = 0; i < items.length; i++) {
      if (i > start && (i - start >= this.limits.items || bytes + items[i]!.bytes > this.limits.bytes)) {
        this.sendBatch(items.slice(start, i));
        start = i;
        bytes = 0;
      }
      bytes += items[i]!.bytes;
    }
    this.sendBatch(items.slice(start));
  }

  private sendBatch(batch: Array<{ item: T; bytes: number; settle: (result: R | Error) => void }>): void {
    let sent: Promise<Array<R | Error>>;
    try {
      sent = this.send(
        batch.map((b) => b.item),
        batch.reduce((n, b) => n + b.bytes, 0),
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
