import { lstatSync } from 'node:fs';
import { resolve } from 'node:path';
import { Worker } from 'node:worker_threads';
import { osPath } from '../../util/os-path.js';
import type { FilesSource } from './driver.js';
import { resolveExclusionClasses } from './exclusion-classes.js';
import type { ExclusionRules } from './exclusions.js';
import type { CompactListing } from './listing-compact.js';

/** What the walk tells the listing thread: a source to list ahead, or a folder it wants now. */
export type ListingRequest = { root: string; dev: string; rules: ExclusionRules; want?: undefined } | { want: string; root?: undefined };

/** The listing thread's answer about one folder: none for a folder the walk reads a window at a time (STREAMED_ABOVE). */
export interface ListingAnswer {
  dir: string;
  listing: CompactListing | undefined;
}

/**
 * Entries listed ahead and not yet asked for, at most: bounds the memory the thread holds
 * (about 200 bytes an entry).
 */
const AHEAD_ENTRIES = 30_000;

let prestarted: ListingThread | undefined;

/**
 * Files sources' folders listed, their entries' lstat and symlinks' targets read, on a
 * thread of their own, ahead of the walk (see listing-worker.ts). A backup with a previous
 * snapshot keeps most files as they were, and its walk was mostly these system calls on
 * the main thread, which also loads the previous trees and compares: now the two run side
 * by side. Started with the command, the thread has loaded by the time the backup knows
 * whether it has a previous snapshot, and lists from then on (begin).
 */
export class ListingThread {
  private readonly worker: Worker;
  private readonly waiting = new Map<string, (answer: ListingAnswer | undefined) => void>();
  private readonly roots = new Set<string>();
  private readonly later: Array<Extract<ListingRequest, { root: string }>> = [];
  private begun = false;
  private stopped = false;

  constructor(aheadEntries = AHEAD_ENTRIES) {
    this.worker = new Worker(new URL('./listing-worker.js', import.meta.url), { workerData: { aheadEntries } });
    this.worker.on('message', (answer: ListingAnswer) => {
      const waiter = this.waiting.get(answer.dir);
      this.waiting.delete(answer.dir);
      waiter?.(answer);
    });
    const stop = () => {
      this.stopped = true;
      for (const waiter of this.waiting.values()) waiter(undefined);
      this.waiting.clear();
    };
    this.worker.on('error', stop);
    this.worker.on('exit', stop);
    // Never what keeps the process alive: the command closes it, or ends with it.
    this.worker.unref();
  }

  /**
   * A thread to list ahead in the sources without include patterns (what those keep is
   * decided entry by entry, and most of such a source is not walked), once begun;
   * undefined for none.
   */
  static start(sources: readonly FilesSource[]): ListingThread | undefined {
    let thread = prestarted;
    prestarted = undefined;
    let roots = 0;
    for (const source of sources) {
      if (source.include?.length) continue;
      const root = resolve(source.path);
      let dev: string;
      try {
        dev = lstatSync(osPath(root), { bigint: true }).dev.toString();
      } catch {
        continue; // the backup reports it
      }
      thread ??= new ListingThread();
      thread.addRoot(root, dev, { exclude: source.exclude, classes: source.exclusionClasses ?? resolveExclusionClasses() });
      roots++;
    }
    if (roots > 0) return thread;
    void thread?.close();
    return undefined;
  }

  /**
   * Start the thread before the command has loaded: Node takes about a tenth of a second
   * to start a thread and load its modules, time in which the main thread loads ours.
   * The next start() takes it; one nobody takes ends with the process. `beginAtOnce`: list
   * the sources ahead as soon as they are added, before the backup knows whether it has a
   * previous snapshot (the repository holds some): its key is derived, its index loaded
   * meanwhile.
   */
  static prestart({ beginAtOnce = false } = {}): void {
    prestarted ??= new ListingThread();
    if (beginAtOnce) prestarted.begin();
  }

  /**
   * List ahead below `root` (a source's folder, on device `dev`), leaving out what `rules`
   * exclude, once begun: a first backup reads every file, and the thread's listing would
   * only take CPU from it.
   */
  addRoot(root: string, dev: string, rules: ExclusionRules): void {
    this.roots.add(root);
    this.later.push({ root, dev, rules });
    if (this.begun) this.begin();
  }

  /** Start listing ahead, once the backup knows it has a previous snapshot to compare with. */
  begin(): void {
    this.begun = true;
    for (const root of this.later.splice(0)) this.worker.postMessage(root satisfies ListingRequest);
  }

  /** Whether the thread lists ahead (or will, for roots added later), as opposed to waiting to be begun. */
  get listingAhead(): boolean {
    return this.begun && !this.stopped;
  }

  /** Whether the thread lists ahead for the source at `root`. */
  covers(root: string): boolean {
    return this.roots.has(root) && !this.stopped;
  }

  /** `dir`'s listing; undefined for a large folder or once the thread has stopped (the walk then lists on its own). */
  async list(dir: string): Promise<CompactListing | undefined> {
    if (this.stopped) return undefined;
    const answer = await new Promise<ListingAnswer | undefined>((resolve) => {
      this.waiting.set(dir, resolve);
      this.worker.ref();
      this.worker.postMessage({ want: dir } satisfies ListingRequest);
    });
    if (this.waiting.size === 0) this.worker.unref();
    return answer?.listing;
  }

  async close(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    await this.worker.terminate();
  }
}
