import { parentPort, workerData } from 'node:worker_threads';
import { entryPath } from '../../util/adaptive-io.js';
import { ExclusionMatcher } from './exclusions.js';
import { CompactLister, STREAMED_ABOVE, subfolders, type CompactListing } from './listing-compact.js';
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

/**
 * Entries stat'ed per step. A large folder listed whole in one step (18,000 manual pages:
 * 0.15-0.2 s) kept every folder the walk asked for meanwhile waiting; now the folders
 * asked for are answered between two slices of it, whether it was asked for or is listed
 * ahead.
 */
const SLICE_ENTRIES = 256;
/** folders being listed, a slice per step: the one listed ahead, and large ones the walk asked for */
const partial = new Map<string, CompactLister>();
/** the folder being listed ahead, in `partial` */
let aheadDir: string | undefined;

/** Answers one folder the walk asked for, or lists a slice of it, else lists a slice ahead; then lets messages in. */
function step(): void {
  scheduled = false;
  const want = wanted.shift();
  if (want) serve(want);
  else if (!listAhead()) return;
  schedule();
}

/** Answers a folder the walk asked for, or lists a slice of it and puts it back behind the others asked for. */
function serve(want: Extract<ListingRequest, { want: string }>): void {
  const dir = want.want;
  if (listed.has(dir)) {
    const listing = listed.get(dir);
    listed.delete(dir);
    listedEntries -= listing?.count ?? 0;
    send(dir, listing);
    return;
  }
  const lister = partial.get(dir) ?? CompactLister.start(dir, STREAMED_ABOVE);
  if (!lister) {
    known.delete(dir);
    send(dir, undefined);
    return;
  }
  if (!lister.advance(SLICE_ENTRIES)) {
    partial.set(dir, lister);
    wanted.push(want);
    return;
  }
  partial.delete(dir);
  if (aheadDir === dir) aheadDir = undefined;
  const listing = lister.listing();
  const place = known.get(dir);
  if (place) found(dir, place, listing);
  else known.delete(dir);
  send(dir, listing);
}

function send(dir: string, listing: CompactListing | undefined): void {
  parentPort!.postMessage({ dir, listing } satisfies ListingAnswer, listing ? [listing.numbers.buffer as ArrayBuffer] : []);
}

/** Lists a slice of the next folder ahead; false when there is none to list, or enough is listed ahead already. */
function listAhead(): boolean {
  if (aheadDir === undefined) {
    if (listedEntries >= aheadLimit) return false;
    let next: string | undefined;
    // A folder the walk asked for is being listed already, and is answered when done.
    while ((next = ahead.pop()) !== undefined && (!known.has(next) || partial.has(next)));
    if (next === undefined) return false;
    const lister = CompactLister.start(next, STREAMED_ABOVE);
    if (!lister) {
      // Too large to list whole: the walk lists it a window at a time.
      known.delete(next);
      listed.set(next, undefined);
      return true;
    }
    partial.set(next, lister);
    aheadDir = next;
  }
  const dir = aheadDir;
  const lister = partial.get(dir)!;
  if (!lister.advance(SLICE_ENTRIES)) return true;
  partial.delete(dir);
  aheadDir = undefined;
  const listing = lister.listing();
  found(dir, known.get(dir)!, listing);
  listed.set(dir, listing);
  listedEntries += listing.count;
  return true;
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
