import { readdirSync, readlinkSync } from 'node:fs';
import { readdir, readlink } from 'node:fs/promises';

/*
 * File names on Linux are bytes, not text. stackvault keeps names as strings (in trees,
 * in paths), and stores a byte that is not part of valid UTF-8 as a lone low surrogate
 * U+DC80..U+DCFF (Python's "surrogateescape"): valid UTF-8 never decodes to one, JSON
 * keeps it exactly (as "\udcff"), and the bytes come back unchanged. Every path handed to
 * the file system goes through osPath(), which turns such a string back into its bytes.
 */

/** a lone low surrogate of the escaped range: not the second half of a pair */
const ESCAPED_BYTE = /(?<![\ud800-\udbff])[\udc80-\udcff]/;

/** The path as the file system knows it: the string itself, or its bytes when it holds escaped ones. */
export function osPath(path: string): string | Buffer {
  if (!ESCAPED_BYTE.test(path)) return path;
  const parts: Buffer[] = [];
  let text = '';
  for (let i = 0; i < path.length; i++) {
    const code = path.charCodeAt(i);
    const escaped = code >= 0xdc80 && code <= 0xdcff && !(i > 0 && isHighSurrogate(path.charCodeAt(i - 1)));
    if (!escaped) {
      text += path[i];
      continue;
    }
    parts.push(Buffer.from(text, 'utf8'), Buffer.of(code - 0xdc00));
    text = '';
  }
  parts.push(Buffer.from(text, 'utf8'));
  return Buffer.concat(parts);
}

function isHighSurrogate(code: number): boolean {
  return code >= 0xd800 && code <= 0xdbff;
}

/** A name's bytes as a string: valid UTF-8 decoded, every other byte escaped. */
export function nameFromBytes(bytes: Buffer): string {
  const text = bytes.toString('utf8');
  if (!text.includes('\ufffd') || Buffer.from(text, 'utf8').equals(bytes)) return text;
  let out = '';
  let i = 0;
  while (i < bytes.length) {
    const length = validSequenceLength(bytes, i);
    if (length === 0) {
      out += String.fromCharCode(0xdc00 + bytes[i]!);
      i++;
    } else {
      out += bytes.toString('utf8', i, i + length);
      i += length;
    }
  }
  return out;
}

/** Length of the valid UTF-8 sequence at `i` (no overlong forms, no surrogates, at most U+10FFFF), or 0. */
function validSequenceLength(b: Buffer, i: number): number {
  const lead = b[i]!;
  if (lead < 0x80) return 1;
  const cont = (k: number) => i + k < b.length && (b[i + k]! & 0xc0) === 0x80;
  if (lead >= 0xc2 && lead <= 0xdf) return cont(1) ? 2 : 0;
  if (lead >= 0xe0 && lead <= 0xef) {
    if (!cont(1) || !cont(2)) return 0;
    const second = b[i + 1]!;
    if (lead === 0xe0 && second < 0xa0) return 0; // overlong
    if (lead === 0xed && second >= 0xa0) return 0; // a surrogate
    return 3;
  }
  if (lead >= 0xf0 && lead <= 0xf4) {
    if (!cont(1) || !cont(2) || !cont(3)) return 0;
    const second = b[i + 1]!;
    if (lead === 0xf0 && second < 0x90) return 0; // overlong
    if (lead === 0xf4 && second >= 0x90) return 0; // past U+10FFFF
    return 4;
  }
  return 0;
}

/** A folder's names, with names that are not UTF-8 kept byte for byte (see nameFromBytes). */
export async function readNames(dir: string): Promise<string[]> {
  const names = await readdir(osPath(dir));
  // A name that is not UTF-8 comes back with U+FFFD in it: only then are the bytes read.
  if (!names.some((n) => n.includes('\ufffd'))) return names;
  return (await readdir(osPath(dir), { encoding: 'buffer' })).map(nameFromBytes);
}

export function readNamesSync(dir: string): string[] {
  const names = readdirSync(osPath(dir));
  if (!names.some((n) => n.includes('\ufffd'))) return names;
  return readdirSync(osPath(dir), { encoding: 'buffer' }).map(nameFromBytes);
}

/** A symlink's target, byte for byte. */
export async function readLinkTarget(path: string): Promise<string> {
  return nameFromBytes(await readlink(osPath(path), { encoding: 'buffer' }));
}

export function readLinkTargetSync(path: string): string {
  return nameFromBytes(readlinkSync(osPath(path), { encoding: 'buffer' }));
}
