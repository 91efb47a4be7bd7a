import { createCipheriv, createDecipheriv, createHash, createHmac, randomBytes, scrypt } from 'node:crypto';
import { hostname, userInfo } from 'node:os';
import { IntegrityError } from '../../util/errors.js';

/**
 * The secrets of a repository. With encryption, all three live only inside key files,
 * wrapped by a passphrase; without it, idKey and chunkerSeed are stored in the config.
 */
export interface MasterKey {
  /** AES-256-GCM key for every object; null when the repository is not encrypted */
  encryptionKey: Buffer | null;
  /** keys the content hash, so blob ids reveal nothing about content to a storage admin */
  idKey: Buffer;
  /** seeds the chunker's gear table, so chunk boundaries cannot be used to fingerprint files */
  chunkerSeed: Buffer;
}

export const NONCE_BYTES = 12;
export const TAG_BYTES = 16;
export const SEAL_OVERHEAD = NONCE_BYTES + TAG_BYTES;

export function newMasterKey(encrypted: boolean): MasterKey {
  return {
    encryptionKey: encrypted ? randomBytes(32) : null,
    idKey: randomBytes(32),
    chunkerSeed: randomBytes(32),
  };
}

/**
 * Random nonces, drawn from the CSPRNG a pool at a time: one call per blob cost more than
 * the encryption of a small blob. Every nonce is still fresh random bytes, used once.
 */
const NONCE_POOL_BYTES = 4096 * NONCE_BYTES;
let noncePool = Buffer.alloc(0);
let noncePoolAt = 0;
function freshNonce(): Buffer {
  if (noncePoolAt + NONCE_BYTES > noncePool.length) {
    noncePool = randomBytes(NONCE_POOL_BYTES);
    noncePoolAt = 0;
  }
  const nonce = noncePool.subarray(noncePoolAt, noncePoolAt + NONCE_BYTES);
  noncePoolAt += NONCE_BYTES;
  return nonce;
}

/** nonce || ciphertext || tag with a fresh random nonce; a copy of the input without encryption. */
export function seal(key: Buffer | null, plain: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(sealedLength(key, plain.length));
  sealInto(key, plain, out, 0);
  return out;
}

/** seal() into `out` at `at`, which has room for sealedLength(key, plain.length) bytes; returns that length. */
export function sealInto(key: Buffer | null, plain: Uint8Array, out: Buffer, at: number): number {
  if (!key) {
    out.set(plain, at);
    return plain.length;
  }
  const nonce = freshNonce();
  const cipher = createCipheriv('aes-256-gcm', key, nonce);
  let n = nonce.copy(out, at);
  n += cipher.update(plain).copy(out, at + n);
  n += cipher.final().copy(out, at + n);
  n += cipher.getAuthTag().copy(out, at + n);
  return n;
}

/** Decrypt and authenticate; `what` names the object in the error. */
export function unseal(key: Buffer | null, sealed: Uint8Array, what: string): Buffer {
  if (!key) return Buffer.from(sealed.buffer, sealed.byteOffset, sealed.byteLength);
  if (sealed.length < SEAL_OVERHEAD) throw new IntegrityError(`${what} is damaged: too short to be encrypted data`);
  const buf = Buffer.from(sealed.buffer, sealed.byteOffset, sealed.byteLength);
  const decipher = createDecipheriv('aes-256-gcm', key, buf.subarray(0, NONCE_BYTES));
  decipher.setAuthTag(buf.subarray(buf.length - TAG_BYTES));
  try {
    const head = decipher.update(buf.subarray(NONCE_BYTES, buf.length - TAG_BYTES));
    const tail = decipher.final();
    return tail.length ? Buffer.concat([head, tail]) : head;
  } catch {
    throw new IntegrityError(`${what} is damaged: authentication failed (the data was modified)`);
  }
}

export function sealedLength(key: Buffer | null, plainLength: number): number {
  return key ? plainLength + SEAL_OVERHEAD : plainLength;
}

/** Content id of a blob: HMAC-SHA256 under the repository's id key. */
export function blobId(idKey: Buffer, data: Uint8Array): string {
  return createHmac('sha256', idKey).update(data).digest('hex');
}

/** Name of a stored object: the SHA-256 of its stored bytes, so every object can be verified by its name. */
export function objectHash(data: Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

// ---- key files: the master key wrapped by a passphrase ----

export interface KeyFile {
  version: 1;
  kdf: 'scrypt';
  N: number;
  r: number;
  p: number;
  salt: string;
  created: string;
  host: string;
  username: string;
  /** base64 of seal(kek, JSON of the master key) */
  data: string;
}

const SCRYPT = { N: 1 << 15, r: 8, p: 1 };

function deriveKek(passphrase: string, salt: Buffer, params: { N: number; r: number; p: number }): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    scrypt(passphrase, salt, 32, { ...params, maxmem: 256 * params.N * params.r + (1 << 20) }, (err, key) =>
      err ? reject(err) : resolve(key),
    );
  });
}

export async function wrapMasterKey(master: MasterKey, passphrase: string): Promise<KeyFile> {
  const salt = randomBytes(32);
  const kek = await deriveKek(passphrase, salt, SCRYPT);
  const plain = Buffer.from(
    JSON.stringify({
      encryptionKey: master.encryptionKey?.toString('base64') ?? null,
      idKey: master.idKey.toString('base64'),
      chunkerSeed: master.chunkerSeed.toString('base64'),
    }),
  );
  let username = 'unknown';
  try {
    username = userInfo().username;
  } catch {
    /* no passwd entry in some containers */
  }
  return {
    version: 1,
    kdf: 'scrypt',
    ...SCRYPT,
    salt: salt.toString('base64'),
    created: new Date().toISOString(),
    host: hostname(),
    username,
    data: seal(kek, plain).toString('base64'),
  };
}

/** The master key, or null when the passphrase does not open this key file. */
export async function unwrapMasterKey(file: KeyFile, passphrase: string): Promise<MasterKey | null> {
  const kek = await deriveKek(passphrase, Buffer.from(file.salt, 'base64'), file);
  let plain: Buffer;
  try {
    plain = unseal(kek, Buffer.from(file.data, 'base64'), 'key file');
  } catch {
    return null;
  }
  const parsed = JSON.parse(plain.toString('utf8')) as { encryptionKey: string | null; idKey: string; chunkerSeed: string };
  return {
    encryptionKey: parsed.encryptionKey ? Buffer.from(parsed.encryptionKey, 'base64') : null,
    idKey: Buffer.from(parsed.idKey, 'base64'),
    chunkerSeed: Buffer.from(parsed.chunkerSeed, 'base64'),
  };
}
