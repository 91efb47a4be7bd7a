/** What LayoutScanner throws at the first byte that is not laid out as expected. */
export const OTHER_LAYOUT = new Error('laid out otherwise');
export const COMMA = 44;
export const CLOSE_BRACKET = 93;
export const CLOSE_BRACE = 125;
const QUOTE = 34;
const BACKSLASH = 92;

/**
 * Reads JSON laid out exactly as one writer lays it out (JSON.stringify: no whitespace, keys
 * in a known order), straight from its bytes, without a string or an object per value;
 * throws OTHER_LAYOUT at the first byte that is not laid out so (the caller then parses it
 * as JSON).
 */
export class LayoutScanner {
  at = 0;

  constructor(private readonly text: Uint8Array) {}

  literal(expected: string): void {
    for (let i = 0; i < expected.length; i++) if (this.text[this.at++] !== expected.charCodeAt(i)) throw OTHER_LAYOUT;
  }

  expect(byte: number): void {
    if (this.text[this.at++] !== byte) throw OTHER_LAYOUT;
  }

  /** Steps over `byte` when it comes next. */
  next(byte: number): boolean {
    if (this.text[this.at] !== byte) return false;
    this.at++;
    return true;
  }

  oneOf(a: number, b: number): number {
    const c = this.text[this.at++];
    if (c !== a && c !== b) throw OTHER_LAYOUT;
    return c;
  }

  skip(bytes: number): void {
    this.at += bytes;
    if (this.at > this.text.length) throw OTHER_LAYOUT;
  }

  /** A string without escapes. */
  string(): string {
    this.expect(QUOTE);
    const start = this.at;
    for (;;) {
      const c = this.text[this.at++];
      if (c === undefined || c === BACKSLASH || c < 32) throw OTHER_LAYOUT;
      if (c === QUOTE) break;
    }
    return Buffer.from(this.text.buffer, this.text.byteOffset + start, this.at - 1 - start).toString('utf8');
  }

  /** A non-negative integer below 2^32, as JSON.stringify writes one. */
  integer(): number {
    let value = 0;
    const start = this.at;
    for (;;) {
      const c = this.text[this.at];
      if (c === undefined || c < 48 || c > 57) break;
      value = value * 10 + (c - 48);
      this.at++;
    }
    const digits = this.at - start;
    if (digits === 0 || digits > 10 || value > 0xffff_ffff || (digits > 1 && this.text[start] === 48)) throw OTHER_LAYOUT;
    return value;
  }
}
