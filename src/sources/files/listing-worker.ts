import { parentPort, workerData } from 'node:worker_threads';
import { entryPath } from '../../util/adaptive-io.js';
import { ExclusionMatcher } from './exclusions.js';
import { STREAMED_ABOVE, listCompact, subfolders, type CompactListing } from './listing-compact.js';
import type { ListingAnswer, ListingRequest } from './listing-thread.js';

/**
 * A ListingThread's own thread. It lists the sources' folders ahead of the walk, depth
 * first in name order as the walk goes, never into an excluded folder nor onto another
 * device (the walk decides about mount points itself), and keeps what it listed until the
 * walk asks; a folder the walk asks for before it came to it is listed next.
 */
const aheadLimit = workerData.aheadEntries as number;

/** A folder to list: its path in its source, its device, its source's exclusions. */
interface Place {
  rel: string;
  dev: string;
  matcher: ExclusionMatcher;
}

/** folders found and not listed yet */
const known = new Map<string, Place>();
/** the order to list them in, the next one last (one the walk asked for meanwhile is passed over) */
const ahead: string[] = [];
/** listed, not yet asked for (undefined: too large to list whole, the walk lists it) */
const listed = new Map<string, CompactListing | undefined>();
let listedEntries = 0;
const wanted: Array<Extract<ListingRequest, { want: string }>> = [];
let scheduled = false;

function found(dir: string, { rel, dev, matcher }: Place, listing: CompactListing): void {
  known.delete(dir);
  const subs = subfolders(listing);
  for (let i = subs.length - 1; i >= 0; i--) {
    const [name, subDev] = subs[i]!;
    const subRel = rel ? `${rel}/${name}` : name;
    if (subDev !== dev || matcher.classify(subRel, true).excluded) continue;
    const path = entryPath(dir, name);
    known.set(path, { rel: subRel, dev: subDev, matcher });
    ahead.push(path);
  }
}

function answer(dir: string): void {
  let listing: CompactListing | undefined;
  if (listed.has(dir)) {
    listing = listed.get(dir);
    listed.delete(dir);
    listedEntries -= listing?.count ?? 0;
  } else {
    listing = listCompact(dir, STREAMED_ABOVE);
    const place = known.get(dir);
    if (place && listing) found(dir, place, listing);
    else known.delete(dir);
  }
  parentPort!.postMessage({ dir, listing } satisfies ListingAnswer, listing ? [listing.numbers.buffer as ArrayBuffer] : []);
}

/** Answers one folder the walk asked for, else lists one ahead; then lets messages in. */
function step(): void {
  scheduled = false;
  const want = wanted.shift();
  if (want) {
    answer(want.want);
  } else {
    if (listedEntries >= aheadLimit) return;
    let next: string | undefined;
    while ((next = ahead.pop()) !== undefined && !known.has(next));
    if (next === undefined) return;
    const listing = listCompact(next, STREAMED_ABOVE);
    if (listing) found(next, known.get(next)!, listing);
    else known.delete(next);
    listed.set(next, listing);
    listedEntries += listing?.count ?? 0;
  }
  schedule();
}

function schedule(): void {
  if (scheduled) return;
  scheduled = true;
  setImmediate(step);
}

parentPort!.on('message', (message: ListingRequest) => {
  if (message.root !== undefined) {
    known.set(message.root, { rel: '', dev: message.dev, matcher: new ExclusionMatcher(message.rules) });
    // Sources in the order they were given: the first is listed first.
    ahead.unshift(message.root);
  } else {
    wanted.push(message);
  }
  schedule();
});
