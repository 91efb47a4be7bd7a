import { lstatSync } from 'node:fs';
import { entryPath } from '../../util/adaptive-io.js';
import { osPath, readLinkTargetSync, readNamesSync } from '../../util/os-path.js';
import { entryType, type EntryStat, type EntryType } from './entries.js';
import type { Listing } from './listing-prefetch.js';

/**
 * A folder's listing as a listing thread sends it: one string with every entry's text
 * fields and one array of numbers, instead of an object per entry. Structured cloning
 * thousands of small objects cost both threads more than the stats themselves.
 */
export interface CompactListing {
  /** per entry, TEXT_FIELDS strings, each ended by NUL (which no name, path or number holds) */
  text: string;
  /** per entry, NUMBER_FIELDS numbers */
  numbers: Float64Array;
  count: number;
  /** the folder could not be listed */
  error?: { message: string; code?: string };
}

/**
 * A folder of more entries than this is walked a window at a time (see the walker's
 * StreamedFolder), never listed whole: not ahead by a listing thread nor by a prefetch.
 */
export const STREAMED_ABOVE = 65_536;

/** name, mtime, ctime, inode, dev, then a symlink's target or an error's code, then an error's message */
export const TEXT_FIELDS = 7;
/** type, size, mode, uid, gid, nlink, rdev */
export const NUMBER_FIELDS = 7;
/** the entry types by their numbers in a compact listing (a failure's is negative) */
export const TYPES: ReadonlyArray<EntryType | undefined> = [undefined, 'file', 'dir', 'symlink', 'fifo', 'socket', 'chardev', 'blockdev'];
/** lstat failed: the text holds the error's code and message */
const STAT_FAILED = -1;
/** a symlink whose target could not be read: the text holds the error's code and message */
const TARGET_FAILED = -2;

/**
 * List `dir` in name order with every entry's lstat and symlink target (runs on the
 * listing thread). A folder of more than `maxEntries` entries is not stat'ed: undefined.
 */
export function listCompact(dir: string): CompactListing;
export function listCompact(dir: string, maxEntries: number): CompactListing | undefined;
export function listCompact(dir: string, maxEntries = Infinity): CompactListing | undefined {
  const lister = CompactLister.start(dir, maxEntries);
  if (!lister) return undefined;
  lister.advance(Infinity);
  return lister.listing();
}

/**
 * A folder's listing made a slice of entries at a time, so that a thread listing ahead
 * can answer a folder the walk waits for between two slices of a large one.
 */
export class CompactLister {
  private readonly numbers: Float64Array;
  private readonly text: string[] = [];
  private next = 0;

  protected constructor(
    readonly dir: string,
    private readonly names: string[],
  ) {
    this.numbers = new Float64Array(names.length * NUMBER_FIELDS);
  }

  /** The folder's names read and sorted; a folder that cannot be listed is done at once, with its error. */
  static start(dir: string, maxEntries = Infinity): CompactLister | undefined {
    let names: string[];
    try {
      names = readNamesSync(dir).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      return new FailedLister(dir, { message: e.message, code: e.code });
    }
    if (names.length > maxEntries) return undefined;
    return new CompactLister(dir, names);
  }

  get done(): boolean {
    return this.next >= this.names.length;
  }

  /** Reads up to `entries` more entries' stats; true once all are read. */
  advance(entries: number): boolean {
    const { dir, names, numbers, text } = this;
    const end = Math.min(names.length, this.next + entries);
    for (let i = this.next; i < end; i++) {
      const name = names[i]!;
      const full = entryPath(dir, name);
      const at = i * NUMBER_FIELDS;
      try {
        const st = lstatSync(osPath(full), { bigint: true });
        const type = entryType(st);
        let target = '';
        let failure = '';
        numbers[at] = TYPES.indexOf(type);
        if (type === 'symlink') {
          try {
            target = readLinkTargetSync(full);
          } catch (err) {
            const e = err as NodeJS.ErrnoException;
            numbers[at] = TARGET_FAILED;
            target = e.code ?? '';
            failure = e.message;
          }
        }
        numbers[at + 1] = Number(st.size);
        numbers[at + 2] = Number(st.mode & 0o7777n);
        numbers[at + 3] = Number(st.uid);
        numbers[at + 4] = Number(st.gid);
        numbers[at + 5] = Number(st.nlink);
        numbers[at + 6] = Number(st.rdev);
        text.push(name, st.mtimeNs.toString(), st.ctimeNs.toString(), st.ino.toString(), st.dev.toString(), target, failure);
      } catch (err) {
        const e = err as NodeJS.ErrnoException;
        numbers[at] = STAT_FAILED;
        text.push(name, '', '', '', '', e.code ?? '', e.message);
      }
    }
    this.next = end;
    return this.done;
  }

  /** The listing, once done. */
  listing(): CompactListing {
    if (!this.done) throw new Error(`the listing of ${this.dir} is not done`);
    // Each entry's fields end with a NUL, the last one's too.
    return { text: this.text.length > 0 ? `${this.text.join('\0')}\0` : '', numbers: this.numbers, count: this.names.length };
  }
}

/** A folder that could not be listed: done from the start, its listing the error. */
class FailedLister extends CompactLister {
  constructor(
    dir: string,
    private readonly error: { message: string; code?: string },
  ) {
    super(dir, []);
  }

  override listing(): CompactListing {
    return { text: '', numbers: new Float64Array(0), count: 0, error: this.error };
  }
}

/** The folders a listing holds, in name order, with their devices. */
export function subfolders(listing: CompactListing): Array<[string, string]> {
  const { numbers, count } = listing;
  const dirs: Array<[string, string]> = [];
  const dirCode = TYPES.indexOf('dir');
  let fields: string[] | undefined;
  for (let i = 0; i < count; i++) {
    if (numbers[i * NUMBER_FIELDS] !== dirCode) continue;
    fields ??= listing.text.split('\0');
    dirs.push([fields[i * TEXT_FIELDS]!, fields[i * TEXT_FIELDS + 4]!]);
  }
  return dirs;
}

function failure(code: string, message: string): NodeJS.ErrnoException {
  const err: NodeJS.ErrnoException = new Error(message);
  if (code) err.code = code;
  return err;
}

/** Entry `i`'s name, `fields` the listing's text split at NULs. */
export function entryName(fields: readonly string[], i: number): string {
  return fields[i * TEXT_FIELDS]!;
}

/** The error a listing of a folder that could not be listed holds. */
export function listingError(listing: CompactListing): NodeJS.ErrnoException | undefined {
  return listing.error && failure(listing.error.code ?? '', listing.error.message);
}

/** One entry of a compact listing: its name and stat, or the error reading it gave. */
export function readEntry(
  listing: CompactListing,
  fields: readonly string[],
  i: number,
): { name: string; st: EntryStat; target?: string | NodeJS.ErrnoException } | { name: string; st?: undefined; error: NodeJS.ErrnoException } {
  const { numbers } = listing;
  const t = i * TEXT_FIELDS;
  const at = i * NUMBER_FIELDS;
  const name = fields[t]!;
  const code = numbers[at]!;
  if (code === STAT_FAILED) return { name, error: failure(fields[t + 5]!, fields[t + 6]!) };
  const st: EntryStat = {
    type: code === TARGET_FAILED ? 'symlink' : TYPES[code],
    size: numbers[at + 1]!,
    mode: numbers[at + 2]!,
    uid: numbers[at + 3]!,
    gid: numbers[at + 4]!,
    nlink: numbers[at + 5]!,
    rdev: numbers[at + 6]!,
    mtime: fields[t + 1]!,
    ctime: fields[t + 2]!,
    inode: fields[t + 3]!,
    dev: fields[t + 4]!,
  };
  if (code === TARGET_FAILED) return { name, st, target: failure(fields[t + 5]!, fields[t + 6]!) };
  return { name, st, target: st.type === 'symlink' ? fields[t + 5]! : undefined };
}

/** The walk's Listing from a compact one (on the walk's thread); a folder that could not be listed throws its error. */
export function expandListing(compact: CompactListing): Listing {
  const error = listingError(compact);
  if (error) throw error;
  const { count } = compact;
  const fields = compact.text.split('\0');
  const names: string[] = new Array(count);
  const stats: Listing['stats'] = new Array(count);
  const targets: Array<string | NodeJS.ErrnoException | undefined> = new Array(count);
  for (let i = 0; i < count; i++) {
    const entry = readEntry(compact, fields, i);
    names[i] = entry.name;
    if (entry.st) {
      stats[i] = entry.st;
      targets[i] = entry.target;
    } else {
      stats[i] = entry.error;
    }
  }
  return { names, stats, targets };
}
