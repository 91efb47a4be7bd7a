import { errorMessage, IntegrityError } from '../../util/errors.js';
import { Scratch } from '../../util/scratch.js';
import { decompress, decompressInto } from './compression.js';
import { blobId, objectHash, unseal, type MasterKey } from './crypto.js';
import { parsePackHeader, type PackedBlob } from './pack.js';

/**
 * Decrypt, decompress and re-hash one stored blob; an IntegrityError says what is wrong.
 * With `into` (room for the blob's raw length), compressed content is decompressed there
 * rather than into fresh memory, and the result is a view of it (see util/scratch.ts).
 */
export function decodeBlob(
  master: Pick<MasterKey, 'encryptionKey' | 'idKey'>,
  id: string,
  entry: { pack: string; compressed: boolean; rawLength: number },
  stored: Buffer,
  into?: Buffer,
): Buffer {
  const what = `blob ${id.slice(0, 16)} in pack ${entry.pack.slice(0, 16)}`;
  const plain = unseal(master.encryptionKey, stored, what);
  let data: Buffer;
  try {
    if (!entry.compressed) data = plain;
    else if (into) data = into.subarray(0, decompressInto(plain, into.subarray(0, entry.rawLength)));
    else data = decompress(plain);
  } catch {
    throw new IntegrityError(`${what} is damaged: it does not decompress`);
  }
  if (data.length !== entry.rawLength || blobId(master.idKey, data) !== id) {
    throw new IntegrityError(`${what} is damaged: its content does not match its hash`);
  }
  return data;
}

const verifyScratch = new Scratch();

export interface PackVerdict {
  /** the pack's bytes hash to its name */
  hashOk: boolean;
  /** blobs that do not decode, with why */
  damaged: Array<{ id: string; message: string }>;
  /** the header cannot be read, or why */
  headerError?: string;
  /** the header lists other blobs than the index */
  headerMismatch: boolean;
  /** the pack's file could not be read whole, and why (nothing else was looked at) */
  unreadable?: string;
}

/** Everything check --read-data proves about one pack: its name, each blob, its header against the index. */
export function verifyPack(
  master: Pick<MasterKey, 'encryptionKey' | 'idKey'>,
  packId: string,
  bytes: Buffer,
  indexed: PackedBlob[],
  /** told each blob's stored length once it is decoded (its decrypted bytes are then garbage) */
  decoded?: (length: number) => void,
): PackVerdict {
  const verdict: PackVerdict = { hashOk: objectHash(bytes) === packId, damaged: [], headerMismatch: false };
  for (const blob of indexed) {
    try {
      // The content is only hashed: one scratch serves every blob.
      decodeBlob(master, blob.id, { pack: packId, ...blob }, bytes.subarray(blob.offset, blob.offset + blob.length), verifyScratch.takeUpTo16MiB(blob.rawLength));
    } catch (err) {
      verdict.damaged.push({ id: blob.id, message: errorMessage(err) });
    }
    decoded?.(blob.length);
  }
  try {
    const header = parsePackHeader(bytes, bytes.length, master.encryptionKey, packId);
    const indexedIds = new Set(indexed.map((b) => `${b.id}@${b.offset}+${b.length}`));
    verdict.headerMismatch = header.length !== indexed.length || header.some((b) => !indexedIds.has(`${b.id}@${b.offset}+${b.length}`));
  } catch (err) {
    verdict.headerError = errorMessage(err);
  }
  return verdict;
}
