import { resolve } from 'node:path';
import type { FilesSource } from './driver.js';
import { ListingPrefetch } from './listing-prefetch.js';
import { ListingThread } from './listing-thread.js';

/**
 * Start reading the sources' folders as a backup command starts, while the repository's
 * key is derived and its index loads: a listing thread for the sources it can list ahead
 * (ListingThread.start), and on this thread, between the command's own work, the first
 * folders of the others (ListingPrefetch). The backup closes the thread; a command that
 * fails before its backup must close it too.
 */
export function startReadingFolders(sources: readonly FilesSource[]): { prefetched: ListingPrefetch; listingThread?: ListingThread } {
  const listingThread = ListingThread.start(sources);
  const others = sources.map((s) => resolve(s.path)).filter((root) => !listingThread?.covers(root));
  return { prefetched: ListingPrefetch.start(others), listingThread };
}
