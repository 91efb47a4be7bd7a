import { createHash } from 'node:crypto';

/**
 * MariaDB's client_ed25519 authentication: the client signs the server's 32-byte nonce
 * with Ed25519, the secret key being derived from the password itself: SHA-512 of the
 * password, of any length, where standard Ed25519 hashes a 32-byte seed. Node's crypto
 * takes only such seeds, so the signature is computed here (RFC 8032, section 5.1.6) on
 * edwards25519 in extended coordinates. A login signs once: BigInt arithmetic is fast enough.
 */

const P = 2n ** 255n - 19n;
/** the order of the base point */
const L = 2n ** 252n + 27742317777372353535851937790883648493n;
const D = mod(-121665n * inverse(121666n));
const BASE: Point = [
  15112221349535400772501151409588531511454012693041857206046113283949847762202n,
  46316835694926478169428394003475163141307993866256225615783033603165251855960n,
  1n,
  mod(15112221349535400772501151409588531511454012693041857206046113283949847762202n * 46316835694926478169428394003475163141307993866256225615783033603165251855960n),
];

/** X, Y, Z, T with x = X/Z, y = Y/Z, xy = T/Z */
type Point = [bigint, bigint, bigint, bigint];

function mod(a: bigint, m = P): bigint {
  const r = a % m;
  return r >= 0n ? r : r + m;
}

function power(base: bigint, exponent: bigint): bigint {
  let result = 1n;
  let b = mod(base);
  for (let e = exponent; e > 0n; e >>= 1n) {
    if (e & 1n) result = mod(result * b);
    b = mod(b * b);
  }
  return result;
}

function inverse(a: bigint): bigint {
  return power(a, P - 2n);
}

/** Addition on the twisted Edwards curve with a = -1 (add-2008-hwcd-3); it doubles too. */
function add([x1, y1, z1, t1]: Point, [x2, y2, z2, t2]: Point): Point {
  const a = mod((y1 - x1) * (y2 - x2));
  const b = mod((y1 + x1) * (y2 + x2));
  const c = mod(t1 * 2n * D * t2);
  const d = mod(z1 * 2n * z2);
  const e = b - a;
  const f = d - c;
  const g = d + c;
  const h = b + a;
  return [mod(e * f), mod(g * h), mod(f * g), mod(e * h)];
}

function multiply(scalar: bigint, point: Point): Point {
  let result: Point = [0n, 1n, 1n, 0n];
  let addend = point;
  for (let k = scalar; k > 0n; k >>= 1n) {
    if (k & 1n) result = add(result, addend);
    addend = add(addend, addend);
  }
  return result;
}

function encodePoint([x, y, z]: Point): Buffer {
  const zInverse = inverse(z);
  const ax = mod(x * zInverse);
  const ay = mod(y * zInverse);
  const out = littleEndian(ay);
  out[31]! |= Number(ax & 1n) << 7;
  return out;
}

function littleEndian(n: bigint): Buffer {
  const out = Buffer.alloc(32);
  let v = n;
  for (let i = 0; i < 32; i++, v >>= 8n) out[i] = Number(v & 0xffn);
  return out;
}

function fromLittleEndian(bytes: Buffer): bigint {
  let n = 0n;
  for (let i = bytes.length - 1; i >= 0; i--) n = (n << 8n) | BigInt(bytes[i]!);
  return n;
}

const sha512 = (...parts: Buffer[]) => parts.reduce((h, p) => h.update(p), createHash('sha512')).digest();

/** The secret scalar (clamped) and the nonce prefix of a password. */
function secretOf(password: string): { scalar: bigint; prefix: Buffer } {
  const az = sha512(Buffer.from(password, 'utf8'));
  const head = Buffer.from(az.subarray(0, 32));
  head[0]! &= 248;
  head[31]! &= 63;
  head[31]! |= 64;
  return { scalar: fromLittleEndian(head), prefix: az.subarray(32) };
}

/** The public key the server stores for this password (base64 of it in mysql.user). */
export function ed25519PublicKey(password: string): Buffer {
  return encodePoint(multiply(secretOf(password).scalar, BASE));
}

/** client_ed25519's answer to the server's nonce: the 64-byte signature R || S. */
export function ed25519Response(password: string, nonce: Buffer): Buffer {
  const { scalar, prefix } = secretOf(password);
  const publicKey = encodePoint(multiply(scalar, BASE));
  const r = mod(fromLittleEndian(sha512(prefix, nonce)), L);
  const R = encodePoint(multiply(r, BASE));
  const h = mod(fromLittleEndian(sha512(R, publicKey, nonce)), L);
  const S = mod(r + h * scalar, L);
  return Buffer.concat([R, littleEndian(S)]);
}
