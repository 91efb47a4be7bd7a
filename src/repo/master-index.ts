import { IntegrityError } from '../util/errors.js';
import { BlobMarks } from './blob-marks.js';
import { BlobTable, MAX_PACKS, packWord } from './blob-table.js';
import { CLOSE_BRACE, CLOSE_BRACKET, COMMA, LayoutScanner, OTHER_LAYOUT } from './format/layout-scanner.js';
import type { IndexEntry, PackedBlob } from './format/pack.js';

export type { IndexEntry };

type IndexedBlob = [id: string, type: 'd' | 't', offset: number, length: number, rawLength: number, compressed: 0 | 1];

/** An index file: packs and the blobs in them. `supersedes` names index files it replaces (written by prune). */
export interface IndexFile {
  version: 1;
  supersedes: string[];
  packs: Array<{ id: string; blobs: IndexedBlob[] }>;
}

/** Bytes of the index file JSON that the layout scanner tells apart. */
const [DATA, TREE, NOT_COMPRESSED, COMPRESSED] = ['d', 't', '0', '1'].map((c) => c.charCodeAt(0)) as [number, number, number, number];

/** The most blobs one index file lists: a rewritten index is split into files of this size. */
export const MAX_BLOBS_PER_INDEX_FILE = 50_000;

export function encodeIndexFile(packs: Iterable<[string, PackedBlob[]]>, supersedes: string[] = []): IndexFile {
  return {
    version: 1,
    supersedes,
    packs: [...packs].map(([id, blobs]) => ({
      id,
      blobs: blobs.map((b) => [b.id, b.type === 'data' ? 'd' : 't', b.offset, b.length, b.rawLength, b.compressed ? 1 : 0]),
    })),
  };
}

/**
 * A whole index (prune's, repair's) as index files of at most MAX_BLOBS_PER_INDEX_FILE
 * blobs, one at a time as the caller stores them: one file of ten million blobs would be a gigabyte of JSON, more than one string
 * can hold. Only the last names the files it supersedes: until it is stored, the old files
 * still count, and the earlier new ones only repeat what they list.
 */
export function* encodeIndexFiles(packs: Iterable<[string, PackedBlob[]]>, supersedes: string[] = []): Generator<IndexFile> {
  let current: Array<[string, PackedBlob[]]> = [];
  let blobs = 0;
  for (const pack of packs) {
    if (blobs > 0 && blobs + pack[1].length > MAX_BLOBS_PER_INDEX_FILE) {
      yield encodeIndexFile(current);
      current = [];
      blobs = 0;
    }
    current.push(pack);
    blobs += pack[1].length;
  }
  yield encodeIndexFile(current, supersedes);
}

/** Where the index lists a pack, and whether any listing still counts. */
interface PackListing {
  number: number;
  first: number;
  count: number;
  /** index files listing it that no other file supersedes (a pack stored by this process counts as one) */
  listings: number;
}

/**
 * The union of all index files in memory: blob id -> where it is stored, in a compact
 * table (BlobTable). Packs that a deletion record names (prune's first phase) are "doomed":
 * still readable, but a blob found only there is not there for a writer to deduplicate
 * against (see BlobWriter.has). Packs listed only by index files that another file
 * supersedes are withdrawn: prune may have deleted them.
 */
export class MasterIndex {
  private readonly table: BlobTable;
  private readonly packIds: string[] = [];
  private readonly packsById = new Map<string, PackListing>();
  private readonly doomed = new Set<string>();
  private readonly withdrawn = new Set<number>();
  /** per index file, the packs it lists */
  private readonly fileListings = new Map<string, number[]>();

  /** `spillAbove`, `sortAtOnce`: see BlobTable (tests make them small). */
  constructor(options: { spillAbove?: number; sortAtOnce?: number } = {}) {
    this.table = new BlobTable(options.spillAbove, options.sortAtOnce);
  }

  /** Where the table keeps most of each blob's entry (see BlobTable). */
  get rowsIn(): 'memory' | 'file' {
    return this.table.rowsIn;
  }

  /** A pack and its blobs; `indexFile` is the index file listing it, none for a pack stored here. */
  addPack(packId: string, blobs: readonly PackedBlob[], indexFile?: string): void {
    this.addListing(packId, indexFile, (table, pack) => {
      for (const b of blobs) table.append(b.id, { pack, tree: b.type === 'tree', compressed: b.compressed, offset: b.offset, length: b.length, rawLength: b.rawLength });
    });
  }

  /** The packs of an index file as read from the repository; an IntegrityError when it is not one. */
  addIndexFile(name: string, file: IndexFile): void {
    if (file?.version !== 1 || !Array.isArray(file.packs)) throw new IntegrityError(`index ${name} has an unknown format`);
    for (const p of file.packs) {
      if (typeof p?.id !== 'string' || !Array.isArray(p.blobs)) throw new IntegrityError(`index ${name} has an unknown format`);
    }
    for (const p of file.packs) {
      this.addListing(p.id, name, (table, pack) => {
        for (const [id, type, offset, length, rawLength, compressed] of p.blobs) {
          if (!table.append(id, { pack, tree: type === 't', compressed: compressed === 1, offset, length, rawLength })) {
            throw new IntegrityError(`index ${name} lists a blob id that is not one: ${String(id).slice(0, 80)}`);
          }
        }
      });
    }
  }

  /**
   * An index file's JSON read straight from its bytes, as its writer lays it out
   * (JSON.stringify of encodeIndexFile's value): no string per blob, no object, no garbage
   * (parsing 200 files of 50,000 blobs made gigabytes of it). `superseding` gets the files
   * this one supersedes first, and answers whether to add this one. 'other' when the bytes
   * are laid out otherwise (then nothing of the file is added: parse it and addIndexFile).
   */
  addIndexFileJson(name: string, json: Uint8Array, superseding: (ids: string[]) => boolean): 'added' | 'skipped' | 'other' {
    const scan = new LayoutScanner(json);
    try {
      scan.literal('{"version":1,"supersedes":[');
      const supersedes: string[] = [];
      if (!scan.next(CLOSE_BRACKET)) {
        do supersedes.push(scan.string());
        while (scan.next(COMMA));
        scan.literal(']');
      }
      scan.literal(',"packs":[');
      if (!superseding(supersedes)) return 'skipped';
      if (!scan.next(CLOSE_BRACKET)) {
        do {
          scan.literal('{"id":');
          const packId = scan.string();
          scan.literal(',"blobs":[');
          // A pack known already (another index file lists it too) is stepped over.
          const readBlobs = (table: BlobTable | undefined, pack: number) => {
            if (scan.next(CLOSE_BRACKET)) return;
            do {
              scan.literal('["');
              const idAt = scan.at;
              scan.skip(64);
              scan.literal('","');
              const tree = scan.oneOf(DATA, TREE) === TREE;
              scan.literal('",');
              const offset = scan.integer();
              scan.expect(COMMA);
              const length = scan.integer();
              scan.expect(COMMA);
              const rawLength = scan.integer();
              scan.expect(COMMA);
              const compressed = scan.oneOf(NOT_COMPRESSED, COMPRESSED) === COMPRESSED;
              scan.expect(CLOSE_BRACKET);
              if (table && !table.appendHex(json, idAt, packWord(pack, tree, compressed), offset, length, rawLength)) throw OTHER_LAYOUT;
            } while (scan.next(COMMA));
            scan.expect(CLOSE_BRACKET);
          };
          if (this.packsById.has(packId)) readBlobs(undefined, 0);
          this.addListing(packId, name, readBlobs);
          scan.expect(CLOSE_BRACE);
        } while (scan.next(COMMA));
        scan.expect(CLOSE_BRACKET);
      }
      scan.expect(CLOSE_BRACE);
      if (scan.at !== json.length) throw OTHER_LAYOUT;
      return 'added';
    } catch (err) {
      if (err !== OTHER_LAYOUT) throw err;
      this.supersede(name);
      return 'other';
    }
  }

  private addListing(packId: string, indexFile: string | undefined, append: (table: BlobTable, pack: number) => void): void {
    let listing = this.packsById.get(packId);
    if (!listing) {
      if (this.packIds.length >= MAX_PACKS) throw new IntegrityError(`the index lists more than ${MAX_PACKS} packs`);
      listing = { number: this.packIds.length, first: this.table.size, count: 0, listings: 0 };
      try {
        append(this.table, listing.number);
      } catch (err) {
        // Nothing of a pack whose listing is damaged.
        this.table.truncate(listing.first);
        throw err;
      }
      listing.count = this.table.size - listing.first;
      this.packIds.push(packId);
      this.packsById.set(packId, listing);
    }
    listing.listings++;
    this.withdrawn.delete(listing.number);
    if (indexFile !== undefined) {
      const listed = this.fileListings.get(indexFile);
      if (listed) listed.push(listing.number);
      else this.fileListings.set(indexFile, [listing.number]);
    }
  }

  /**
   * An index file another one supersedes: its packs no longer count, unless a file that
   * still counts lists them too.
   */
  supersede(indexFile: string): void {
    const packs = this.fileListings.get(indexFile);
    if (!packs) return;
    this.fileListings.delete(indexFile);
    for (const number of packs) {
      const listing = this.packsById.get(this.packIds[number]!)!;
      if (--listing.listings === 0) this.withdrawn.add(number);
    }
  }

  /** Packs prune means to delete: other copies of their blobs are preferred. */
  doom(packIds: Iterable<string>): void {
    for (const id of packIds) this.doomed.add(id);
  }

  isDoomed(packId: string): boolean {
    return this.doomed.has(packId);
  }

  /** Whether a copy of the blob is listed (as get() would find one, without making its entry: a no-change backup asks for every file's blobs). */
  has(id: string): boolean {
    for (const n of this.table.find(id)) if (!this.withdrawn.has(this.table.packOf(n))) return true;
    return false;
  }

  /** Where a blob is: its first copy in a pack prune keeps, else its first copy. */
  get(id: string): IndexEntry | undefined {
    const chosen = this.chosenEntry(id);
    if (chosen === undefined) return undefined;
    const e = this.table.entry(chosen);
    return { id, type: e.tree ? 'tree' : 'data', offset: e.offset, length: e.length, rawLength: e.rawLength, compressed: e.compressed, pack: this.packIds[e.pack]! };
  }

  /** The pack get() would name for `id`, without making its entry (a backup asks for every unchanged file's blobs). */
  packOf(id: string): string | undefined {
    const chosen = this.chosenEntry(id);
    return chosen === undefined ? undefined : this.packIds[this.table.packOf(chosen)];
  }

  /** The entry get() describes: the blob's first copy in a pack prune keeps, else its first copy. */
  private chosenEntry(id: string): number | undefined {
    let chosen: number | undefined;
    for (const n of this.table.find(id)) {
      const pack = this.table.packOf(n);
      if (this.withdrawn.has(pack)) continue;
      if (!this.doomed.has(this.packIds[pack]!)) return n;
      chosen ??= n;
    }
    return chosen;
  }

  /** Entries in the table (a blob stored twice counts twice). */
  get blobCount(): number {
    return this.table.size;
  }

  hasPack(packId: string): boolean {
    const listing = this.packsById.get(packId);
    return listing !== undefined && !this.withdrawn.has(listing.number);
  }

  /** A pack's blobs as the index lists them. */
  packBlobs(packId: string): PackedBlob[] | undefined {
    return this.packEntries(packId)?.blobs;
  }

  /** A pack's blobs, and the entry number of the first (they follow it in order): what BlobMarks count. */
  packEntries(packId: string): { first: number; blobs: PackedBlob[] } | undefined {
    const listing = this.packsById.get(packId);
    if (!listing || this.withdrawn.has(listing.number)) return undefined;
    const blobs = this.table
      .entriesIn(listing.first, listing.count)
      .map((e): PackedBlob => ({ id: e.id, type: e.tree ? 'tree' : 'data', offset: e.offset, length: e.length, rawLength: e.rawLength, compressed: e.compressed }));
    return { first: listing.first, blobs };
  }

  /** Where a pack's blobs end (its header follows them), by the index; undefined for a pack not listed. */
  packBlobsEnd(packId: string): number | undefined {
    const range = this.packRange(packId);
    return range && this.table.endOf(range.first, range.count);
  }

  /** Where a pack's entries are: numbers [first, first + count); none for a pack not listed (or withdrawn). */
  packRange(packId: string): { first: number; count: number } | undefined {
    const listing = this.packsById.get(packId);
    if (!listing || this.withdrawn.has(listing.number)) return undefined;
    return { first: listing.first, count: listing.count };
  }

  /** The packs holding other copies of entry n's blob (withdrawn ones left out). */
  otherCopies(n: number): string[] {
    return this.table
      .find(this.table.id(n))
      .filter((m) => m !== n && !this.withdrawn.has(this.table.packOf(m)))
      .map((m) => this.packIds[this.table.packOf(m)]!);
  }

  /** Marks over the entries there are now (see BlobMarks). */
  marks(): BlobMarks {
    return new BlobMarks((id) => this.table.find(id), this.table.size);
  }

  /**
   * Each pack holding data blobs, with their stored and raw bytes (withdrawn packs left
   * out); undefined past `mostBlobs` entries, where reading every row would cost more
   * than the answer is worth to its asker.
   */
  dataPacks(mostBlobs: number): Array<{ pack: string; stored: number; raw: number }> | undefined {
    if (this.table.size > mostBlobs) return undefined;
    const out: Array<{ pack: string; stored: number; raw: number }> = [];
    for (const [pack, listing] of this.packsById) {
      if (this.withdrawn.has(listing.number)) continue;
      const { stored, raw } = this.table.dataBytesIn(listing.first, listing.count);
      if (stored > 0) out.push({ pack, stored, raw });
    }
    return out;
  }

  /** Every pack the index lists (withdrawn ones left out). */
  packIdsListed(): string[] {
    return this.packIds.filter((id) => this.hasPack(id));
  }

  /**
   * Every pack and its blobs, one pack at a time (the whole index as objects would take
   * gigabytes at ten million blobs): for a rewritten index, and for tests.
   */
  *eachPack(): Generator<[string, PackedBlob[]]> {
    for (const packId of this.packIds) {
      const blobs = this.packBlobs(packId);
      if (blobs) yield [packId, blobs];
    }
  }
}
