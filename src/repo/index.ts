import { IntegrityError } from '../util/errors.js';
import type { PackedBlob } from './pack.js';

/** Where a blob is stored: its pack and its place in it. */
export interface IndexEntry extends PackedBlob {
  pack: string;
}

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

/** The union of all index files in memory: blob id -> where it is stored. */
export class MasterIndex {
  private readonly blobs = new Map<string, IndexEntry>();
  private readonly packBlobs = new Map<string, PackedBlob[]>();

  addPack(packId: string, blobs: PackedBlob[]): void {
    if (this.packBlobs.has(packId)) return;
    this.packBlobs.set(packId, blobs);
    for (const b of blobs) {
      // A blob stored twice (two concurrent backups) is fine: either copy serves.
      if (!this.blobs.has(b.id)) this.blobs.set(b.id, (b as Partial<IndexEntry>).pack === packId ? (b as IndexEntry) : { ...b, pack: packId });
    }
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
