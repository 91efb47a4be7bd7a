import { createHash } from 'node:crypto';
import { IntegrityError } from '../../util/errors.js';
import type { ObjectFile } from '../backends/backend.js';
import { seal, unseal } from './crypto.js';

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

/**
 * A pack's bytes in memory reused from pack to pack (see PackMemory), handed to `put`
 * whole: for backends that take objects only whole.
 */
export class MemoryPackBody implements ObjectFile {
  private buffer: Buffer | undefined;
  private bytes = 0;

  constructor(
    private readonly memory: PackMemory,
    private readonly put: (key: string, data: Uint8Array) => Promise<{ created: boolean }>,
  ) {}

  append(bytes: Uint8Array): undefined {
    const buffer = this.reserve(this.bytes + bytes.length);
    buffer.set(bytes, this.bytes);
    this.bytes += bytes.length;
    return undefined;
  }

  private reserve(bytes: number): Buffer {
    const buffer = (this.buffer ??= this.memory.take());
    if (buffer.length >= bytes) return buffer;
    // A large last blob, or the header of many small ones: the grown memory serves later packs too.
    const larger = this.memory.take(Math.max(bytes, Math.ceil(buffer.length * 1.25)));
    buffer.copy(larger, 0, 0, this.bytes);
    this.memory.give(buffer);
    return (this.buffer = larger);
  }

  /** The bytes appended so far: the body's own memory, valid until store() or discard(). */
  get contents(): Buffer {
    return this.reserve(0).subarray(0, this.bytes);
  }

  async store(key: string): Promise<{ created: boolean }> {
    try {
      // Resolves once every attempt has ended: the memory may then serve the next pack.
      return await this.put(key, this.contents);
    } finally {
      await this.discard();
    }
  }

  async discard(): Promise<void> {
    if (this.buffer) this.memory.give(this.buffer);
    this.buffer = undefined;
  }
}

/**
 * Builds a pack from blobs as they come, into its body (memory, or a file of the
 * storage's own), hashing its bytes as they go.
 */
export class PackBuilder {
  private readonly entries: IndexEntry[] = [];
  private bytes = 0;
  private readonly hash = createHash('sha256');

  constructor(private readonly body: ObjectFile) {}

  get size(): number {
    return this.bytes;
  }

  get count(): number {
    return this.entries.length;
  }

  /**
   * Adds a blob. Its bytes are copied at once when this returns undefined; otherwise once
   * the promise resolves, and the caller leaves `stored` unchanged until then.
   */
  add(id: string, type: BlobType, rawLength: number, compressed: boolean, stored: Uint8Array): Promise<void> | undefined {
    // One object per blob, all of one shape, that the index keeps as it is: a backup adds one per chunk.
    this.entries.push({ id, type, offset: this.bytes, length: stored.length, rawLength, compressed, pack: '' });
    this.bytes += stored.length;
    this.hash.update(stored);
    return this.body.append(stored);
  }

  /** Drops the pack (a failed backup): its body's memory or file. */
  discard(): Promise<void> {
    return this.body.discard();
  }

  /**
   * The finished pack: its id (the hash of its bytes: blobs, sealed header, trailer), its
   * length, its blobs as index entries, and its body to store under the id's key (or
   * discard). Add nothing after.
   */
  async finish(encryptionKey: Buffer | null): Promise<{ id: string; length: number; blobs: IndexEntry[]; body: ObjectFile }> {
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
    for (const tail of [sealedHeader, trailer]) {
      this.hash.update(tail);
      await this.body.append(tail);
    }
    const id = this.hash.digest('hex');
    for (const e of this.entries) e.pack = id;
    return { id, length: this.bytes + sealedHeader.length + TRAILER_BYTES, blobs: this.entries, body: this.body };
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
