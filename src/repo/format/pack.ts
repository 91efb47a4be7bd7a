import { IntegrityError } from '../../util/errors.js';
import { objectHashOfParts, seal, unseal } from './crypto.js';

export type BlobType = 'data' | 'tree';

/** Where a blob sits inside a pack. */
export interface PackedBlob {
  id: string;
  type: BlobType;
  offset: number;
  /** stored bytes (after compression and encryption) */
  length: number;
  /** bytes of the original content */
  rawLength: number;
  compressed: boolean;
}

/** Where a blob is stored: its pack and its place in it. */
export interface IndexEntry extends PackedBlob {
  pack: string;
}

/**
 * Pack layout (see docs/format.md):
 *   blob 0 | blob 1 | ... | sealed header | u32le header length | "SVP1"
 * The header lists every blob (type, flags, stored length, raw length, id), so the index
 * can be rebuilt from packs alone.
 */
export const PACK_MAGIC = Buffer.from('SVP1', 'ascii');
const TRAILER_BYTES = 8;
const ENTRY_BYTES = 1 + 1 + 4 + 4 + 32;
const TYPE_CODES: Record<BlobType, number> = { data: 0, tree: 1 };
const FLAG_COMPRESSED = 1;

export class PackBuilder {
  private readonly parts: Buffer[] = [];
  private readonly entries: IndexEntry[] = [];
  private bytes = 0;
  /**
   * The first of the blobs added last that lie one after another in memory, as a batch
   * from an encoder thread does, and their length: they become one part. One part per
   * blob cost a hash update and a copy call each, 50,000 of them in a 1 GiB backup.
   */
  private run: Buffer | undefined;
  private runLength = 0;

  get size(): number {
    return this.bytes;
  }

  get count(): number {
    return this.entries.length;
  }

  add(id: string, type: BlobType, rawLength: number, compressed: boolean, stored: Buffer): void {
    // One object per blob, all of one shape, that the index keeps as it is: a backup adds one per chunk.
    this.entries.push({ id, type, offset: this.bytes, length: stored.length, rawLength, compressed, pack: '' });
    this.bytes += stored.length;
    const run = this.run;
    if (run !== undefined && stored.buffer === run.buffer && stored.byteOffset === run.byteOffset + this.runLength) {
      this.runLength += stored.length;
      return;
    }
    this.endRun();
    this.run = stored;
    this.runLength = stored.length;
  }

  private endRun(): void {
    const run = this.run;
    if (run === undefined) return;
    this.parts.push(this.runLength === run.length ? run : Buffer.from(run.buffer, run.byteOffset, this.runLength));
    this.run = undefined;
  }

  /**
   * The finished pack: its id (the hash of its bytes), its parts in order (the blobs, the
   * header, the trailer) and its blobs as index entries. Parts, not one buffer: a backend
   * that writes to a local file system writes them as they are, where a 16 MiB copy per
   * pack was a tenth of the main thread's time in a backup, most of it faulting in fresh
   * memory.
   */
  finish(encryptionKey: Buffer | null): { id: string; parts: Buffer[]; blobs: IndexEntry[] } {
    const header = Buffer.alloc(this.entries.length * ENTRY_BYTES);
    this.entries.forEach((e, i) => {
      const at = i * ENTRY_BYTES;
      header.writeUInt8(TYPE_CODES[e.type], at);
      header.writeUInt8(e.compressed ? FLAG_COMPRESSED : 0, at + 1);
      header.writeUInt32LE(e.length, at + 2);
      header.writeUInt32LE(e.rawLength, at + 6);
      header.write(e.id, at + 10, 'hex');
    });
    const sealedHeader = seal(encryptionKey, header);
    const trailer = Buffer.alloc(TRAILER_BYTES);
    trailer.writeUInt32LE(sealedHeader.length, 0);
    PACK_MAGIC.copy(trailer, 4);
    this.endRun();
    const parts = [...this.parts, sealedHeader, trailer];
    const id = objectHashOfParts(parts);
    for (const e of this.entries) e.pack = id;
    return { id, parts, blobs: this.entries };
  }
}

/** Length of the sealed header, read from a pack's last 8 bytes. */
export function headerLengthFromTrailer(trailer: Buffer, packId: string): number {
  if (trailer.length !== TRAILER_BYTES || !trailer.subarray(4).equals(PACK_MAGIC)) {
    throw new IntegrityError(`pack ${packId} is damaged: its trailer is not a stackvault pack trailer`);
  }
  return trailer.readUInt32LE(0);
}

export const PACK_TRAILER_BYTES = TRAILER_BYTES;

/** The blobs listed in a pack's header; `tail` holds the sealed header followed by the trailer. */
export function parsePackHeader(tail: Buffer, packSize: number, encryptionKey: Buffer | null, packId: string): PackedBlob[] {
  const headerLength = headerLengthFromTrailer(tail.subarray(tail.length - TRAILER_BYTES), packId);
  if (headerLength + TRAILER_BYTES > packSize || headerLength + TRAILER_BYTES > tail.length) {
    throw new IntegrityError(`pack ${packId} is damaged: header length ${headerLength} does not fit the pack`);
  }
  const sealed = tail.subarray(tail.length - TRAILER_BYTES - headerLength, tail.length - TRAILER_BYTES);
  const header = unseal(encryptionKey, sealed, `header of pack ${packId}`);
  if (header.length % ENTRY_BYTES !== 0) throw new IntegrityError(`pack ${packId} is damaged: header has a partial entry`);
  const blobs: PackedBlob[] = [];
  let offset = 0;
  for (let at = 0; at < header.length; at += ENTRY_BYTES) {
    const code = header.readUInt8(at);
    if (code !== 0 && code !== 1) throw new IntegrityError(`pack ${packId} is damaged: unknown blob type ${code}`);
    const length = header.readUInt32LE(at + 2);
    blobs.push({
      type: code === 0 ? 'data' : 'tree',
      compressed: (header.readUInt8(at + 1) & FLAG_COMPRESSED) !== 0,
      offset,
      length,
      rawLength: header.readUInt32LE(at + 6),
      id: header.toString('hex', at + 10, at + 10 + 32),
    });
    offset += length;
  }
  if (offset + headerLength + TRAILER_BYTES !== packSize) {
    throw new IntegrityError(`pack ${packId} is damaged: its header describes ${offset} bytes of blobs, the pack holds ${packSize - headerLength - TRAILER_BYTES}`);
  }
  return blobs;
}
