import { entryPath } from '../../util/adaptive-io.js';
import type { EntryStat } from './entries.js';
import { expandListing, listCompact, subfolders, type CompactListing } from './listing-compact.js';

/** A folder's entries in name order, each with its lstat result or the error it gave. */
export interface Listing {
  names: string[];
  stats: Array<EntryStat | NodeJS.ErrnoException | undefined>;
  /** symlinks' targets (or the error reading one gave), where the listing read them */
  targets?: Array<string | NodeJS.ErrnoException | undefined>;
}

/** Entries read ahead at most: bounds the memory a prefetch holds. */
const MAX_ENTRIES = 50_000;
/** A blocking call slower than this means slow storage: a prefetch is not worth hogging it. */
const SLOW_CALL_MS = 1;
/** How long the prefetch runs before it lets the event loop in (so it notices it is stopped). */
const SLICE_MS = 1;

/**
 * Reads folder listings and stats ahead of a backup's walk, in the walk's order, while
 * the thread would otherwise idle: deriving the repository key takes about 80 ms on the
 * thread pool, a tenth of a no-change backup of 50,000 files. The walk takes each listing
 * once (take) and reads on its own where the prefetch did not get to.
 */
export class ListingPrefetch {
  private readonly listings = new Map<string, CompactListing>();
  private readonly pending: string[];
  private stopped = false;
  private entries = 0;
  private readonly running: Promise<void>;

  private constructor(
    roots: string[],
    private readonly slowCallMs: number,
    private readonly maxEntries: number,
  ) {
    this.pending = [...roots].reverse();
    this.running = this.run();
  }

  /**
   * `slowCallMs`: a folder whose calls take longer than this each on average stops the
   * prefetch; so does one that would take it past `maxEntries`.
   */
  static start(roots: string[], { slowCallMs = SLOW_CALL_MS, maxEntries = MAX_ENTRIES } = {}): ListingPrefetch {
    return new ListingPrefetch(roots, slowCallMs, maxEntries);
  }

  /** Resolves when the prefetch has read all it will. */
  finished(): Promise<void> {
    return this.running;
  }

  /** Stop reading ahead; what was read stays available to take(). */
  stop(): this {
    this.stopped = true;
    return this;
  }

  take(dir: string): Listing | undefined {
    const listing = this.listings.get(dir);
    this.listings.delete(dir);
    return listing && expandListing(listing);
  }

  /** Drop what was read of `root` and below it: a walk that lists on a thread of its own takes none of it. */
  forget(root: string): void {
    const below = root.endsWith('/') ? root : `${root}/`;
    for (const dir of this.listings.keys()) if (dir === root || dir.startsWith(below)) this.listings.delete(dir);
  }

  private async run(): Promise<void> {
    let sliceStart = performance.now();
    while (!this.stopped && this.pending.length > 0 && this.entries < this.maxEntries) {
      if (performance.now() - sliceStart > SLICE_MS) {
        await new Promise<void>((resolve) => setImmediate(resolve));
        sliceStart = performance.now();
        continue;
      }
      const dir = this.pending.pop()!;
      const started = performance.now();
      // A folder too large to hold ahead (the walk reads a large one a window at a time) ends the prefetch.
      const listing = listCompact(dir, this.maxEntries - this.entries);
      if (!listing) break;
      // One that cannot be listed is read again by the walk, which reports what is wrong.
      if (listing.error) continue;
      this.listings.set(dir, listing);
      this.entries += listing.count;
      if ((performance.now() - started) / Math.max(1, listing.count + 1) > this.slowCallMs) break;
      // Depth first in name order, as the walk goes.
      const subs = subfolders(listing);
      for (let i = subs.length - 1; i >= 0; i--) this.pending.push(entryPath(dir, subs[i]![0]));
    }
  }
}
