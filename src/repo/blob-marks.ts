/**
 * A set of blob ids as one bit per index entry (prune's "used by a kept snapshot", and its
 * trees walked): a Set of id strings took some 100 bytes a blob, gigabytes at ten million.
 * Marking an id marks every entry holding it (a blob stored in two packs is used in both),
 * as a Set of ids would answer for each. Ids the index does not hold (a blob a damaged
 * index lost) are kept as strings: there are few.
 *
 * The marks cover the entries the index had when they were made: an entry appended later
 * would read as unmarked, and an unmarked blob is one prune may let go. Asking about one
 * throws instead, so the caller must index everything (unindexed packs too) first.
 */
export class BlobMarks {
  private readonly bits: Uint8Array;
  private readonly notIndexed = new Set<string>();

  constructor(
    private readonly find: (id: string) => readonly number[],
    readonly entries: number,
  ) {
    this.bits = new Uint8Array(Math.ceil(entries / 8));
  }

  /** Marks `id`; true if it was not marked before. */
  mark(id: string): boolean {
    const found = this.find(id);
    if (found.length === 0) {
      if (this.notIndexed.has(id)) return false;
      this.notIndexed.add(id);
      return true;
    }
    let fresh = false;
    for (const n of found) {
      this.check(n);
      const bit = 1 << (n & 7);
      if ((this.bits[n >>> 3]! & bit) === 0) {
        this.bits[n >>> 3] |= bit;
        fresh = true;
      }
    }
    return fresh;
  }

  /** Whether `id` was marked. */
  has(id: string): boolean {
    const found = this.find(id);
    return found.length === 0 ? this.notIndexed.has(id) : found.some((n) => this.isMarked(n));
  }

  isMarked(n: number): boolean {
    this.check(n);
    return (this.bits[n >>> 3]! & (1 << (n & 7))) !== 0;
  }

  /** Marked entries among [first, first + count). */
  countIn(first: number, count: number): number {
    let marked = 0;
    for (let n = first; n < first + count; n++) if (this.isMarked(n)) marked++;
    return marked;
  }

  private check(n: number): void {
    if (n >= this.entries) throw new Error(`index entry ${n} was added after the blob marks were made (${this.entries} entries): it would read as unused`);
  }
}
