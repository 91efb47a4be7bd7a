import { FileRows, MemoryRows, ROW_WORDS, type IndexRows } from './index-rows.js';

/**
 * Every blob of the index in flat typed arrays, where a JS object and a Map entry per blob
 * took some 250 bytes and a repository of 10 million blobs would not have opened in a few
 * gigabytes (see docs/performance.md). In memory: the first 16 bytes of each id and a word
 * with its pack's number and flags, 20 bytes; the rest of the id, the offset, stored and
 * raw length are rows (IndexRows) read by entry number: in memory too (48 bytes a blob in
 * all), or past `spillAbove` blobs in a file of the process's own, so that memory stays
 * bounded as a repository grows (10 million blobs: 191 MiB instead of 458). A lookup
 * compares the first halves in memory and reads the second half of the one or two
 * entries that match them: a blob is only ever found by its whole id.
 *
 * Entries are appended (a pack's blobs together) and never move: an entry's number is where
 * it is. Lookups go through `sorted`, the entry numbers ordered by id (a 32-bit word order,
 * not the hex order: only sort and search need to agree), found by the id's top 16 bits
 * (`fanout`) and a binary search. Entries appended since the last sort are looked up in a
 * Map until there are enough of them to sort in; opening a repository appends everything
 * before its first lookup and sorts once, a backup appends pack by pack between lookups.
 */

const SEGMENT_BITS = 16;
const SEGMENT = 1 << SEGMENT_BITS;
const ID_WORDS = 8;
/** the id words kept in memory; the others are the first words of its row */
const PREFIX_WORDS = 4;
const FANOUT_BITS = 16;
/** Entries sorted in at once up to this many by one native sort (first word and place: 53 bits, exact in a double). */
const SMALL_SORT = 1 << 21;
/** Appended entries looked up through a Map up to this many; past it, they are sorted in. */
const MAP_AT_MOST = 65_536;
/** Past this many blobs (48 MiB of index), rows go to a file. */
export const SPILL_ABOVE = 1_000_000;

const PACK_MASK = 0x3fff_ffff;
const TREE_FLAG = 0x4000_0000;
const COMPRESSED_FLAG = 0x8000_0000;
export const MAX_PACKS = PACK_MASK + 1;

export interface TableEntry {
  pack: number;
  tree: boolean;
  compressed: boolean;
  offset: number;
  length: number;
  rawLength: number;
}

/** A blob id (64 hex digits) as eight 32-bit words; undefined for anything else. */
export function idWords(id: string, into: Uint32Array = new Uint32Array(ID_WORDS)): Uint32Array | undefined {
  // Parsed here rather than by Buffer.from(id, 'hex'): a buffer per lookup was a tenth of a
  // restore's first walk. Not through hexWords: taking strings too made its loop over
  // index files' bytes a third slower (1M ids: 176 against 128 ms).
  if (id.length !== 64) return undefined;
  for (let b = 0; b < 32; b++) {
    const byte = (hexDigit(id.charCodeAt(2 * b)) << 4) | hexDigit(id.charCodeAt(2 * b + 1));
    if (byte < 0) return undefined;
    into[b >>> 2] = b % 4 === 0 ? byte : (into[b >>> 2]! | (byte << ((b % 4) * 8))) >>> 0;
  }
  return into;
}

/** A character's value as a hex digit; a large negative number for any other, so that a byte made with it is negative. */
function hexDigit(code: number): number {
  return code < 256 && HEX_DIGITS[code]! >= 0 ? HEX_DIGITS[code]! : -0x10000;
}

/** The first word of an entry: its pack's number and the blob's flags. */
export function packWord(pack: number, tree: boolean, compressed: boolean): number {
  return ((pack & PACK_MASK) | (tree ? TREE_FLAG : 0) | (compressed ? COMPRESSED_FLAG : 0)) >>> 0;
}

/** Each byte's value as a hex digit, -1 for other bytes. */
const HEX_DIGITS = Int8Array.from({ length: 256 }, (_, c) => (c >= 48 && c <= 57 ? c - 48 : c >= 97 && c <= 102 ? c - 87 : c >= 65 && c <= 70 ? c - 55 : -1));

/** The 64 hex digits at text[start] as eight words into `into` at `at`, as idWords makes them. */
function hexWords(text: Uint8Array, start: number, into: Uint32Array, at: number): boolean {
  if (start + 64 > text.length) return false;
  for (let w = 0; w < ID_WORDS; w++) {
    let word = 0;
    for (let k = 0, at = start + w * 8; k < 4; k++, at += 2) {
      const hi = HEX_DIGITS[text[at]!]!;
      const lo = HEX_DIGITS[text[at + 1]!]!;
      if ((hi | lo) < 0) return false;
      word |= ((hi << 4) | lo) << (k * 8);
    }
    into[at + w] = word >>> 0;
  }
  return true;
}

export class BlobTable {
  private readonly prefixes: Uint32Array[] = [];
  private readonly packWords: Uint32Array[] = [];
  private rows: IndexRows = new MemoryRows();
  private entries = 0;
  /** entry numbers [0, sortedUpTo) ordered by id */
  private sorted = new Uint32Array(0);
  private sortedUpTo = 0;
  private readonly fanout = new Uint32Array((1 << FANOUT_BITS) + 1);
  /** entries [sortedUpTo, mappedUpTo), by hex id */
  private recent = new Map<string, number[]>();
  private mappedUpTo = 0;
  private lookedUp = false;
  private readonly query = new Uint32Array(ID_WORDS);
  private readonly row = new Uint32Array(ROW_WORDS);
  private readonly other = new Uint32Array(ROW_WORDS);
  private readonly words = new Uint32Array(ID_WORDS);

  /**
   * `spillAbove`: how many blobs the rows are kept in memory for; `sortAtOnce`: how many new
   * entries are sorted by one native sort, more in buckets (tests make both small).
   */
  constructor(
    private readonly spillAbove = SPILL_ABOVE,
    private readonly sortAtOnce = SMALL_SORT,
  ) {}

  get size(): number {
    return this.entries;
  }

  /** Where the rows are: 'file' once the table has grown past spillAbove (and a file could be made). */
  get rowsIn(): 'memory' | 'file' {
    return this.rows instanceof FileRows ? 'file' : 'memory';
  }

  /** Appends an entry; false for an id that is not 64 hex digits (nothing appended). */
  append(id: string, e: TableEntry): boolean {
    if (!idWords(id, this.words)) return false;
    this.appendWords(packWord(e.pack, e.tree, e.compressed), e.offset, e.length, e.rawLength);
    return true;
  }

  /**
   * Appends an entry whose id is the 64 hex digits at `text[start]` (an index file's bytes,
   * read without making strings); false when they are not hex digits (nothing appended).
   */
  appendHex(text: Uint8Array, start: number, pack: number, offset: number, length: number, rawLength: number): boolean {
    if (!hexWords(text, start, this.words, 0)) return false;
    this.appendWords(pack, offset, length, rawLength);
    return true;
  }

  private appendWords(pack: number, offset: number, length: number, rawLength: number): void {
    const n = this.entries;
    const seg = n >>> SEGMENT_BITS;
    const at = n & (SEGMENT - 1);
    if (this.prefixes.length <= seg) {
      this.prefixes.push(new Uint32Array(SEGMENT * PREFIX_WORDS));
      this.packWords.push(new Uint32Array(SEGMENT));
    }
    if (n === this.spillAbove && this.rows instanceof MemoryRows) this.spill();
    this.prefixes[seg]!.set(this.words.subarray(0, PREFIX_WORDS), at * PREFIX_WORDS);
    this.packWords[seg]![at] = pack;
    const row = this.row;
    row.set(this.words.subarray(PREFIX_WORDS), 0);
    row[4] = offset;
    row[5] = length;
    row[6] = rawLength;
    this.rows.append(row);
    this.entries++;
  }

  /** The rows so far into a file; where none can be made, they stay in memory. */
  private spill(): void {
    let file: FileRows;
    try {
      file = new FileRows();
    } catch {
      return;
    }
    const row = new Uint32Array(ROW_WORDS);
    for (let n = 0; n < this.entries; n++) {
      this.rows.read(n, row);
      file.append(row);
    }
    this.rows.close();
    this.rows = file;
  }

  /** Drops the entries from `n` on: only entries appended since the last lookup. */
  truncate(n: number): void {
    if (n < this.sortedUpTo || n < this.mappedUpTo) throw new Error('BlobTable.truncate: entries already looked up');
    this.entries = Math.min(this.entries, n);
    this.rows.truncate(this.entries);
  }

  entry(n: number): TableEntry {
    this.rows.read(n, this.row);
    return this.entryOf(n, this.row);
  }

  /** Entry n, given its row. */
  private entryOf(n: number, row: Uint32Array): TableEntry {
    const w0 = this.packWords[n >>> SEGMENT_BITS]![n & (SEGMENT - 1)]!;
    return { pack: w0 & PACK_MASK, tree: (w0 & TREE_FLAG) !== 0, compressed: (w0 & COMPRESSED_FLAG) !== 0, offset: row[4]!, length: row[5]!, rawLength: row[6]! };
  }

  /** Entries [first, first + count) with their ids: their rows in one read (a pack's blobs, in order). */
  entriesIn(first: number, count: number): Array<TableEntry & { id: string }> {
    const rows = new Uint32Array(count * ROW_WORDS);
    this.rows.readRange(first, count, rows);
    const entries = new Array<TableEntry & { id: string }>(count);
    for (let i = 0; i < count; i++) {
      const row = rows.subarray(i * ROW_WORDS, (i + 1) * ROW_WORDS);
      entries[i] = { id: this.idOf(first + i, row), ...this.entryOf(first + i, row) };
    }
    return entries;
  }

  /** Where the blobs of entries [first, first + count) end in their pack: the largest offset + length (0 for none). */
  endOf(first: number, count: number): number {
    const rows = new Uint32Array(count * ROW_WORDS);
    this.rows.readRange(first, count, rows);
    let end = 0;
    for (let at = 0; at < rows.length; at += ROW_WORDS) end = Math.max(end, rows[at + 4]! + rows[at + 5]!);
    return end;
  }

  /** Stored and raw bytes of the data (not tree) entries among [first, first + count). */
  dataBytesIn(first: number, count: number): { stored: number; raw: number } {
    const rows = new Uint32Array(count * ROW_WORDS);
    this.rows.readRange(first, count, rows);
    let stored = 0;
    let raw = 0;
    for (let i = 0; i < count; i++) {
      const n = first + i;
      if ((this.packWords[n >>> SEGMENT_BITS]![n & (SEGMENT - 1)]! & TREE_FLAG) !== 0) continue;
      stored += rows[i * ROW_WORDS + 5]!;
      raw += rows[i * ROW_WORDS + 6]!;
    }
    return { stored, raw };
  }

  packOf(n: number): number {
    return this.packWords[n >>> SEGMENT_BITS]![n & (SEGMENT - 1)]! & PACK_MASK;
  }

  /** The id of entry n, as 64 hex digits. */
  id(n: number): string {
    this.rows.read(n, this.row);
    return this.idOf(n, this.row);
  }

  /** The id of entry n, given its row (which holds the id's second half). */
  private idOf(n: number, row: Uint32Array): string {
    const at = (n & (SEGMENT - 1)) * PREFIX_WORDS;
    this.words.set(this.prefixes[n >>> SEGMENT_BITS]!.subarray(at, at + PREFIX_WORDS), 0);
    this.words.set(row.subarray(0, ID_WORDS - PREFIX_WORDS), PREFIX_WORDS);
    return Buffer.from(this.words.buffer, this.words.byteOffset, 32).toString('hex');
  }

  /** Entry numbers holding `id`, in the order they were appended (a blob can be stored twice). */
  find(id: string): number[] {
    this.prepareLookups();
    // Nothing sorted yet (a first backup): only the Map holds entries, no id to parse.
    if (this.sortedUpTo === 0) return this.recent.get(id)?.slice() ?? [];
    const q = idWords(id, this.query);
    if (!q) return [];
    const found: number[] = [];
    let lo = this.fanout[q[0]! >>> (32 - FANOUT_BITS)]!;
    let hi = this.fanout[(q[0]! >>> (32 - FANOUT_BITS)) + 1]!;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.compareWith(this.sorted[mid]!, q) < 0) lo = mid + 1;
      else hi = mid;
    }
    for (let i = lo; i < this.sortedUpTo && this.compareWith(this.sorted[i]!, q) === 0; i++) found.push(this.sorted[i]!);
    const recent = this.recent.get(id);
    if (recent) found.push(...recent);
    return found;
  }

  /**
   * Before a lookup: many new entries are sorted in, a few are put in the Map. What is there
   * at the first lookup (the index as a repository opened) is sorted however little: for
   * 15,000 blobs (third round of a warm process) the Map, a string per entry, took 19-21 ms
   * to make and 20-28 ms for a lookup of each; the sort 2-3 ms and 7-12 ms.
   */
  private prepareLookups(): void {
    if (!this.lookedUp || this.entries - this.sortedUpTo > MAP_AT_MOST) {
      this.lookedUp = true;
      if (this.entries > this.sortedUpTo) this.sortIn();
      return;
    }
    for (; this.mappedUpTo < this.entries; this.mappedUpTo++) {
      const key = this.id(this.mappedUpTo);
      const list = this.recent.get(key);
      if (list) list.push(this.mappedUpTo);
      else this.recent.set(key, [this.mappedUpTo]);
    }
  }

  /** Entries [sortedUpTo, entries) sorted, then merged with the sorted ones. */
  private sortIn(): void {
    const from = this.sortedUpTo;
    const count = this.entries - from;
    const run = count <= Math.min(this.sortAtOnce, SMALL_SORT) ? this.sortedSmall(from, count) : this.sortedLarge(from, count);
    this.mergeIn(run);
  }

  /**
   * Entries [from, from + count) by their first words, for up to SMALL_SORT of them: one
   * native sort of each first word above its place in the run. The buckets of sortedLarge
   * cost 65,536 steps however few entries there are: 15 ms of a restore's first walk for
   * the 15,000 blobs of a small repository, where this takes 1 ms.
   */
  private sortedSmall(from: number, count: number): Uint32Array<ArrayBuffer> {
    const keys = new Float64Array(count);
    for (let i = 0; i < count; i++) keys[i] = this.word0(from + i) * SMALL_SORT + i;
    keys.sort();
    const run = new Uint32Array(count);
    for (let i = 0; i < count; i++) run[i] = from + (keys[i]! % SMALL_SORT);
    return run;
  }

  /**
   * Entries [from, from + count) by their first words, however many, in place of one array
   * (an opening repository's ten million entries need no second one): placed by the first
   * word's top 16 bits, each such bucket (150 entries at ten million) ordered by its low 16
   * bits with a native sort of numbers.
   */
  private sortedLarge(from: number, count: number): Uint32Array<ArrayBuffer> {
    const starts = new Uint32Array(65_537);
    for (let n = from; n < this.entries; n++) starts[(this.word0(n) >>> 16) + 1]!++;
    let largest = 0;
    for (let b = 1; b <= 65_536; b++) {
      largest = Math.max(largest, starts[b]!);
      starts[b]! += starts[b - 1]!;
    }
    const run = new Uint32Array(count);
    const next = starts.slice(0, 65_536);
    for (let n = from; n < this.entries; n++) run[next[this.word0(n) >>> 16]!++] = n;
    // Low 16 bits above the entry number (below 2^32): 48 bits, exact in a double.
    const keys = new Float64Array(largest);
    for (let b = 0; b < 65_536; b++) {
      const start = starts[b]!;
      const size = starts[b + 1]! - start;
      if (size < 2) continue;
      for (let i = 0; i < size; i++) keys[i] = (this.word0(run[start + i]!) & 0xffff) * 4_294_967_296 + run[start + i]!;
      keys.subarray(0, size).sort();
      for (let i = 0; i < size; i++) run[start + i] = keys[i]! % 4_294_967_296;
    }
    return run;
  }

  /** A run of new entries ordered by their first words, ordered by whole ids and merged into `sorted`. */
  private mergeIn(run: Uint32Array<ArrayBuffer>): void {
    const count = run.length;
    // Equal first words (a few thousand in ten million): ordered by the whole id, then by entry.
    for (let i = 0; i < count; ) {
      let j = i + 1;
      while (j < count && this.word0(run[j]!) === this.word0(run[i]!)) j++;
      if (j - i > 1) run.subarray(i, j).sort((a, b) => this.compare(a, b) || a - b);
      i = j;
    }
    const merged = this.sortedUpTo === 0 ? run : new Uint32Array(this.sortedUpTo + count);
    let a = 0;
    let b = 0;
    let out = 0;
    while (a < this.sortedUpTo && b < count) merged[out++] = this.compare(this.sorted[a]!, run[b]!) <= 0 ? this.sorted[a++]! : run[b++]!;
    while (a < this.sortedUpTo) merged[out++] = this.sorted[a++]!;
    while (b < count) merged[out++] = run[b++]!;
    this.sorted = merged;
    this.sortedUpTo = this.entries;
    this.mappedUpTo = this.entries;
    this.recent = new Map();
    this.fanout.fill(0);
    for (let i = 0; i < merged.length; i++) this.fanout[(this.word0(merged[i]!) >>> (32 - FANOUT_BITS)) + 1]!++;
    for (let f = 1; f < this.fanout.length; f++) this.fanout[f]! += this.fanout[f - 1]!;
  }

  private word0(n: number): number {
    return this.prefixes[n >>> SEGMENT_BITS]![(n & (SEGMENT - 1)) * PREFIX_WORDS]!;
  }

  /** Whole ids compared (see compareWith): the first halves in memory, the second halves (rarely needed) from the rows. */
  private compare(x: number, y: number): number {
    const xs = this.prefixes[x >>> SEGMENT_BITS]!;
    const ys = this.prefixes[y >>> SEGMENT_BITS]!;
    const xa = (x & (SEGMENT - 1)) * PREFIX_WORDS;
    const ya = (y & (SEGMENT - 1)) * PREFIX_WORDS;
    for (let w = 0; w < PREFIX_WORDS; w++) {
      const a = xs[xa + w]!;
      const b = ys[ya + w]!;
      if (a !== b) return a < b ? -1 : 1;
    }
    this.rows.read(x, this.row);
    this.rows.read(y, this.other);
    for (let w = 0; w < ID_WORDS - PREFIX_WORDS; w++) {
      const a = this.row[w]!;
      const b = this.other[w]!;
      if (a !== b) return a < b ? -1 : 1;
    }
    return 0;
  }

  private compareWith(x: number, q: Uint32Array): number {
    // Compared, not subtracted: a difference of two 32-bit words need not fit a small
    // integer, and V8 then allocates a number for it (1.5 MiB over 9,600 lookups).
    const xs = this.prefixes[x >>> SEGMENT_BITS]!;
    const xa = (x & (SEGMENT - 1)) * PREFIX_WORDS;
    for (let w = 0; w < PREFIX_WORDS; w++) {
      const a = xs[xa + w]!;
      const b = q[w]!;
      if (a !== b) return a < b ? -1 : 1;
    }
    this.rows.read(x, this.row);
    for (let w = 0; w < ID_WORDS - PREFIX_WORDS; w++) {
      const a = this.row[w]!;
      const b = q[PREFIX_WORDS + w]!;
      if (a !== b) return a < b ? -1 : 1;
    }
    return 0;
  }
}
