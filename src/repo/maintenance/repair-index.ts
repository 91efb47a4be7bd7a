import type { Repository } from '../repository.js';
import { encodeIndexFiles } from '../master-index.js';
import { idFromKey } from '../format/layout.js';
import type { PackedBlob } from '../format/pack.js';
import { errorMessage } from '../../util/errors.js';

/**
 * Rebuild the index from pack headers alone. The new index supersedes every index file
 * present, damaged ones included, so the repository works again without deleting
 * anything (prune removes superseded index files once they may go).
 */
export async function rebuildIndex(repo: Repository): Promise<{ packs: number; blobs: number; damaged: string[]; indexId: string }> {
  const packs = new Map<string, PackedBlob[]>();
  const damaged: string[] = [];
  let blobs = 0;
  // Index files before packs: every pack an index file listed here names is then in the
  // listing below, so superseding these files loses no entry (a backup may be running).
  const supersedes = await repo.listIds('index');
  // What the index files that still read say, for packs whose own header does not.
  await repo.loadIndex();
  for (const info of await repo.listObjects('data')) {
    const id = idFromKey(info.key);
    let entries: PackedBlob[] | undefined;
    try {
      entries = await repo.readPackHeader(id, info.size);
    } catch (err) {
      entries = repo.index.packBlobs(id);
      damaged.push(`pack ${id.slice(0, 8)}: ${errorMessage(err)}${entries ? ' (its entries in the old index are kept)' : ''}`);
    }
    if (!entries) continue;
    packs.set(id, entries);
    blobs += entries.length;
  }
  // In order: the last file, stored once all the others are, supersedes the old ones.
  let indexId = '';
  for (const file of encodeIndexFiles(packs, supersedes.sort())) indexId = await repo.saveObject('index', file);
  return { packs: packs.size, blobs, damaged, indexId };
}
