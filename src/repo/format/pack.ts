import { IntegrityError } from '../../util/errors.js';
import { objectHash, seal, unseal } from './crypto.js';

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

/**
 * Memory for packs, reused from one pack to the next. A pack used to keep the blobs it
 * was handed (parts of the encoder threads' batch buffers) until it was stored; those
 * buffers then lived long enough to reach V8's old generation, and were freed only by
 * its rare full collections: a backup of 395 MiB grew to 300-330 MiB of memory, against
 * 200-230 MiB with a full collection forced every 100 ms (docs/performance.md, sixth
 * session). Copied into a pack's own memory as they arrive, they die young instead.
 */
export class PackMemory {
  private readonly free: Buffer[] = [];

  constructor(
    /** bytes a new pack's memory starts with: the pack size and room for its last blob, header and trailer */
    private readonly initialBytes: number,
    /** memories kept for reuse: the packs filled and stored at once (two types filling, uploads in flight) */
    private readonly keep = 4,
  ) {}

  /** Memory of at least `bytes`: a kept one when one is large enough. */
  take(bytes = this.initialBytes): Buffer {
    const at = this.free.findIndex((b) => b.length >= bytes);
    if (at >= 0) return this.free.splice(at, 1)[0]!;
    // Not pooled by Node (allocUnsafe's pool is for small buffers), never zeroed: every byte is written before it is read.
    return Buffer.allocUnsafeSlow(Math.max(bytes, this.initialBytes));
  }

  /** Memory back for the next pack; the caller no longer uses it. */
  give(buffer: Buffer): void {
    if (this.free.length < this.keep) this.free.push(buffer);
  }
}

export class PackBuilder {
  private readonly entries: IndexEntry[] = [];
  private bytes = 0;
  private buffer: Buffer | undefined;

  constructor(private readonly memory: PackMemory) {}

  get size(): number {
    return this.bytes;
  }

  get count(): number {
    return this.entries.length;
  }

  /** Adds a blob; its bytes are copied, so `stored` may be reused or dropped at once. */
  add(id: string, type: BlobType, rawLength: number, compressed: boolean, stored: Uint8Array): void {
    // One object per blob, all of one shape, that the index keeps as it is: a backup adds one per chunk.
    this.entries.push({ id, type, offset: this.bytes, length: stored.length, rawLength, compressed, pack: '' });
    this.reserve(this.bytes + stored.length);
    this.buffer!.set(stored, this.bytes);
    this.bytes += stored.length;
  }

  private reserve(bytes: number): void {
    const buffer = this.buffer ?? (this.buffer = this.memory.take());
    if (buffer.length >= bytes) return;
    // A large last blob, or the header of many small ones: the grown memory serves later packs too.
    const larger = this.memory.take(Math.max(bytes, Math.ceil(buffer.length * 1.25)));
    buffer.copy(larger, 0, 0, this.bytes);
    this.memory.give(buffer);
    this.buffer = larger;
  }

  /**
   * The finished pack: its id (the hash of its bytes), its bytes (blobs, sealed header,
   * trailer) and its blobs as index entries. The bytes are the builder's memory: call
   * release() once they are stored, and do not use them after.
   */
  finish(encryptionKey: Buffer | null): { id: string; bytes: Buffer; blobs: IndexEntry[]; release: () => void } {
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
    const blobBytes = this.bytes;
    this.reserve(blobBytes + sealedHeader.length + TRAILER_BYTES);
    const buffer = this.buffer!;
    sealedHeader.copy(buffer, blobBytes);
    const trailerAt = blobBytes + sealedHeader.length;
    buffer.writeUInt32LE(sealedHeader.length, trailerAt);
    PACK_MAGIC.copy(buffer, trailerAt + 4);
    const bytes = buffer.subarray(0, trailerAt + TRAILER_BYTES);
    const id = objectHash(bytes);
    for (const e of this.entries) e.pack = id;
    this.buffer = undefined;
    this.bytes = 0;
    return { id, bytes, blobs: this.entries, release: () => this.memory.give(buffer) };
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
