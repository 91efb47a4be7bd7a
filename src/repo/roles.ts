import type { ObjectKind } from './format/layout.js';
import type { BlobType } from './format/pack.js';

/*
 * What the layers above ask of a repository, role by role (as restic's small interfaces in
 * internal/restic/repository.go): code that only loads blobs or only keeps records takes
 * the role, not the whole Repository, and can be handed something else in front of it
 * (a BlobBatchLoader that decodes on worker threads).
 */

/** Loads verified blobs: the repository itself, or a BlobBatchLoader in front of it. */
export interface BlobLoader {
  loadBlob(id: string, expectedType?: BlobType): Promise<Buffer>;
  blobLength(id: string): number | undefined;
  /**
   * Where present: verify a data blob and hand its content to the decoding thread's
   * `deliver` with `to` (a restore's place in a file) instead of back to this thread;
   * resolves with the bytes delivered.
   */
  deliverBlob?(id: string, to: unknown): Promise<number>;
}

/** The kinds of small JSON records a repository keeps beside its data. */
export type RecordKind = Exclude<ObjectKind, 'data' | 'keys'>;

/**
 * Keeps small JSON records (snapshots, forget records): listed by id, loaded verified
 * (a damaged one reported and left out, never fatal to the rest), stored once.
 */
export interface RecordStore {
  listIds(kind: ObjectKind): Promise<string[]>;
  loadIntact<T>(kind: RecordKind, ids: readonly string[]): Promise<Array<{ id: string; value: T }>>;
  saveObject(kind: RecordKind, value: unknown): Promise<string>;
  reportDamage(key: string, err: unknown): void;
}
