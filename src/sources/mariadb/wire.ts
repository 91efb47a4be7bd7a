import type { Duplex } from 'node:stream';

/**
 * Packet framing of the MySQL/MariaDB client/server protocol: a 3-byte little-endian
 * length, a sequence number, then the payload. A payload of 16 MiB - 1 or more continues
 * in the following packets.
 */
export const MAX_PACKET_PAYLOAD = 0xffffff;

/** Received bytes waiting to be parsed: enough to keep the server streaming, bounded so a slow consumer pauses the socket. */
const HIGH_WATER = 8 * 1024 * 1024;

export class ConnectionClosedError extends Error {}

/**
 * Reads packets from a socket. `next()` is synchronous and returns null when a whole
 * packet has not arrived yet, so a result set of millions of rows is parsed without an
 * await per row; `wait()` resolves when more bytes arrive. A returned payload is only
 * valid until the following call (it may point into the receive buffer).
 */
export class PacketReader {
  private head: Buffer = Buffer.alloc(0);
  private offset = 0;
  private readonly queue: Buffer[] = [];
  private queuedBytes = 0;
  private waiter: (() => void) | undefined;
  private ended: Error | undefined;
  sequence = 0;

  private readonly onData = (chunk: Buffer) => {
    this.queue.push(chunk);
    this.queuedBytes += chunk.length;
    if (this.queuedBytes > HIGH_WATER) this.socket.pause();
    const w = this.waiter;
    this.waiter = undefined;
    w?.();
  };
  private readonly onEnd = () => this.finish(new ConnectionClosedError('the server closed the connection'));
  private readonly onError = (err: Error) => this.finish(err);

  constructor(private readonly socket: Duplex) {
    socket.on('data', this.onData);
    socket.on('end', this.onEnd);
    socket.on('close', this.onEnd);
    socket.on('error', this.onError);
  }

  /** Stop reading from this socket (before handing it to TLS). */
  detach(): void {
    this.socket.off('data', this.onData);
    this.socket.off('end', this.onEnd);
    this.socket.off('close', this.onEnd);
    this.socket.off('error', this.onError);
  }

  private finish(err: Error): void {
    this.ended ??= err;
    this.wake();
  }

  private wake(): void {
    const w = this.waiter;
    this.waiter = undefined;
    w?.();
  }

  /**
   * Resolves when more bytes have arrived; rejects when the connection is gone. Called only
   * after next() returned null, so whatever is queued is not yet a whole packet.
   */
  wait(): Promise<void> {
    if (this.ended) return Promise.reject(this.ended);
    // A packet larger than the high-water mark needs more than a paused socket holds.
    if (this.socket.isPaused()) this.socket.resume();
    return new Promise((resolve, reject) => {
      this.waiter = () => (this.ended ? reject(this.ended) : resolve());
    });
  }

  /** Make at least `n` unread bytes contiguous in `head`, or return false. */
  private ensure(n: number): boolean {
    let available = this.head.length - this.offset;
    if (available >= n) return true;
    if (available + this.queuedBytes < n) return false;
    const parts: Buffer[] = [this.head.subarray(this.offset)];
    while (available < n) {
      const chunk = this.queue.shift()!;
      this.queuedBytes -= chunk.length;
      parts.push(chunk);
      available += chunk.length;
    }
    this.head = parts.length === 2 && parts[0]!.length === 0 ? parts[1]! : Buffer.concat(parts, available);
    this.offset = 0;
    if (this.queuedBytes <= HIGH_WATER / 2 && this.socket.isPaused()) this.socket.resume();
    return true;
  }

  /** The next whole packet's payload, or null when it has not fully arrived. */
  next(): Buffer | null {
    if (!this.ensure(4)) return null;
    const length = this.head.readUIntLE(this.offset, 3);
    if (length === MAX_PACKET_PAYLOAD) return this.nextLong();
    if (!this.ensure(4 + length)) return null;
    this.sequence = (this.head[this.offset + 3]! + 1) & 0xff;
    const start = this.offset + 4;
    this.offset = start + length;
    return this.head.subarray(start, start + length);
  }

  /** A payload split over several packets: rows with a value of 16 MiB or more. */
  private nextLong(): Buffer | null {
    // Measure the whole chain first so a partial chain leaves the reader untouched.
    let total = 0;
    let headers = 0;
    for (;;) {
      if (!this.ensure(headers * 4 + total + 4)) return null;
      const length = this.head.readUIntLE(this.offset + headers * 4 + total, 3);
      headers++;
      if (!this.ensure(headers * 4 + total + length)) return null;
      total += length;
      if (length < MAX_PACKET_PAYLOAD) break;
    }
    const payload = Buffer.allocUnsafe(total);
    let copied = 0;
    for (let i = 0; i < headers; i++) {
      const length = this.head.readUIntLE(this.offset, 3);
      this.sequence = (this.head[this.offset + 3]! + 1) & 0xff;
      this.head.copy(payload, copied, this.offset + 4, this.offset + 4 + length);
      copied += length;
      this.offset += 4 + length;
    }
    return payload;
  }

  async read(): Promise<Buffer> {
    for (;;) {
      const packet = this.next();
      if (packet) return packet;
      await this.wait();
    }
  }
}

/** Frame a payload as one or more packets starting at `sequence`; returns the next sequence number. */
export function framePackets(payload: Buffer, sequence: number, out: Buffer[]): number {
  let offset = 0;
  for (;;) {
    const length = Math.min(MAX_PACKET_PAYLOAD, payload.length - offset);
    const header = Buffer.allocUnsafe(4);
    header.writeUIntLE(length, 0, 3);
    header[3] = sequence;
    sequence = (sequence + 1) & 0xff;
    out.push(header, payload.subarray(offset, offset + length));
    offset += length;
    if (length < MAX_PACKET_PAYLOAD) return sequence;
  }
}

/** Cursor over a payload for the protocol's integer and string encodings. */
export class PayloadCursor {
  constructor(
    readonly buf: Buffer,
    public pos = 0,
  ) {}

  get remaining(): number {
    return this.buf.length - this.pos;
  }

  u8(): number {
    return this.buf[this.pos++]!;
  }
  u16(): number {
    const v = this.buf.readUInt16LE(this.pos);
    this.pos += 2;
    return v;
  }
  u32(): number {
    const v = this.buf.readUInt32LE(this.pos);
    this.pos += 4;
    return v;
  }
  skip(n: number): void {
    this.pos += n;
  }
  bytes(n: number): Buffer {
    const b = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return b;
  }
  rest(): Buffer {
    return this.bytes(this.remaining);
  }

  /** A length-encoded integer; null for the NULL marker 0xfb. */
  lenencInt(): number | null {
    const first = this.u8();
    if (first < 0xfb) return first;
    if (first === 0xfb) return null;
    if (first === 0xfc) return this.u16();
    if (first === 0xfd) {
      const v = this.buf.readUIntLE(this.pos, 3);
      this.pos += 3;
      return v;
    }
    const v = this.buf.readBigUInt64LE(this.pos);
    this.pos += 8;
    return Number(v);
  }

  lenencBytes(): Buffer | null {
    const n = this.lenencInt();
    return n === null ? null : this.bytes(n);
  }

  lenencString(): string {
    return (this.lenencBytes() ?? Buffer.alloc(0)).toString('utf8');
  }

  nulString(): string {
    const end = this.buf.indexOf(0, this.pos);
    const stop = end < 0 ? this.buf.length : end;
    const s = this.buf.toString('utf8', this.pos, stop);
    this.pos = end < 0 ? stop : stop + 1;
    return s;
  }
}

export function lenencInt(n: number): Buffer {
  if (n < 0xfb) return Buffer.of(n);
  if (n < 0x10000) return Buffer.of(0xfc, n & 0xff, n >> 8);
  if (n < 0x1000000) return Buffer.of(0xfd, n & 0xff, (n >> 8) & 0xff, n >> 16);
  const b = Buffer.alloc(9);
  b[0] = 0xfe;
  b.writeBigUInt64LE(BigInt(n), 1);
  return b;
}
