import { createHash } from 'node:crypto';

/** Client side of the server's authentication plugins. */

function sha(algorithm: 'sha1', ...parts: Buffer[]): Buffer {
  const h = createHash(algorithm);
  for (const p of parts) h.update(p);
  return h.digest();
}

function xor(a: Buffer, b: Buffer): Buffer {
  const out = Buffer.allocUnsafe(a.length);
  for (let i = 0; i < a.length; i++) out[i] = a[i]! ^ b[i % b.length]!;
  return out;
}

/** mysql_native_password: SHA1(password) XOR SHA1(scramble + SHA1(SHA1(password))). */
export function nativePasswordResponse(password: string, scramble: Buffer): Buffer {
  if (password === '') return Buffer.alloc(0);
  const stage1 = sha('sha1', Buffer.from(password, 'utf8'));
  const stage2 = sha('sha1', stage1);
  return xor(stage1, sha('sha1', scramble.subarray(0, 20), stage2));
}

export function clearPasswordResponse(password: string): Buffer {
  return Buffer.from(password + '\0', 'utf8');
}
