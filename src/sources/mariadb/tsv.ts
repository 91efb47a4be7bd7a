import type { ColumnDef } from './connection.js';

/**
 * Table data is stored in the text format of SELECT ... INTO OUTFILE / LOAD DATA with
 * their defaults: fields end in a tab, rows in a newline, NULL is \N, and backslash,
 * tab, newline and NUL inside a value are escaped with a backslash. Values are the
 * column's raw bytes (the dump reads with character_set_results = binary), so every
 * character set survives unchanged, and a person can load a part with LOAD DATA by hand.
 */

/** Column types whose text form is digits, signs, dots, colons, dashes and spaces: never escaped. */
const PLAIN_TYPES = new Set([
  0, // DECIMAL
  1, // TINY
  2, // SHORT
  3, // LONG
  4, // FLOAT
  5, // DOUBLE
  7, // TIMESTAMP
  8, // LONGLONG
  9, // INT24
  10, // DATE
  11, // TIME
  12, // DATETIME
  13, // YEAR
  14, // NEWDATE
  246, // NEWDECIMAL
]);

const TAB = 9;
const NEWLINE = 10;
const BACKSLASH = 92;
const OUTPUT_BLOCK = 1024 * 1024;

export class TsvEncoder {
  private readonly plain: boolean[];
  private out = Buffer.allocUnsafe(OUTPUT_BLOCK);
  private pos = 0;
  rows = 0;
  bytes = 0;

  constructor(columns: ColumnDef[]) {
    this.plain = columns.map((c) => PLAIN_TYPES.has(c.type));
  }

  get buffered(): number {
    return this.pos;
  }

  private reserve(n: number): void {
    if (this.pos + n <= this.out.length) return;
    const grown = Buffer.allocUnsafe(Math.max(OUTPUT_BLOCK, this.pos + n));
    this.out.copy(grown, 0, 0, this.pos);
    this.out = grown;
  }

  /** Append one row packet of the text protocol, packet[p, end); true when a block of output is ready. */
  addRow(packet: Buffer, p: number, end: number): boolean {
    const plain = this.plain;
    // Worst case: every byte escaped, plus separators and length prefixes shrinking to nothing.
    this.reserve((end - p) * 2 + plain.length);
    const out = this.out;
    let o = this.pos;
    for (let col = 0; col < plain.length; col++) {
      if (col > 0) out[o++] = TAB;
      const first = packet[p++]!;
      if (first === 0xfb) {
        out[o++] = BACKSLASH;
        out[o++] = 78; // N
        continue;
      }
      let len: number;
      if (first < 0xfb) len = first;
      else if (first === 0xfc) {
        len = packet[p]! | (packet[p + 1]! << 8);
        p += 2;
      } else if (first === 0xfd) {
        len = packet[p]! | (packet[p + 1]! << 8) | (packet[p + 2]! << 16);
        p += 3;
      } else {
        len = packet.readUInt32LE(p) + packet.readUInt32LE(p + 4) * 2 ** 32;
        p += 8;
      }
      const stop = p + len;
      if (plain[col]) {
        // Numbers and dates are short: a loop beats the cost of a native copy call.
        if (len < 64) while (p < stop) out[o++] = packet[p++]!;
        else {
          o += packet.copy(out, o, p, stop);
          p = stop;
        }
        continue;
      }
      for (; p < stop; p++) {
        const c = packet[p]!;
        if (c === BACKSLASH || c === TAB || c === NEWLINE || c === 0) {
          out[o++] = BACKSLASH;
          out[o++] = c === 0 ? 48 /* 0 */ : c === TAB ? 116 /* t */ : c === NEWLINE ? 110 /* n */ : BACKSLASH;
        } else {
          out[o++] = c;
        }
      }
    }
    out[o++] = NEWLINE;
    this.bytes += o - this.pos;
    this.pos = o;
    this.rows++;
    return o >= OUTPUT_BLOCK;
  }

  /** The output so far; the encoder starts a new block. */
  take(): Buffer {
    const block = this.out.subarray(0, this.pos);
    this.out = Buffer.allocUnsafe(OUTPUT_BLOCK);
    this.pos = 0;
    return block;
  }
}
