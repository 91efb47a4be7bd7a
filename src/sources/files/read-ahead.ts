import { resolve } from 'node:path';
import type { FilesSource } from './driver.js';
import { ListingPrefetch } from './listing-prefetch.js';
import { ListingThread } from './listing-thread.js';

/**
 * Start reading the sources' folders as a backup command starts, while the repository's
 * key is derived and its index loads: a listing thread for the sources it can list ahead
 * (ListingThread.start), used if the backup has a previous snapshot to compare with, and
 * on this thread, between the command's own work, the first folders of every source
 * (ListingPrefetch), used where the thread is not. The backup closes the thread; a
 * command that fails before its backup must close it too.
 */
export function startReadingFolders(sources: readonly FilesSource[]): { prefetched: ListingPrefetch; listingThread?: ListingThread } {
  return { prefetched: ListingPrefetch.start(sources.map((s) => resolve(s.path))), listingThread: ListingThread.start(sources) };
}
