import { randomBytes, scrypt, timingSafeEqual } from 'node:crypto';
import { UsageError } from '../../util/errors.js';

/**
 * The console's password, stored only as a salted scrypt hash in the PHC string format
 * ("$scrypt$ln=15,r=8,p=1$salt$hash", base64 without padding), as `stackvault console
 * --hash-password` prints it: the config file or secrets file holding it gives nobody the
 * password, and each guess costs a third of a second of scrypt.
 */
const PHC = /^\$scrypt\$ln=(\d{1,2}),r=(\d{1,2}),p=(\d{1,2})\$([A-Za-z0-9+/]{16,})\$([A-Za-z0-9+/]{43,})$/;
const LOG_N = 15;
const KEY_BYTES = 32;

function derive(password: string, salt: Buffer, logN: number, r: number, p: number): Promise<Buffer> {
  return new Promise((resolve, reject) =>
    scrypt(password.normalize('NFC'), salt, KEY_BYTES, { N: 2 ** logN, r, p, maxmem: 256 * 2 ** logN * r + 1024 * 1024 }, (err, key) => (err ? reject(err) : resolve(key))),
  );
}

const b64 = (buf: Buffer) => buf.toString('base64').replace(/=+$/, '');

export async function hashConsolePassword(password: string): Promise<string> {
  if (password.length < 8) throw new UsageError('the console password must have at least 8 characters');
  const salt = randomBytes(16);
  return `$scrypt$ln=${LOG_N},r=8,p=1$${b64(salt)}$${b64(await derive(password, salt, LOG_N, 8, 1))}`;
}

/** Refuses what is not such a hash, naming `where` it came from. */
export function checkConsolePasswordHash(stored: string, where: string): string {
  const m = PHC.exec(stored.trim());
  if (!m || Number(m[1]) < 10 || Number(m[1]) > 20) {
    throw new UsageError(`${where} is not a console password hash: make one with "stackvault console --hash-password" (it starts with "$scrypt$ln=")`);
  }
  return stored.trim();
}

/** Whether `password` is the one `stored` was made from (compared in constant time). */
export async function verifyConsolePassword(password: string, stored: string): Promise<boolean> {
  const m = PHC.exec(stored);
  if (!m) return false;
  const expected = Buffer.from(m[5]!, 'base64');
  const given = await derive(password, Buffer.from(m[4]!, 'base64'), Number(m[1]), Number(m[2]), Number(m[3]));
  return expected.length === given.length && timingSafeEqual(expected, given);
}
