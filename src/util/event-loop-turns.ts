/**
 * Turns a long walk gives the event loop. Over trees already loaded and work that finds a
 * free slot, a walk runs on promise callbacks alone, and nothing else this thread serves is
 * looked at until it yields: not the copies it asked for (from S3 this thread receives
 * them), not the worker threads' replies, not a Ctrl-C. A walk asks `due` per entry (one
 * clock read) and takes a turn when it is.
 */
export class EventLoopTurns {
  private at = performance.now();

  /** `everyMs`: the longest the walk keeps the event loop to itself */
  constructor(private readonly everyMs = 10) {}

  get due(): boolean {
    return performance.now() - this.at > this.everyMs;
  }

  /** One turn of the event loop (its I/O and timers), then the walk goes on. */
  async take(): Promise<void> {
    await new Promise(setImmediate);
    this.at = performance.now();
  }
}
