import { compressIfSmaller } from './compression.js';
import { seal } from './crypto.js';

/** A blob as it is stored in a pack: compressed when that pays, then sealed. */
export interface EncodedBlob {
  stored: Buffer;
  compressed: boolean;
}

export function encodeBlob(encryptionKey: Buffer | null, data: Uint8Array): EncodedBlob {
  const compressed = compressIfSmaller(data);
  return { stored: seal(encryptionKey, compressed ?? data), compressed: compressed !== null };
}
