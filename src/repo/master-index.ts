import { IntegrityError } from '../util/errors.js';
import type { IndexEntry, PackedBlob } from './format/pack.js';

export type { IndexEntry };

/** An index file: packs and the blobs in them. `supersedes` names index files it replaces (written by prune). */
export interface IndexFile {
  version: 1;
  supersedes: string[];
  packs: Array<{ id: string; blobs: Array<[id: string, type: 'd' | 't', offset: number, length: number, rawLength: number, compressed: 0 | 1]> }>;
}

export function encodeIndexFile(packs: Map<string, PackedBlob[]>, supersedes: string[] = []): IndexFile {
  return {
    version: 1,
    supersedes,
    packs: [...packs].map(([id, blobs]) => ({
      id,
      blobs: blobs.map((b) => [b.id, b.type === 'data' ? 'd' : 't', b.offset, b.length, b.rawLength, b.compressed ? 1 : 0]),
    })),
  };
}

/** Blobs come back as index entries (with their pack), so loading an index makes one object per blob. */
export function decodeIndexFile(file: IndexFile, name: string): Map<string, IndexEntry[]> {
  if (file.version !== 1 || !Array.isArray(file.packs)) throw new IntegrityError(`index ${name} has an unknown format`);
  const packs = new Map<string, IndexEntry[]>();
  for (const p of file.packs) {
    const pack = p.id;
    packs.set(
      pack,
      p.blobs.map(([id, type, offset, length, rawLength, compressed]) => ({
        id,
        type: type === 'd' ? 'data' : 'tree',
        offset,
        length,
        rawLength,
        compressed: compressed === 1,
        pack,
      })),
    );
  }
  return packs;
}

/**
 * The union of all index files in memory: blob id -> where it is stored. Packs that a
 * deletion record names (prune's first phase) are "doomed": still readable, but a blob
 * found only there is not there for a writer to deduplicate against (see BlobWriter.has).
 */
export class MasterIndex {
  private readonly blobs = new Map<string, IndexEntry>();
  private readonly packBlobs = new Map<string, PackedBlob[]>();
  private readonly doomed = new Set<string>();

  addPack(packId: string, blobs: PackedBlob[]): void {
    if (this.packBlobs.has(packId)) return;
    this.packBlobs.set(packId, blobs);
    const doomed = this.doomed.has(packId);
    for (const b of blobs) {
      // A blob stored twice (two concurrent backups, or written again because prune means to
      // delete its pack) is fine: either copy serves, the one prune keeps is preferred.
      const known = this.blobs.get(b.id);
      if (known && (doomed || !this.doomed.has(known.pack))) continue;
      this.blobs.set(b.id, (b as Partial<IndexEntry>).pack === packId ? (b as IndexEntry) : { ...b, pack: packId });
    }
  }

  /** Packs prune means to delete: set before packs are added, so that other copies are preferred. */
  doom(packIds: Iterable<string>): void {
    for (const id of packIds) this.doomed.add(id);
  }

  isDoomed(packId: string): boolean {
    return this.doomed.has(packId);
  }

  has(id: string): boolean {
    return this.blobs.has(id);
  }

  get(id: string): IndexEntry | undefined {
    return this.blobs.get(id);
  }

  get blobCount(): number {
    return this.blobs.size;
  }

  packs(): Map<string, PackedBlob[]> {
    return this.packBlobs;
  }
}
