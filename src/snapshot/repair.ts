import type { Repository } from '../repo/repository.js';
import { encodeIndexFile } from '../repo/index.js';
import { idFromKey, objectKey } from '../repo/layout.js';
import { PACK_TRAILER_BYTES, headerLengthFromTrailer, parsePackHeader, type PackedBlob } from '../repo/pack.js';
import { errorMessage } from '../util/errors.js';

/**
 * Rebuild the index from pack headers alone. The new index supersedes every index file
 * present; nothing is deleted (prune removes superseded index files once they may go).
 */
export async function rebuildIndex(repo: Repository): Promise<{ packs: number; blobs: number; damaged: string[]; indexId: string }> {
  const packs = new Map<string, PackedBlob[]>();
  const damaged: string[] = [];
  let blobs = 0;
  for (const info of await repo.listObjects('data')) {
    const id = idFromKey(info.key);
    try {
      const trailer = await repo.backend.get(objectKey('data', id), { offset: info.size - PACK_TRAILER_BYTES, length: PACK_TRAILER_BYTES });
      const headerLength = headerLengthFromTrailer(trailer, id);
      const tailLength = Math.min(info.size, headerLength + PACK_TRAILER_BYTES);
      const tail = await repo.backend.get(objectKey('data', id), { offset: info.size - tailLength, length: tailLength });
      const entries = parsePackHeader(tail, info.size, repo.master.encryptionKey, id);
      packs.set(id, entries);
      blobs += entries.length;
    } catch (err) {
      damaged.push(`pack ${id.slice(0, 8)}: ${errorMessage(err)}`);
    }
  }
  const supersedes = await repo.listIds('index');
  const indexId = await repo.saveObject('index', encodeIndexFile(packs, supersedes.sort()));
  return { packs: packs.size, blobs, damaged, indexId };
}
