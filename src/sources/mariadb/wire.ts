import type { Duplex } from 'node:stream';

/**
 * Packet framing of the MySQL/MariaDB client/server protocol: a 3-byte little-endian
 * length, a sequence number, then the payload. A payload of 16 MiB - 1 or more continues
 * in the following packets.
 */
export const MAX_PACKET_PAYLOAD = 0xffffff;

/** Received bytes waiting to be parsed: enough to keep the server streaming, bounded so a slow consumer pauses the socket. */
const HIGH_WATER = 8 * 1024 * 1024;
const INITIAL_BUFFER = 1024 * 1024;

export class ConnectionClosedError extends Error {}

/**
 * Reads packets from a socket into one reusable buffer and parses them in place: a result
 * set of millions of rows costs no allocation and no await per row. `nextPayload()` is
 * synchronous and says whether a whole packet was there; its bytes are then
 * `payload[payloadStart, payloadEnd)`, valid until control returns to the event loop.
 */
export class PacketReader {
  private buf = Buffer.allocUnsafe(INITIAL_BUFFER);
  private start = 0;
  private end = 0;
  private waiter: (() => void) | undefined;
  private ended: Error | undefined;
  private paused = false;
  sequence = 0;
  payload: Buffer = this.buf;
  payloadStart = 0;
  payloadEnd = 0;

  private readonly onData = (chunk: Buffer) => {
    if (this.end + chunk.length > this.buf.length) {
      const unread = this.end - this.start;
      if (unread + chunk.length > this.buf.length) {
        const grown = Buffer.allocUnsafe(Math.max(this.buf.length, 2 * (unread + chunk.length)));
        this.buf.copy(grown, 0, this.start, this.end);
        this.buf = grown;
      } else {
        this.buf.copyWithin(0, this.start, this.end);
      }
      this.start = 0;
      this.end = unread;
    }
    chunk.copy(this.buf, this.end);
    this.end += chunk.length;
    if (this.end - this.start > HIGH_WATER && !this.paused) {
      this.paused = true;
      this.socket.pause();
    }
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

  private resume(): void {
    if (!this.paused) return;
    this.paused = false;
    this.socket.resume();
  }

  private finish(err: Error): void {
    this.ended ??= err;
    const w = this.waiter;
    this.waiter = undefined;
    w?.();
  }

  /**
   * Resolves when more bytes have arrived; rejects when the connection is gone. Called only
   * after nextPayload() found no whole packet.
   */
  wait(): Promise<void> {
    if (this.ended) return Promise.reject(this.ended);
    // A packet larger than the high-water mark needs more than a paused socket holds.
    this.resume();
    return new Promise((resolve, reject) => {
      this.waiter = () => (this.ended ? reject(this.ended) : resolve());
    });
  }

  /** Parse the next whole packet, if it is there, into payload/payloadStart/payloadEnd. */
  nextPayload(): boolean {
    const buf = this.buf;
    const at = this.start;
    if (this.end - at < 4) return false;
    const length = buf[at]! | (buf[at + 1]! << 8) | (buf[at + 2]! << 16);
    if (length === MAX_PACKET_PAYLOAD) return this.nextLong();
    if (this.end - at < 4 + length) return false;
    this.sequence = (buf[at + 3]! + 1) & 0xff;
    this.payload = buf;
    this.payloadStart = at + 4;
    this.payloadEnd = at + 4 + length;
    this.start = this.payloadEnd;
    if (this.start === this.end) this.start = this.end = 0;
    if (this.paused && this.end - this.start <= HIGH_WATER / 2) this.resume();
    return true;
  }

  /** A payload split over several packets: rows with a value of 16 MiB or more. */
  private nextLong(): boolean {
    // Measure the whole chain first so a partial chain leaves the reader untouched.
    const buf = this.buf;
    let at = this.start;
    let total = 0;
    const pieces: Array<[number, number]> = [];
    for (;;) {
      if (this.end - at < 4) return false;
      const length = buf.readUIntLE(at, 3);
      if (this.end - at < 4 + length) return false;
      pieces.push([at + 4, at + 4 + length]);
      this.sequence = (buf[at + 3]! + 1) & 0xff;
      total += length;
      at += 4 + length;
      if (length < MAX_PACKET_PAYLOAD) break;
    }
    const payload = Buffer.allocUnsafe(total);
    let copied = 0;
    for (const [from, to] of pieces) copied += buf.copy(payload, copied, from, to);
    this.start = at;
    this.payload = payload;
    this.payloadStart = 0;
    this.payloadEnd = total;
    return true;
  }

  /** The next whole packet's payload as its own Buffer (for everything but the row stream). */
  async read(): Promise<Buffer> {
    while (!this.nextPayload()) await this.wait();
    return Buffer.from(this.payload.subarray(this.payloadStart, this.payloadEnd));
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
